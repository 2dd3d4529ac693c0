"""Engine latency benchmark: ``python -m depth_estimation_ros.benchmarks.engines {gpu,cpu} ...``.

gpu: per network and encoder, at 640x192, 1024x320 and 640x480, batch 1, CUDA events: median and p99 of torch
fp32 eager (TF32 off), fp16 eager, fp16 + CUDA graphs, torch.compile (fp16), and end-to-end (uint8 camera frame in,
depth at camera size out, pre/post-processing on the GPU: TorchEngine.estimate with fp16 + CUDA graphs); each ratio
is to the fp32 eager figure of the same run; the floor is roofline.py's max(FLOPs / peak FLOP/s, (weights + input +
output bytes) / peak bandwidth) for the row's precision, with the GPU's data-sheet peaks (or the --peak-* flags).

cpu: ONNX Runtime CPUExecutionProvider latency with 1 and 2 intra-op threads for the given ONNX files (default: the
bundled models) and, with --export, freshly exported untrained networks at the given sizes.

frame: the node's whole per-frame path on the CPU, per camera (640x480 TUM JPEG -> a 256x192 network, 1242x375
KITTI PNG -> 640x192; ``--cameras``): decode the compressed frame, resize (preprocess), inference, depth resampling
and REP 118 range conventions (postprocess), organised coloured cloud (projection + PointCloud2 packing), through
DepthFrameProcessor as the node runs it (output_resolution ``model``), ONNX Runtime with ``--threads`` (first value)
intra-op threads; per-stage medians and the total's ratio to the reference U-Net's (benchmarks/reference_unet.py)
in the same round-robin.

Prints Markdown tables. Weights are untrained (latency does not depend on their values).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from depth_estimation_ros.benchmarks.networks import SHIPPED_LAYOUT, parse_layout
from depth_estimation_ros.benchmarks.timing import cpu_reference_gflops, cuda_times_ms
from depth_estimation_ros.resources.shared_data import shared_data_dir

SIZES = ((192, 640), (320, 1024), (480, 640))
NETWORKS = ("lacdepth", "gatdepth", "baseline")
DATA = shared_data_dir()


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _camera_frame(height: int, width: int) -> np.ndarray:
    """A real camera frame of the aspect the input size is meant for (KITTI for wide inputs, TUM for 4:3)."""
    import cv2

    wide = width / height > 2.0
    folder = DATA / ("kitti_drive0001_frames50_100/rgb" if wide else "tum_fr3_cabinet_keyframes/rgb")
    files = sorted(folder.glob("*.png" if wide else "*.jpg"))
    if not files:
        return np.random.default_rng(0).integers(0, 255, (375 if wide else 480, 1242 if wide else 640, 3), np.uint8)
    return cv2.cvtColor(cv2.imread(str(files[0])), cv2.COLOR_BGR2RGB)


# -- GPU -----------------------------------------------------------------------------------------------------------
def _layout(args: argparse.Namespace) -> dict[str, int]:
    """The network shape fields of ``--layout`` (default: the bundled LacDepth's)."""
    return parse_layout(args.layout)


def _time_wall(fn, iterations: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return times


def run_gpu(args: argparse.Namespace) -> int:
    import torch

    from depth_estimation_ros.benchmarks.roofline import gpu_peaks, module_floors
    from depth_estimation_ros.engines.torch_engine import TorchEngine, _PredictDepth
    from depth_estimation_ros.networks.factory import (
        DepthNetworkConfig,
        build_depth_network,
    )

    if not torch.cuda.is_available():
        print("the gpu benchmark needs a CUDA GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        return 1
    device = torch.device("cuda:0")
    torch.backends.cudnn.benchmark = True
    # fp32 means fp32 (cuDNN would use TF32 tensor cores for convolutions by default): the floor's fp32 peak holds
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        peaks = gpu_peaks(torch.cuda.get_device_name(0), args.peak_tflops_fp32, args.peak_tflops_fp16,
                          args.peak_bandwidth_gbs)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, {args.iterations} timed runs after "
          f"{args.warmup} warm-up; floors with {peaks}")
    print()
    print("| network | encoder | input | variant | median ms | p99 ms | x eager fp32 (median) | floor ms |")
    print("|---|---|---|---|---|---|---|---|")
    for network in args.networks:
        for encoder in args.encoders:
            cfg = DepthNetworkConfig(network, encoder, pretrained=False, **_layout(args))
            for height, width in args.sizes:
                model = build_depth_network(cfg).eval()
                module32 = _PredictDepth(model).to(device).eval()
                x32 = torch.rand(1, 3, height, width, device=device)
                module16 = _PredictDepth(build_depth_network(cfg).eval()).to(device, torch.float16)
                module16 = module16.to(memory_format=torch.channels_last).eval()
                x16 = x32.half().contiguous(memory_format=torch.channels_last)
                floor32 = module_floors(module32, module32, x32, peaks, "fp32")
                floor16 = module_floors(module16, module16, x16, peaks, "fp16")
                rows = []
                with torch.inference_mode():
                    rows.append(("torch fp32 eager",
                                 cuda_times_ms(partial(module32, x32), args.iterations, args.warmup), floor32))
                    rows.append(("torch fp16 eager",
                                 cuda_times_ms(partial(module16, x16), args.iterations, args.warmup), floor16))
                engine = TorchEngine.from_module(build_depth_network(cfg).eval(), (height, width), precision="fp16",
                                                 device="cuda:0", cuda_graphs=True)
                engine.warmup(3)
                x16_static = x16.clone()
                rows.append(("torch fp16 + CUDA graph",
                             cuda_times_ms(partial(engine._infer_device, x16_static), args.iterations, args.warmup),
                             floor16))
                if not args.skip_compile:
                    compiled = torch.compile(module16)
                    with torch.inference_mode():
                        rows.append(("torch.compile fp16",
                                     cuda_times_ms(partial(compiled, x16), args.iterations, max(args.warmup, 5)),
                                     floor16))
                frame = _camera_frame(height, width)
                out_size = frame.shape[:2]
                rows.append((f"end-to-end fp16 + graph ({frame.shape[1]}x{frame.shape[0]} uint8 -> depth)",
                             _time_wall(partial(engine.estimate, frame, out_size), args.iterations, args.warmup),
                             floor16))
                eager = statistics.median(rows[0][1])
                for name, times, floor in rows:
                    median = statistics.median(times)
                    print(f"| {network} | {encoder} | {width}x{height} | {name} | {median:.3f} | "
                          f"{_percentile(times, 99):.3f} | {median / eager:.2f} | "
                          f"{floor.floor_ms:.4f} ({floor.bound}) |")
                print(f"<!-- {network}/{encoder} {width}x{height}: {floor32.flops / 1e9:.2f} GFLOP, "
                      f"{floor16.ops} aten ops, {floor32.ideal_bytes / 1e6:.1f} MB fp32 weights + io -->")
                engine.close()
                torch.cuda.empty_cache()
    return 0


# -- CPU -----------------------------------------------------------------------------------------------------------
def _export_models(args: argparse.Namespace, folder: Path) -> list[Path]:
    import torch

    from depth_estimation_ros.networks.export import export_onnx
    from depth_estimation_ros.networks.factory import (
        DepthNetworkConfig,
        build_depth_network,
    )

    torch.manual_seed(0)
    paths = []
    for network in args.networks:
        for encoder in args.encoders:
            cfg = DepthNetworkConfig(network, encoder, pretrained=False, **_layout(args))
            for height, width in args.sizes:
                path = folder / f"{network}_{encoder}_{width}x{height}.onnx"
                export_onnx(build_depth_network(cfg), cfg, path, height, width)
                paths.append(path)
    return paths


def run_cpu(args: argparse.Namespace) -> int:
    import onnxruntime as ort

    from depth_estimation_ros.engines.onnxruntime_engine import OnnxRuntimeEngine
    from depth_estimation_ros.resources.model_registry import bundled_models_dir

    models = [Path(m) for m in args.models] or sorted(Path(bundled_models_dir()).glob("*.onnx"))
    with tempfile.TemporaryDirectory() as tmp:
        if args.export:
            models += _export_models(args, Path(tmp))
        if not models:
            print("no ONNX models to benchmark (none bundled; pass paths or --export)", file=sys.stderr)
            return 1
        print(f"ONNX Runtime {ort.__version__}, CPUExecutionProvider, {args.iterations} timed runs after "
              f"{args.warmup} warm-up, batch 1; CPU reference {cpu_reference_gflops():.0f} GFLOP/s (1-thread sgemm)")
        print()
        print("| model | input | threads | infer median ms | infer p99 ms | end-to-end median ms | fps (e2e median) |")
        print("|---|---|---|---|---|---|---|")
        for path in models:
            for threads in args.threads:
                engine = OnnxRuntimeEngine(str(path), threads=threads)
                h, w = engine.info.input_height, engine.info.input_width
                frame = _camera_frame(h, w)
                batch = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
                infer = _time_wall(partial(engine.infer, batch), args.iterations, args.warmup)
                e2e = _time_wall(partial(engine.estimate, frame, frame.shape[:2]), args.iterations, args.warmup)
                name = path.name if path.parent.name == "models" else f"{path.stem} (untrained export)"
                e2e_median = statistics.median(e2e)
                print(f"| {name} | {w}x{h} | {threads} | {statistics.median(infer):.1f} | "
                      f"{_percentile(infer, 99):.1f} | {e2e_median:.1f} | {1000 / e2e_median:.1f} |")
    return 0


# -- one camera frame end to end on the CPU ------------------------------------------------------------------------
CAMERAS = {  # camera (W x H) -> (compressed frame, intrinsics fx fy cx cy, network input H x W)
    "640x480": ("tum_fr3_cabinet_keyframes/rgb/*.jpg", (535.4, 539.2, 320.1, 247.6), (192, 256)),
    "1242x375": ("kitti_drive0001_frames50_100/rgb/*.png", (721.5, 721.5, 609.6, 172.9), (192, 640)),
}
FRAME_STAGES = ("decode", "preprocess", "inference", "postprocess", "cloud")


def run_frame(args: argparse.Namespace) -> int:
    import torch

    from depth_estimation_ros.benchmarks.networks import build_benchmark_network, round_robin_ms
    from depth_estimation_ros.benchmarks.reference_unet import REFERENCE_NAME
    from depth_estimation_ros.engines.onnxruntime_engine import OnnxRuntimeEngine
    from depth_estimation_ros.frame.camera_model import PinholeCamera
    from depth_estimation_ros.frame.point_cloud import pack_points
    from depth_estimation_ros.frame.stage_timer import StageTimer
    from depth_estimation_ros.messages.image_codec import decode_compressed_to_rgb8
    from depth_estimation_ros.networks.export import export_onnx
    from depth_estimation_ros.pipeline.depth_frame_processor import DepthFrameProcessor, ProcessorSettings

    threads = args.threads[0]
    torch.set_num_threads(threads)
    print(f"ONNX Runtime CPU, {threads} intra-op threads, batch 1; {args.iterations} frames per network after "
          f"{args.warmup} warm-up, networks in one round-robin per camera; CPU reference {cpu_reference_gflops():.0f} "
          "GFLOP/s (1-thread sgemm); median ms per stage")
    print()
    print("| camera | network (input) | decode | preprocess | inference | postprocess | cloud | total | "
          "total x ref | inference x ref |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for camera_name in args.cameras:
        pattern, (fx, fy, cx, cy), (height, width) = CAMERAS[camera_name]
        files = sorted(DATA.glob(pattern))
        if not files:
            print(f"no frames for {camera_name} under {DATA} ({pattern})", file=sys.stderr)
            return 1
        data = files[0].read_bytes()
        fmt = "jpeg" if files[0].suffix == ".jpg" else "png"
        cam_w, cam_h = (int(v) for v in camera_name.split("x"))
        camera = PinholeCamera(cam_w, cam_h, np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64))
        stages: dict[str, dict[str, list[float]]] = {}
        runs = {}
        with tempfile.TemporaryDirectory() as tmp:
            for network in [*args.networks, REFERENCE_NAME]:
                model, cfg, _ = build_benchmark_network(network, args.encoders[0], _layout(args))
                path = export_onnx(model, cfg, Path(tmp) / f"{network}.onnx", height, width,
                                   self_test_reference=False)
                processor = DepthFrameProcessor(OnnxRuntimeEngine(str(path), threads=threads), ProcessorSettings())
                stages[network] = {stage: [] for stage in FRAME_STAGES}

                def one_frame(processor=processor, record=stages[network], fmt=fmt, data=data, camera=camera):
                    timer = StageTimer()
                    with timer.stage("decode"):
                        rgb = decode_compressed_to_rgb8(fmt, data)
                    frame = processor.process(rgb, camera, timer)
                    with timer.stage("cloud"):
                        pack_points(*processor.cloud(frame))
                    for stage in FRAME_STAGES:
                        record[stage].append(timer.durations.get(stage, 0.0) * 1e3)

                runs[network] = one_frame
            totals = round_robin_ms(runs, args.warmup, args.iterations)
        for record in stages.values():  # drop the warm-up frames
            for values in record.values():
                del values[: args.warmup]
        ref_total = totals[REFERENCE_NAME][0]
        ref_inference = statistics.median(stages[REFERENCE_NAME]["inference"])
        for network, record in stages.items():
            medians = {stage: statistics.median(values) for stage, values in record.items()}
            cells = " | ".join(f"{medians[stage]:.1f}" for stage in FRAME_STAGES)
            print(f"| {camera_name} | {network} ({width}x{height}) | {cells} | {totals[network][0]:.1f} | "
                  f"{totals[network][0] / ref_total:.2f} | {medians['inference'] / ref_inference:.2f} |")
    return 0


def _size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return height, width


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m depth_estimation_ros.benchmarks.engines", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("gpu", "cpu", "frame"))
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS))
    parser.add_argument("--encoders", nargs="+", default=["efficientnet_lite0", "resnet18"])
    parser.add_argument("--sizes", nargs="+", type=_size, default=list(SIZES), help="WxH, e.g. 640x192")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--layout", nargs="*", default=list(SHIPPED_LAYOUT), metavar="KEY=VALUE",
                        help="network shape fields (default: the bundled models', %(default)s)")
    parser.add_argument("--skip-compile", action="store_true", help="gpu: skip torch.compile (slow to compile)")
    parser.add_argument("--peak-tflops-fp16", type=float, default=None, help="gpu floor (default: the GPU's sheet)")
    parser.add_argument("--peak-tflops-fp32", type=float, default=None, help="gpu floor (default: the GPU's sheet)")
    parser.add_argument("--peak-bandwidth-gbs", type=float, default=None, help="gpu floor (default: the GPU's sheet)")
    parser.add_argument("--models", nargs="*", default=[], help="cpu: ONNX files (default: the bundled models)")
    parser.add_argument("--export", action="store_true", help="cpu: also export untrained networks at --sizes")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2],
                        help="cpu: intra-op thread counts; frame: the first one")
    parser.add_argument("--cameras", nargs="+", choices=tuple(CAMERAS), default=list(CAMERAS),
                        help="frame: camera sizes (a real frame of each)")
    args = parser.parse_args(argv)
    if args.mode == "frame":
        return run_frame(args)
    return run_gpu(args) if args.mode == "gpu" else run_cpu(args)


if __name__ == "__main__":
    sys.exit(main())
