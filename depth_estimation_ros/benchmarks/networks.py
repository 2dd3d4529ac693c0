"""Benchmark the depth networks: parameters, GFLOPs, ONNX Runtime CPU latency, PyTorch GPU latency with floors.

CPU (default):  python -m depth_estimation_ros.benchmarks.networks --threads 1 2
GPU:            python -m depth_estimation_ros.benchmarks.networks --device cuda

For every network x encoder x input size (W x H: 640x192, 1024x320, 320x256 by default) it prints a markdown table.

- params: trainable + frozen parameters of the depth network (all heads; the exported graph uses all but LacDepth's
  three intermediate training heads).
- GFLOPs: of ``predict_depth`` at batch 1, counted by torch.utils.flop_counter.FlopCounterMode (convolutions,
  transposed convolutions, matmuls; 1 multiply-add = 2 FLOPs; element-wise ops not counted).
- CPU: the graph exported by ``export_onnx`` (onnxslim-simplified), ONNX Runtime CPUExecutionProvider with
  ``--threads`` intra-op threads, batch 1, median (and p90) of ``--iterations`` runs after ``--warmup`` runs.
- GPU (``--device cuda``): PyTorch at batch 1 in fp32 (TF32 off), fp16 (``model.half()``) and fp16 replayed from a
  CUDA graph; median of CUDA-event timings. The floors: compute floor = FLOPs / peak dense throughput of the
  precision's path; memory floor = estimated DRAM traffic / peak bandwidth, traffic = parameters + every aten op's
  output written once and read once (an upper-side estimate of unfused traffic; fused engines move less). The
  floor is the larger of the two and "gap" = measured / floor. Peaks come from the device table below (NVIDIA data
  sheets) or ``--peak-tflops-fp32/--peak-tflops-fp16/--peak-bandwidth-gbs``.
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
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from depth_estimation_ros.benchmarks.timing import cuda_times_ms
from depth_estimation_ros.networks.encoders import (
    ENCODER_NAMES,
    has_packaged_imagenet_weights,
)
from depth_estimation_ros.networks.factory import (
    NETWORK_NAMES,
    DepthNetworkConfig,
    build_depth_network,
)

DEFAULT_SIZES = ("640x192", "1024x320", "320x256")

# name fragment -> (fp32 non-tensor TFLOPS, fp16 dense tensor TFLOPS, HBM GB/s); NVIDIA data sheets, dense (no sparsity)
GPU_PEAKS = {
    "H100 PCIe": (51.0, 756.0, 2000.0),
    "H100 NVL": (60.0, 835.0, 3900.0),
    "H100": (67.0, 989.0, 3350.0),  # SXM5
    "H200": (67.0, 989.0, 4800.0),
}


@dataclass
class Row:
    network: str
    encoder: str
    size: str
    params_m: float
    gflops: float
    cpu_ms: dict[int, tuple[float, float]] | None = None  # threads -> (median ms, p90 ms)
    gpu: dict | None = None


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


def count_flops(model: torch.nn.Module, height: int, width: int, device: str = "cpu") -> int:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.predict_depth(torch.rand(1, 3, height, width, device=device))
    return counter.get_total_flops()


class _ActivationBytes(TorchDispatchMode):
    """Sums the bytes of every aten op's tensor outputs (views excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not getattr(func, "is_view", False) and "view" not in str(func):
            for tensor in out if isinstance(out, (list, tuple)) else [out]:
                if isinstance(tensor, torch.Tensor):
                    self.bytes += tensor.numel() * tensor.element_size()
        return out


