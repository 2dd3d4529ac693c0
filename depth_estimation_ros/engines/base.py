"""The engine interface every backend implements.

An engine is loaded once, preallocates what it needs and is warmed up; ``infer`` maps a batch of RGB images
(N, 3, H, W float32 in [0, 1], H and W the engine's input size) to metric depth (N, 1, H, W float32, metres).
``estimate`` is the whole per-frame path (resize, infer, resample back) and is what the node and the evaluation
call, so both run exactly the same pre/post-processing. GPU engines override it to keep the work on the device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from depth_estimation_ros import preprocessing
from depth_estimation_ros.stage_timer import StageTimer


class EngineError(RuntimeError):
    """An engine cannot be created or run; the message names the file, what was expected and the fix."""


@dataclass(frozen=True)
class EngineInfo:
    backend: str  # "onnxruntime" | "torch" | "tensorrt"
    precision: str  # "fp32" | "fp16" | "int8"
    device: str  # "cpu" | "cuda:0" | ...
    input_height: int
    input_width: int
    model_path: str
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def min_depth(self) -> float:
        return float(self.metadata.get("min_depth", 0.1))

    @property
    def max_depth(self) -> float:
        return float(self.metadata.get("max_depth", 100.0))

    def summary(self) -> dict[str, str]:
        """Flat string key/values for diagnostics and reports."""
        out = {
            "backend": self.backend,
            "precision": self.precision,
            "device": self.device,
            "input_size": f"{self.input_width}x{self.input_height}",
            "model_path": self.model_path,
        }
        out.update({f"model.{k}": str(v) for k, v in sorted(self.metadata.items())})
        return out


class DepthEngine(ABC):
    info: EngineInfo

    @abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 RGB in [0, 1] -> (N, 1, H, W) float32 depth in metres."""

    def estimate(
        self, rgb: np.ndarray, output_size: tuple[int, int] | None = None, timer: StageTimer | None = None
    ) -> np.ndarray:
        """HxWx3 uint8 RGB -> float32 depth (metres) of output_size (height, width), default the input size.

        Range conventions (NaN / +-Inf) are not applied here; see preprocessing.apply_range_conventions.
        """
        timer = timer or StageTimer()
        h, w = output_size or (self.info.input_height, self.info.input_width)
        with timer.stage("preprocess"):
            batch = preprocessing.to_network_input(rgb, self.info.input_height, self.info.input_width)
        with timer.stage("inference"):
            depth = self.infer(batch)[0, 0]
        with timer.stage("postprocess"):
            return preprocessing.resize_depth(depth, h, w)

    def warmup(self, iterations: int = 2) -> None:
        batch = np.full((1, 3, self.info.input_height, self.info.input_width), 0.5, dtype=np.float32)
        for _ in range(iterations):
            self.infer(batch)

    def close(self) -> None:  # noqa: B027 - optional hook, deliberately not abstract
        """Release device resources (optional)."""
