"""One camera frame in, metric depth and its derived products out; no ROS types.

The one per-frame path after decoding, for the node, ``depth-eval`` (evaluation/replay.py) and the benchmarks:
engine.estimate (resize, inference, resample), the REP 118 range conventions with the configured min/max and the
intrinsics of the depth image. Point clouds and colourised depth are computed only when asked for; so is the
per-pixel uncertainty (depth_std of a model that has it, resampled as the depth is, NaN where the depth is not
finite), which is also computed whenever ``max_relative_uncertainty`` masks depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depth_estimation_ros.engines.base import DepthEngine
from depth_estimation_ros.errors import ConfigurationError, InputError
from depth_estimation_ros.frame.camera_model import PinholeCamera
from depth_estimation_ros.frame.colorize import colorize_depth
from depth_estimation_ros.frame.depth_uncertainty import mask_uncertain_depth, uncertainty_image
from depth_estimation_ros.frame.point_cloud import projector_for
from depth_estimation_ros.frame.preprocessing import resize_image
from depth_estimation_ros.frame.range_conventions import apply_range_conventions
from depth_estimation_ros.frame.stage_timer import StageTimer

OUTPUT_RESOLUTIONS = ("model", "input")


class FrameError(InputError):
    """A frame cannot be processed (e.g. image and CameraInfo disagree); the message names the fix."""


@dataclass
class ProcessorSettings:
    min_depth: float = 0.1
    max_depth: float = 80.0
    output_resolution: str = "model"  # "model": the network's input size; "input": the camera image size
    cloud_decimation: int = 1
    cloud_color: bool = True
    max_relative_uncertainty: float = 0.0  # depth with std / depth above it -> NaN; 0 = off

    def validate(self) -> None:
        if not 0 < self.min_depth < self.max_depth:
            raise ConfigurationError(f"need 0 < min_depth < max_depth, got {self.min_depth} and {self.max_depth}")
        if self.output_resolution not in OUTPUT_RESOLUTIONS:
            raise ConfigurationError(
                f"output_resolution must be one of {OUTPUT_RESOLUTIONS}, got '{self.output_resolution}'")
        if self.cloud_decimation < 1:
            raise ConfigurationError(f"cloud_decimation must be >= 1, got {self.cloud_decimation}")
        if not self.max_relative_uncertainty >= 0:
            raise ConfigurationError(
                f"max_relative_uncertainty must be >= 0 (0 = off), got {self.max_relative_uncertainty}")


@dataclass
class DepthFrame:
    rgb: np.ndarray  # the input image, HxWx3 uint8
    depth: np.ndarray  # HdxWd float32 metres, NaN / -Inf / +Inf conventions applied
    camera: PinholeCamera  # intrinsics of the depth image
    estimate: np.ndarray  # HdxWd float32 metres as the engine returned it, before the conventions (what metrics
    # score: they apply their own caps)
    std: np.ndarray | None = None  # HdxWd float32 depth_std as the engine returned it; None when not computed
    uncertainty: np.ndarray | None = None  # HdxWd float32 std (metres), NaN where depth is not finite; None = not
    # asked for or the model has none
    uncertainty_masked: int = 0  # pixels set to NaN by max_relative_uncertainty


class DepthFrameProcessor:
    def __init__(self, engine: DepthEngine, settings: ProcessorSettings) -> None:
        settings.validate()
        self.engine = engine
        self.settings = settings

    def output_size(self, camera: PinholeCamera) -> tuple[int, int]:
        """(height, width) of the published depth."""
        if self.settings.output_resolution == "input":
            return camera.height, camera.width
        return self.engine.info.input_height, self.engine.info.input_width

    def process(self, rgb: np.ndarray, camera: PinholeCamera, timer: StageTimer | None = None,
                with_uncertainty: bool = False, size: tuple[int, int] | None = None) -> DepthFrame:
        """The frame's depth; with ``with_uncertainty`` (and a model with depth_std) its uncertainty image too.

        ``size`` (height, width) overrides ``output_resolution``, e.g. the ground truth's size in evaluation."""
        if rgb.shape[0] != camera.height or rgb.shape[1] != camera.width:
            raise FrameError(
                f"image is {rgb.shape[1]}x{rgb.shape[0]} but camera_info is {camera.width}x{camera.height}; "
                "publish the CameraInfo of this image stream (same resolution / binning)"
            )
        timer = timer or StageTimer()
        height, width = size if size is not None else self.output_size(camera)
        threshold = self.settings.max_relative_uncertainty
        if self.engine.info.has_std and (with_uncertainty or threshold > 0):
            raw, std = self.engine.estimate_with_std(rgb, (height, width), timer)
        else:
            raw, std = self.engine.estimate(rgb, (height, width), timer), None
        with timer.stage("postprocess"):
            depth = apply_range_conventions(raw, self.settings.min_depth, self.settings.max_depth)
            if std is None:
                return DepthFrame(rgb, depth, camera.scaled(width, height), raw)
            depth, masked = mask_uncertain_depth(depth, std, threshold)
            uncertainty = uncertainty_image(depth, std) if with_uncertainty else None
        return DepthFrame(rgb, depth, camera.scaled(width, height), raw, std, uncertainty, masked)

    def cloud(self, frame: DepthFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Organised xyz (H', W', 3) float32 with NaN for invalid points, and the matching rgb (or None)."""
        projector = projector_for(frame.camera, self.settings.cloud_decimation)
        xyz = projector.points(frame.depth)
        if not self.settings.cloud_color:
            return xyz, None
        h, w = frame.depth.shape
        return xyz, np.ascontiguousarray(projector.decimate(resize_image(frame.rgb, h, w)))

    def colorized(self, frame: DepthFrame) -> np.ndarray:
        return colorize_depth(frame.depth, self.settings.min_depth, self.settings.max_depth)