def estimate_traffic_bytes(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Parameters + 2 x every op output (written, then read): DRAM traffic without fusion."""
    mode = _ActivationBytes()
    with torch.no_grad(), mode:
        model.predict_depth(x)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return param_bytes + 2 * mode.bytes


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


def gpu_peaks(args: argparse.Namespace) -> tuple[float, float, float, str]:
    name = torch.cuda.get_device_name()
    peaks = next((v for k, v in GPU_PEAKS.items() if k in name), None)
    fp32 = args.peak_tflops_fp32 or (peaks[0] if peaks else None)
    fp16 = args.peak_tflops_fp16 or (peaks[1] if peaks else None)
    bandwidth = args.peak_bandwidth_gbs or (peaks[2] if peaks else None)
    if None in (fp32, fp16, bandwidth):
        raise SystemExit(f"no peak figures known for GPU '{name}'; pass --peak-tflops-fp32, --peak-tflops-fp16 and "
                         "--peak-bandwidth-gbs")
    return fp32, fp16, bandwidth, name


def cuda_latencies(model: torch.nn.Module, height: int, width: int, flops: int, peaks, warmup: int,
                   iterations: int) -> dict:
    """fp32 / fp16 / fp16 + CUDA graph latency (ms) with each one's compute and memory floors (ms)."""
    fp32_peak, fp16_peak, bandwidth, _ = peaks
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    result = {}
    model = model.cuda().eval()
    x = torch.rand(1, 3, height, width, device="cuda")
    with torch.no_grad():
        traffic32 = estimate_traffic_bytes(model, x)
        result["fp32"] = _cuda_median_ms(lambda: model.predict_depth(x), warmup, iterations)
        result["fp32_floor"] = max(flops / (fp32_peak * 1e12), traffic32 / (bandwidth * 1e9)) * 1e3
        half = model.half()
        xh = x.half()
        traffic16 = estimate_traffic_bytes(half, xh)
        result["fp16"] = _cuda_median_ms(lambda: half.predict_depth(xh), warmup, iterations)
        result["fp16_floor"] = max(flops / (fp16_peak * 1e12), traffic16 / (bandwidth * 1e9)) * 1e3
        result["fp16_compute_floor"] = flops / (fp16_peak * 1e12) * 1e3
        result["fp16_memory_floor"] = traffic16 / (bandwidth * 1e9) * 1e3
        static_in = xh.clone()
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
        assert torch.isfinite(static_out.float()).all(), "fp16 CUDA-graph output is not finite"
    model.float().cpu()
    return result


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(rows: list[Row], device: str, threads: list[int], gpu_name: str | None) -> None:
    if device == "cpu":
        columns = "".join(f" ORT CPU {n} thr median ms | p90 ms |" for n in threads)
        print(f"| network | encoder | W x H | params (M) | GFLOPs |{columns}")
        print("|---|---|---|---:|---:|" + "---:|---:|" * len(threads))
        for r in rows:
            cells = "".join(f" {_fmt((r.cpu_ms or {}).get(n, (None,))[0])} | "
                            f"{_fmt((r.cpu_ms or {}).get(n, (None, None))[1])} |" for n in threads)
            print(f"| {r.network} | {r.encoder} | {r.size} | {r.params_m:.2f} | {r.gflops:.2f} |{cells}")
    else:
        print(f"GPU: {gpu_name}")
        print("| network | encoder | W x H | params (M) | GFLOPs | fp32 ms (floor) | fp16 ms (floor) | "
              "fp16+graph ms | fp16 compute / memory floor ms | gap fp16+graph / floor |")
        print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            g = r.gpu or {}
            gap = g["fp16_graph"] / g["fp16_floor"] if g else None
            print(f"| {r.network} | {r.encoder} | {r.size} | {r.params_m:.2f} | {r.gflops:.2f} | "
                  f"{_fmt(g.get('fp32'), 2)} ({_fmt(g.get('fp32_floor'), 3)}) | "
                  f"{_fmt(g.get('fp16'), 2)} ({_fmt(g.get('fp16_floor'), 3)}) | {_fmt(g.get('fp16_graph'), 2)} | "
                  f"{_fmt(g.get('fp16_compute_floor'), 3)} / {_fmt(g.get('fp16_memory_floor'), 3)} | "
                  f"{_fmt(gap, 1)}x |")


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
    parser.add_argument("--skip-latency", action="store_true", help="parameters and GFLOPs only")
    parser.add_argument("--peak-tflops-fp32", type=float, default=None)
    parser.add_argument("--peak-tflops-fp16", type=float, default=None)
    parser.add_argument("--peak-bandwidth-gbs", type=float, default=None)
    args = parser.parse_args(argv)
    sizes = args.sizes
    torch.set_num_threads(max(1, max(args.threads)))
    peaks, gpu_name = None, None
    if args.device == "cuda" and not args.skip_latency:
        if not torch.cuda.is_available():
            print("--device cuda: no CUDA device is available here", file=sys.stderr)
            return 2
        peaks = gpu_peaks(args)
        gpu_name = peaks[3]
    rows: list[Row] = []
    for network in args.networks:
        for encoder in args.encoders:
            torch.manual_seed(0)
            cfg = DepthNetworkConfig(network, encoder, pretrained=has_packaged_imagenet_weights(encoder))
            model = build_depth_network(cfg).eval()
            params = count_params(model) / 1e6
            for height, width in sizes:
                flops = count_flops(model, height, width)
                row = Row(network, encoder, f"{width}x{height}", params, flops / 1e9)
                if not args.skip_latency:
                    if args.device == "cpu":
                        row.cpu_ms = onnxruntime_latency(
                            model, cfg, height, width, args.threads, args.warmup, args.iterations)
                    else:
                        row.gpu = cuda_latencies(model, height, width, flops, peaks, args.warmup, args.iterations)
                rows.append(row)
                print(f"# done {network}/{encoder} {width}x{height}", file=sys.stderr, flush=True)
    print(f"# command: python -m depth_estimation_ros.benchmarks.networks {' '.join(argv or sys.argv[1:])}")
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} torch threads; load average at the end "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} (1, 5, 15 min; other jobs share this CPU)")
    print_table(rows, args.device, args.threads, gpu_name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
