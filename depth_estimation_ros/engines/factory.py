"""Backend selection: ``auto`` takes TensorRT when it imports and a CUDA GPU is present, else torch on CUDA,
else ONNX Runtime on the CPU."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from depth_estimation_ros.engines.accuracy_gate import DEFAULT_ABS_REL_BOUND
from depth_estimation_ros.engines.base import DepthEngine, EngineError
from depth_estimation_ros.engines.cuda_device import cuda_device_count, torch_cuda_available
from depth_estimation_ros.engines.onnx_precision import INT8_FLOAT_PRECISIONS, INT8_SCOPES, PRECISIONS

if TYPE_CHECKING:
    import numpy as np

BACKENDS = ("auto", "tensorrt", "torch", "onnxruntime")
INT8_FLOAT_CHOICES = ("auto", *INT8_FLOAT_PRECISIONS)  # auto: onnx_precision.resolve_int8_float_precision
LOG = logging.getLogger(__name__)


def tensorrt_available() -> bool:
    """TensorRT imports and a CUDA GPU is visible, to torch or (Jetson with a CPU torch) to pycuda."""
    return importlib.util.find_spec("tensorrt") is not None and cuda_device_count() > 0


def choose_backend(requested: str) -> str:
    if requested not in BACKENDS:
        raise EngineError(f"backend '{requested}' is unknown; choose one of {', '.join(BACKENDS)}")
    if requested != "auto":
        return requested
    if tensorrt_available():
        return "tensorrt"
    if torch_cuda_available():
        return "torch"
    return "onnxruntime"


def _has_checkpoint(model_path: str) -> bool:
    path = Path(model_path)
    return path.suffix in (".pt", ".pth") or path.with_suffix(".pt").is_file() or path.with_suffix(".pth").is_file()


def _auto_backend(model_path: str) -> str:
    """``auto`` for this model file: a checkpoint only runs in torch; torch on an ONNX needs its sibling .pt."""
    chosen = choose_backend("auto")
    if Path(model_path).suffix in (".pt", ".pth"):
        if not torch_cuda_available():
            LOG.info("a checkpoint without a GPU: the torch backend runs it on the CPU")
        return "torch"
    if chosen == "torch" and not _has_checkpoint(model_path):
        LOG.info("no checkpoint beside '%s' for torch: using ONNX Runtime (CUDA provider if the build has it)",
                 model_path)
        return "onnxruntime"
    return chosen


def _calibration_frames(source: str | None, topic: str | None, max_frames: int, model_path: str):
    if not source:
        return None
    from depth_estimation_ros.engines.calibration_frames import load_calibration_frames
    from depth_estimation_ros.onnx_contract.depth_onnx import onnx_input_shape

    _, _, height, width = onnx_input_shape(model_path)
    return load_calibration_frames(source, height, width, topic=topic, max_frames=max_frames)


def create_engine(
    model_path: str,
    backend: str = "auto",
    precision: str = "fp32",
    device: str = "cuda:0",
    threads: int = 0,
    input_size: tuple[int, int] | None = None,
    cache_dir: str | None = None,
    calibration: str | None = None,
    calibration_topic: str | None = None,
    calibration_max_frames: int = 32,
    accuracy_bound: float = DEFAULT_ABS_REL_BOUND,
    on_gate_fail: str = "refuse",
    cuda_graphs: bool = True,
    int8_scope: str = "decoder",
    int8_float: str = "auto",
) -> DepthEngine:
    """Create, load and warm up the engine for a depth model (exported .onnx, or a .pt checkpoint for torch).

    ``device`` applies to torch and TensorRT (ONNX Runtime uses its CUDA provider for a cuda device when the build has
    one, else the CPU). TensorRT: ``cache_dir`` holds engines (default ~/.cache/depth_estimation_ros/engines),
    ``calibration`` (image folder or rosbag, ``calibration_topic``) feeds INT8 calibration and the accuracy gate
    (abs_rel vs fp32 ONNX Runtime <= ``accuracy_bound``; ``on_gate_fail`` 'refuse' or 'fallback' to fp32);
    ``int8_scope`` and ``int8_float`` ('auto' = ModelOpt's fp16 or the ONNX Runtime tool's fp32) shape the INT8 variant.
    """
    _check_options(precision, int8_scope, int8_float)
    chosen = _auto_backend(model_path) if backend == "auto" else choose_backend(backend)
    if chosen == "tensorrt":
        _require_tensorrt()
        frames = _calibration_frames(calibration, calibration_topic, calibration_max_frames, model_path)
        engine = _tensorrt_engine(model_path, precision, device, cache_dir, frames, accuracy_bound, on_gate_fail,
                                  int8_scope, int8_float)
    elif chosen == "torch":
        engine = _torch_engine(model_path, precision, device, input_size, cuda_graphs, threads)
    else:
        engine = _onnxruntime_engine(model_path, precision, device, threads)
    engine.warmup()
    return engine


def _check_options(precision: str, int8_scope: str, int8_float: str) -> None:
    if precision not in PRECISIONS:
        raise EngineError(f"precision '{precision}' is unknown; choose one of {', '.join(PRECISIONS)}")
    if int8_scope not in INT8_SCOPES:
        raise EngineError(f"INT8 scope '{int8_scope}' is unknown; choose one of {', '.join(INT8_SCOPES)}")
    if int8_float not in INT8_FLOAT_CHOICES:
        raise EngineError(f"INT8 float precision '{int8_float}' is unknown; choose one of "
                          f"{', '.join(INT8_FLOAT_CHOICES)}")


def _require_tensorrt() -> None:
    if importlib.util.find_spec("tensorrt") is None:
        raise EngineError(
            "backend 'tensorrt' requested but TensorRT is not installed (no NVIDIA GPU / TensorRT wheels on "
            "this machine); use backend:=auto, torch or onnxruntime"
        )
    if cuda_device_count() == 0:
        raise EngineError(
            "backend 'tensorrt' requested but no CUDA GPU is visible (to torch or pycuda); check the driver "
            "(nvidia-smi / tegrastats) or use backend:=onnxruntime"
        )


def _tensorrt_engine(model_path: str, precision: str, device: str, cache_dir: str | None, frames: np.ndarray | None,
                     accuracy_bound: float, on_gate_fail: str, int8_scope: str, int8_float: str) -> DepthEngine:
    from depth_estimation_ros.engines.tensorrt_engine import TensorRTEngine
    from depth_estimation_ros.engines.tensorrt_prepare import prepare_engine

    return TensorRTEngine(
        prepare_engine(model_path, precision, device, cache_dir, frames, accuracy_bound, on_gate_fail,
                       int8_scope=int8_scope, int8_float_precision=None if int8_float == "auto" else int8_float)
    )


def _torch_engine(model_path: str, precision: str, device: str, input_size: tuple[int, int] | None,
                  cuda_graphs: bool, threads: int) -> DepthEngine:
    from depth_estimation_ros.engines.torch_engine import TorchEngine

    torch_device = device if torch_cuda_available() or not device.startswith("cuda") else "cpu"
    if torch_device != device:
        LOG.warning("device '%s' requested but CUDA is not available: the torch backend runs on the CPU", device)
    return TorchEngine(model_path, precision, torch_device, input_size, cuda_graphs=cuda_graphs, threads=threads)


def _onnxruntime_engine(model_path: str, precision: str, device: str, threads: int) -> DepthEngine:
    from depth_estimation_ros.engines.onnxruntime_engine import OnnxRuntimeEngine

    if Path(model_path).suffix == ".onnx":
        from depth_estimation_ros.engines.onnx_precision import onnx_declared_precision

        declared = onnx_declared_precision(model_path)
        if declared != precision:
            LOG.warning(
                "ONNX Runtime runs '%s' as it is (%s), not %s; for a %s ONNX use depth-build-engine --onnx-only "
                "--precision %s and pass that file", model_path, declared, precision, precision, precision,
            )
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else None
    return OnnxRuntimeEngine(model_path, threads=threads, providers=providers)
