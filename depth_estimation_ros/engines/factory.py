"""Backend selection: ``auto`` takes TensorRT when it imports and a CUDA GPU is present, else torch on CUDA,
else ONNX Runtime on the CPU."""

from __future__ import annotations

import importlib.util

from depth_estimation_ros.engines.base import DepthEngine, EngineError

BACKENDS = ("auto", "tensorrt", "torch", "onnxruntime")


def cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def tensorrt_available() -> bool:
    return importlib.util.find_spec("tensorrt") is not None and cuda_available()


def choose_backend(requested: str) -> str:
    if requested not in BACKENDS:
        raise EngineError(f"backend '{requested}' is unknown; choose one of {', '.join(BACKENDS)}")
    if requested != "auto":
        return requested
    if tensorrt_available():
        return "tensorrt"
    if cuda_available():
        return "torch"
    return "onnxruntime"


def create_engine(
    model_path: str,
    backend: str = "auto",
    precision: str = "fp32",
    device: str = "cuda:0",
    threads: int = 0,
) -> DepthEngine:
    """Create, load and warm up the engine for an exported depth ONNX model."""
    chosen = choose_backend(backend)
    if chosen == "onnxruntime":
        from depth_estimation_ros.engines.onnxruntime_engine import OnnxRuntimeEngine

        engine: DepthEngine = OnnxRuntimeEngine(model_path, threads=threads)
    else:
        raise EngineError(f"backend '{chosen}' is not available in this build; use backend:=onnxruntime")
    engine.warmup()
    return engine
