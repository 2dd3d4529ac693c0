"""The engine interface every backend implements.

An engine is loaded once, preallocates what it needs and is warmed up; ``infer`` maps a batch of RGB images
(N, 3, H, W float32 in [0, 1], H and W the engine's input size) to metric depth (N, 1, H, W float32, metres).
``estimate`` is the whole per-frame path (resize, infer, resample back) and is what the node and the evaluation
call, so both run exactly the same pre/post-processing. GPU engines override it to keep the work on the device.

A model with the second output ``depth_std`` (LacDepth: the standard deviation of its per-pixel depth distribution,
metres) gives it through ``infer_with_std`` / ``estimate_with_std``, multiplied by the model metadata's
``uncertainty_scale`` (a calibration factor, default 1); other models give None there.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from depth_estimation_ros.errors import ModelError
from depth_estimation_ros.frame import preprocessing
from depth_estimation_ros.frame.stage_timer import StageTimer
from depth_estimation_ros.onnx_contract.depth_onnx import UNCERTAINTY_SCALE_KEY


class EngineError(ModelError):
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
    has_std: bool = False  # the model outputs depth_std

    @property
    def uncertainty_scale(self) -> float:
        """Factor applied to the raw depth_std (metadata ``uncertainty_scale``, fitted by depth-fit-uncertainty)."""
        return uncertainty_scale_from_metadata(self.metadata)

    def summary(self) -> dict[str, str]:
        """Flat string key/values for diagnostics and reports."""
        out = {
            "backend": self.backend,
            "precision": self.precision,
            "device": self.device,
            "input_size": f"{self.input_width}x{self.input_height}",
            "model_path": self.model_path,
            "uncertainty": "depth_std" if self.has_std else "none",
        }
        out.update({f"model.{k}": str(v) for k, v in sorted(self.metadata.items())})
        return out


def uncertainty_scale_from_metadata(metadata: dict[str, str]) -> float:
    """metadata ``uncertainty_scale`` as a positive finite float (1.0 when absent); a bad value is an EngineError."""
    text = metadata.get(UNCERTAINTY_SCALE_KEY, "1.0")
    try:
        scale = float(text)
    except ValueError:
        scale = math.nan
    if not (math.isfinite(scale) and scale > 0):
        raise EngineError(f"model metadata uncertainty_scale is '{text}'; it must be a positive number (re-run "
                          "depth-fit-uncertainty, or remove the entry)")
    return scale


class DepthEngine(ABC):
    info: EngineInfo

    @abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 RGB in [0, 1] -> (N, 1, H, W) float32 depth in metres."""

    def estimate(
        self, rgb: np.ndarray, output_size: tuple[int, int] | None = None, timer: StageTimer | None = None
    ) -> np.ndarray:
        """HxWx3 uint8 RGB -> float32 depth (metres) of output_size (height, width), default the input size.

        Range conventions (NaN / +-Inf) are not applied here; see frame/range_conventions.py.
        """
        timer = timer or StageTimer()
        h, w = output_size or (self.info.input_height, self.info.input_width)
        with timer.stage("preprocess"):
            batch = preprocessing.to_network_input(rgb, self.info.input_height, self.info.input_width)
        with timer.stage("inference"):
            depth = self.infer(batch)[0, 0]
        with timer.stage("postprocess"):
            return preprocessing.resize_depth(depth, h, w)

    def infer_with_std(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``infer``'s depth and, when the model has it, depth_std (N, 1, H, W metres, uncertainty_scale applied)."""
        return self.infer(batch), None

    def estimate_with_std(
        self, rgb: np.ndarray, output_size: tuple[int, int] | None = None, timer: StageTimer | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``estimate``'s depth and, when the model has it, depth_std resampled the same way (else None)."""
        if not self.info.has_std:
            return self.estimate(rgb, output_size, timer), None
        timer = timer or StageTimer()
        h, w = output_size or (self.info.input_height, self.info.input_width)
        with timer.stage("preprocess"):
            batch = preprocessing.to_network_input(rgb, self.info.input_height, self.info.input_width)
        with timer.stage("inference"):
            depth, std = self.infer_with_std(batch)
        with timer.stage("postprocess"):
            return preprocessing.resize_depth(depth[0, 0], h, w), preprocessing.resize_depth(std[0, 0], h, w)

    def warmup(self, iterations: int = 2) -> None:
        batch = np.full((1, 3, self.info.input_height, self.info.input_width), 0.5, dtype=np.float32)
        for _ in range(iterations):
            self.infer(batch)

    def close(self) -> None:  # noqa: B027 - optional hook, deliberately not abstract
        """Release device resources (optional)."""
