"""Inference engines behind one interface (DepthEngine): TensorRT, torch, ONNX Runtime."""

from depth_estimation_ros.engines.base import DepthEngine, EngineError, EngineInfo
from depth_estimation_ros.engines.factory import create_engine

__all__ = ["DepthEngine", "EngineError", "EngineInfo", "create_engine"]
