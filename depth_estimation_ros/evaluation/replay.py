"""Replay a bag or a folder dataset through a depth engine, frame by frame, and score every frame.

Each frame goes through the node's per-frame path, ``DepthFrameProcessor.process`` (pipeline/), at the
ground-truth resolution: the same resize, inference, resampling, REP 118 range conventions (the node's min/max,
``output_min_depth`` / ``output_max_depth``) and depth intrinsics. Metrics score the engine's estimate before the
range conventions (evaluation/metrics.py applies its own caps): metric (predictions as they are) and per-frame
median-scaled, both with the depth caps and the optional KITTI crop. Optionally an output bag gets every input
message plus the published products (depth 32FC1, its camera_info, a point cloud and, for models with depth_std,
the uncertainty image), as the node would publish them, for review in RViz / Foxglove.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from depth_estimation_ros.data.bag_reading import BagReader, is_bag_path
from depth_estimation_ros.data.bag_writing import BagWriter, bag_format_for_path
from depth_estimation_ros.engines.base import DepthEngine
from depth_estimation_ros.evaluation import metrics
from depth_estimation_ros.evaluation.frame_sources import (
    BagTopics,
    EvaluationFrame,
    EvaluationInputError,
    SourceStats,
    bag_frames,
    folder_frames,
    resolve_bag_topics,
)
from depth_estimation_ros.evaluation.scene_blind import SceneBlindAccumulator, SceneBlindResult
from depth_estimation_ros.evaluation.uncertainty_calibration import CalibrationAccumulator, CalibrationResult
from depth_estimation_ros.frame.stage_timer import StageTimer
from depth_estimation_ros.pipeline.depth_frame_processor import (
    DepthFrame,
    DepthFrameProcessor,
    FrameError,
    ProcessorSettings,
)

PREDICTION_TOPICS = {
    "depth": "/depth_estimation/depth/image",
    "camera_info": "/depth_estimation/depth/camera_info",
    "points": "/depth_estimation/points",
    "uncertainty": "/depth_estimation/depth/uncertainty",  # models with depth_std only
}
FOLDER_TOPICS = {"image": "/camera/image_raw", "camera_info": "/camera/camera_info",
                 "ground_truth": "/ground_truth/depth"}
SAMPLE_WIDTH = 320  # contact-sheet thumbnails


@dataclass
class EvaluationConfig:
    min_depth: float = 1e-3
    max_depth: float = 80.0
    crop: str = "none"  # none | garg | eigen
    sync_tolerance_s: float = 0.05
    max_frames: int | None = None
    frame_stride: int = 1
    distance_bins: int = 8
    contact_sheet_frames: int = 4
    cloud_decimation: int = 2
    output_min_depth: float = ProcessorSettings.min_depth  # the output bag's range conventions: the node's min_depth
    output_max_depth: float = ProcessorSettings.max_depth  # and max_depth (defaults: the node's)
    frames: tuple[int, int | None, int] | None = None  # (start, stop, step) of frame numbers; None = all
    scene_blind: bool = True  # score the scene-blind references (evaluation/scene_blind.py)

    def selects(self, number: int) -> bool:
        """Whether ``frames`` keeps a frame number (folders: the dataset's, bags: the image's position)."""
        if self.frames is None:
            return True
        start, stop, step = self.frames
        return number >= start and (stop is None or number < stop) and (number - start) % step == 0

    def processor_settings(self) -> ProcessorSettings:
        """The per-frame pipeline's settings: the node's, with this evaluation's output range and cloud step."""
        return ProcessorSettings(min_depth=self.output_min_depth, max_depth=self.output_max_depth,
                                 cloud_decimation=self.cloud_decimation)

    def validate(self) -> None:
        try:
            self.processor_settings().validate()
        except ValueError as exc:
            raise EvaluationInputError(f"output bag settings: {exc}") from None
        if not 0 < self.min_depth < self.max_depth:
            raise EvaluationInputError(
                f"depth caps must satisfy 0 < min_depth < max_depth, got {self.min_depth}, {self.max_depth}")
        if self.crop not in metrics.CROPS:
            raise EvaluationInputError(f"crop '{self.crop}' is unknown; choose one of {', '.join(metrics.CROPS)}")
        if self.frame_stride < 1 or (self.max_frames is not None and self.max_frames < 1):
            raise EvaluationInputError("frame stride and max frames must be >= 1")
        if self.frames is not None:
            start, stop, step = self.frames
            if start < 0 or step < 1 or (stop is not None and stop <= start):
                raise EvaluationInputError(
                    f"frames {start}:{stop}:{step} select nothing; give START:STOP[:STEP] with 0 <= START < STOP "
                    "and STEP >= 1")


@dataclass
class FrameResult:
    index: int
    name: str
    stamp_ns: int
    valid_pixels: int
    metric: dict[str, float]
    scaled: dict[str, float]
    scale_ratio: float
    latency_ms: dict[str, float]


@dataclass
class FrameSample:
    """Downscaled images of one frame for the contact sheet."""

    name: str
    rgb: np.ndarray
    prediction: np.ndarray
    ground_truth: np.ndarray


@dataclass
class EvaluationResult:
    config: dict
    source: dict
    engine: dict
    frames: list[FrameResult] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    distance_edges: list[float] = field(default_factory=list)
    distance_abs_rel_metric: list[float] = field(default_factory=list)
    distance_abs_rel_scaled: list[float] = field(default_factory=list)
    distance_counts: list[int] = field(default_factory=list)
    samples: list[FrameSample] = field(default_factory=list)
    scene_blind: SceneBlindResult | None = None
    scene_blind_note: str | None = None  # why the scene-blind references were not computed
    uncertainty: CalibrationResult | None = None  # None: the model has no depth_std

    def summary(self) -> dict:
        latencies = np.array([f.latency_ms["estimate"] for f in self.frames]) if self.frames else np.zeros(0)
        return {
            "frames_evaluated": len(self.frames),
            "frames_skipped": len(self.skipped),
            "valid_pixels": int(sum(f.valid_pixels for f in self.frames)),
            "metric": metrics.mean_metrics([f.metric for f in self.frames]),
            "median_scaled": metrics.mean_metrics([f.scaled for f in self.frames]),
            "scale_ratio": metrics.scale_ratio_summary([f.scale_ratio for f in self.frames]),
            "latency_ms": {
                "estimate_mean": float(latencies.mean()) if latencies.size else float("nan"),
                "estimate_p50": float(np.percentile(latencies, 50)) if latencies.size else float("nan"),
                "estimate_p99": float(np.percentile(latencies, 99)) if latencies.size else float("nan"),
            },
            "scene_blind": self._scene_blind_summary(),
            "uncertainty": self._uncertainty_summary(),
        }

    def _uncertainty_summary(self) -> dict:
        u = self.uncertainty
        if u is None:
            return {"note": "the model has no depth_std output (no per-pixel distribution)"}
        return {"pixels": u.pixels, "within_1_sigma": u.within_1_sigma, "within_2_sigma": u.within_2_sigma,
                "gaussian_1_sigma": 0.6827, "gaussian_2_sigma": 0.9545, "fitted_scale": u.fitted_scale,
                "uncertainty_scale_applied": self.engine.get("model.uncertainty_scale", "1.0"),
                "selective_abs_rel": u.rows(), "most_certain_abs_rel": u.ranked_rows(),
                "sigma_depth_rank_correlation": u.sigma_depth_rank_correlation}

    def _scene_blind_summary(self) -> dict:
        sb = self.scene_blind
        if sb is None:
            return {"note": self.scene_blind_note}
        return {"mean_prediction": asdict(sb.mean_prediction), "ground_truth_median_leave_one_out":
                asdict(sb.ground_truth_median), "structure_gain": sb.structure_gain, "warning": sb.warning}

    def to_json_dict(self) -> dict:
        return {
            "summary": self.summary(), "config": self.config, "source": self.source, "engine": self.engine,
            "frames": [asdict(f) for f in self.frames], "skipped": self.skipped,
            "scene_blind_frames": self.scene_blind.per_frame if self.scene_blind else [],
            "error_by_distance": {"edges_m": self.distance_edges, "abs_rel_metric": self.distance_abs_rel_metric,
                                  "abs_rel_median_scaled": self.distance_abs_rel_scaled,
                                  "pixels": self.distance_counts},
        }


class _DistanceAccumulator:
    def __init__(self, edges: np.ndarray) -> None:
        self.edges = edges
        n = len(edges) - 1
        self.sum_metric = np.zeros(n)
        self.sum_scaled = np.zeros(n)
        self.counts = np.zeros(n, dtype=np.int64)

    def add(self, g: np.ndarray, p_metric: np.ndarray, p_scaled: np.ndarray) -> None:
        mean_m, counts = metrics.error_by_distance(g, p_metric, self.edges)
        mean_s, _ = metrics.error_by_distance(g, p_scaled, self.edges)
        has = counts > 0
        self.sum_metric[has] += mean_m[has] * counts[has]
        self.sum_scaled[has] += mean_s[has] * counts[has]
        self.counts += counts

    def means(self) -> tuple[list[float], list[float]]:
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.where(self.counts > 0, self.sum_metric / np.maximum(self.counts, 1), np.nan)
            s = np.where(self.counts > 0, self.sum_scaled / np.maximum(self.counts, 1), np.nan)
        return m.tolist(), s.tolist()


def _thumbnail(image: np.ndarray, nearest: bool = False) -> np.ndarray:
    h, w = image.shape[:2]
    width = min(SAMPLE_WIDTH, w)
    height = max(1, round(h * width / w))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


class _OutputBag:
    """Writes the published products (and, for folder input, the input frames) into the output bag."""

    def __init__(self, writer: BagWriter, processor: DepthFrameProcessor, write_inputs: bool) -> None:
        self.writer = writer
        self.processor = processor
        self.write_inputs = write_inputs

    def write(self, frame: EvaluationFrame, products: DepthFrame) -> None:
        w = self.writer
        log_time = frame.log_time_ns or frame.stamp_ns
        if self.write_inputs:
            w.write_image(FOLDER_TOPICS["image"], frame.stamp_ns, frame.frame_id, frame.rgb, "rgb8", log_time)
            w.write_camera_info(FOLDER_TOPICS["camera_info"], frame.stamp_ns, frame.frame_id, frame.camera, log_time)
            if frame.ground_truth is not None:
                w.write_depth(FOLDER_TOPICS["ground_truth"], frame.stamp_ns, frame.frame_id, frame.ground_truth,
                              "32FC1", log_time)
        w.write_depth(PREDICTION_TOPICS["depth"], frame.stamp_ns, frame.frame_id, products.depth, "32FC1", log_time)
        if products.uncertainty is not None:
            w.write_depth(PREDICTION_TOPICS["uncertainty"], frame.stamp_ns, frame.frame_id, products.uncertainty,
                          "32FC1", log_time)
        w.write_camera_info(PREDICTION_TOPICS["camera_info"], frame.stamp_ns, frame.frame_id, products.camera,
                            log_time)
        xyz, rgb = self.processor.cloud(products)
        w.write_point_cloud(PREDICTION_TOPICS["points"], frame.stamp_ns, frame.frame_id, xyz, rgb, log_time)


class _Scoring:
    """Everything scored across frames: per-frame metrics into the result, error by distance, the scene-blind
    references, the depth_std calibration and the contact-sheet samples."""

    def __init__(self, config: EvaluationConfig, engine: DepthEngine, result: EvaluationResult) -> None:
        self.config, self.result = config, result
        self.crop = metrics.CROPS[config.crop]
        self.edges = np.linspace(0.0, config.max_depth, config.distance_bins + 1)
        self.distance = _DistanceAccumulator(self.edges)
        self.blind = SceneBlindAccumulator(config.min_depth, config.max_depth, self.crop) if config.scene_blind \
            else None
        self.calibration = CalibrationAccumulator() if engine.info.has_std else None

    def _clamp(self, p: np.ndarray) -> np.ndarray:
        return metrics.clamp_prediction(p, self.config.min_depth, self.config.max_depth)

    def add(self, frame: EvaluationFrame, products: DepthFrame, latency_ms: dict[str, float], sample: bool) -> None:
        """Score one frame with ground truth; a frame the metrics refuse is recorded as skipped with the reason."""
        config, prediction, truth = self.config, products.estimate, frame.ground_truth
        try:
            scored = metrics.evaluate_frame(truth, prediction, config.min_depth, config.max_depth, self.crop)
        except ValueError as exc:
            self.result.skipped.append({"name": frame.name, "reason": str(exc)})
            return
        self.result.frames.append(FrameResult(frame.index, frame.name, frame.stamp_ns, scored.valid_pixels,
                                              scored.metric, scored.scaled, scored.scale_ratio, latency_ms))
        if self.blind is not None:
            self.blind.add(frame.index, frame.name, truth, prediction, scored)
        mask = metrics.valid_ground_truth_mask(truth, config.min_depth, config.max_depth, self.crop)
        g, p = truth[mask].astype(np.float64), prediction[mask].astype(np.float64)
        self.distance.add(g, self._clamp(p), self._clamp(p * scored.scale_ratio))
        if self.calibration is not None:
            self.calibration.add(g, self._clamp(p), products.std[mask])
        if sample:
            self.result.samples.append(FrameSample(frame.name, _thumbnail(frame.rgb), _thumbnail(prediction),
                                                   _thumbnail(truth, nearest=True)))

    def finish(self) -> None:
        result = self.result
        result.distance_edges = self.edges.tolist()
        result.distance_abs_rel_metric, result.distance_abs_rel_scaled = self.distance.means()
        result.distance_counts = self.distance.counts.tolist()
        if self.blind is not None and result.frames:
            result.scene_blind = self.blind.result()
            result.scene_blind_note = self.blind.note
        elif self.blind is None:
            result.scene_blind_note = "not computed (turned off)"
        if self.calibration is not None and self.calibration.pixels:
            result.uncertainty = self.calibration.result()


def _selected_frames(frames, config: EvaluationConfig, copying: bool):
    """The frames ``config`` selects (frame range, stride, max frames), in order. While ``copying`` into an output
    bag the rest of the input is still read (every input message goes into the bag); otherwise reading stops early."""
    seen = 0
    for frame in frames:
        number = frame.index if frame.number is None else frame.number
        if config.frames is not None and config.frames[1] is not None and number >= config.frames[1] and not copying:
            break  # frame numbers ascend in every source
        if not config.selects(number) or frame.index % config.frame_stride:
            continue
        if config.max_frames is not None and seen >= config.max_frames:
            if not copying:
                break
            continue
        seen += 1
        yield frame


def run_evaluation(
    source: str | Path,
    engine: DepthEngine,
    config: EvaluationConfig | None = None,
    topics: BagTopics | None = None,
    output_bag: str | Path | None = None,
    output_bag_format: str | None = None,
    progress: bool = True,
    dataset_options: dict | None = None,
) -> EvaluationResult:
    """Evaluate ``engine`` on a bag or folder; raises EvaluationInputError / BagError with a fix on bad input."""
    from tqdm import tqdm

    config = config or EvaluationConfig()
    config.validate()
    source = Path(source)
    stats = SourceStats()
    result = EvaluationResult(config=asdict(config), source={"path": str(source)}, engine=engine.info.summary())
    scoring = _Scoring(config, engine, result)
    processor = DepthFrameProcessor(engine, config.processor_settings())
    no_truth = "no ground-truth message within tolerance"

    with _open_source(source, topics, config, output_bag, output_bag_format, stats, processor) as (frames, expected,
                                                                                               out):
        result.source.update(out.source_info)
        expected = expected if config.max_frames is None else min(expected or config.max_frames, config.max_frames)
        sample_at = set(np.linspace(0, max((expected or 1) - 1, 0), config.contact_sheet_frames).round().astype(int)
                        .tolist()) if config.contact_sheet_frames else set()
        with tqdm(total=expected, disable=not progress, unit="frame", desc="depth-eval") as bar:
            for position, frame in enumerate(_selected_frames(frames, config, out.writer is not None)):
                bar.update(1)
                if frame.ground_truth is None and out.writer is None:
                    result.skipped.append({"name": frame.name, "reason": no_truth})
                    continue
                timer = StageTimer()
                size = frame.ground_truth.shape if frame.ground_truth is not None else frame.rgb.shape[:2]
                start = time.perf_counter()
                try:
                    products = processor.process(frame.rgb, frame.camera, timer, size=size, with_uncertainty=(
                        scoring.calibration is not None or out.writer is not None))
                except FrameError as exc:
                    result.skipped.append({"name": frame.name, "reason": str(exc)})
                    continue
                latency = {k: v * 1e3 for k, v in timer.durations.items()}
                latency.update(decode=frame.decode_s * 1e3, estimate=(time.perf_counter() - start) * 1e3)
                if out.writer is not None:
                    out.writer.write(frame, products)
                if frame.ground_truth is None:
                    result.skipped.append({"name": frame.name, "reason": no_truth})
                    continue
                scoring.add(frame, products, latency, sample=position in sample_at)
    result.source.update(images=stats.images, without_ground_truth=stats.without_ground_truth)
    scoring.finish()
    if not result.frames:
        reasons = sorted({s["reason"] for s in result.skipped}) or ["the input has no frames"]
        raise EvaluationInputError(
            f"no frame of '{source}' has usable ground truth ({stats.images} images read): " + "; ".join(reasons)
        )
    return result


class _SourceContext:
    def __init__(self) -> None:
        self.writer: _OutputBag | None = None
        self.source_info: dict = {}


class _open_source:
    """Opens the input (bag or folder) and the optional output bag; yields (frames, expected count, context)."""

    def __init__(self, source: Path, topics: BagTopics | None, config: EvaluationConfig, output_bag, output_format,
                 stats: SourceStats, processor: DepthFrameProcessor) -> None:
        self.source, self.topics, self.config = source, topics or BagTopics(), config
        self.output_bag, self.output_format, self.stats = output_bag, output_format, stats
        self.processor = processor
        self._bag: BagReader | None = None
        self._writer: BagWriter | None = None

    def __enter__(self):
        try:
            return self._enter()
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)  # close what was opened before the error
            raise

    def _enter(self):
        context = _SourceContext()
        if is_bag_path(self.source):
            self._bag = BagReader(self.source).__enter__()
            resolved = resolve_bag_topics(self._bag, self.topics)
            context.source_info = {"kind": "ros1 bag" if self._bag.is_ros1 else "ros2 bag",
                                   "topics": {k: v for k, v in vars(resolved).items() if v},
                                   "ground_truth": "depth image" if resolved.depth else "lidar"}
            copy = None
            if self.output_bag is not None:
                fmt = output_format_for(self.output_bag, self.output_format, self._bag.is_ros1)
                self._writer = BagWriter(self.output_bag, fmt).__enter__()
                bag, writer = self._bag, self._writer

                def copy(m):
                    writer.write_raw(m.topic, m.msgtype, m.log_time_ns, m.raw, typestore=bag.typestore)
                context.writer = _OutputBag(self._writer, self.processor, False)
            frames = bag_frames(self._bag, resolved, self.config.sync_tolerance_s, self.stats, copy)
            images = self._bag.count(resolved.image)
            expected = sum(1 for n in range(images) if self.config.selects(n)) // self.config.frame_stride
            return frames, expected, context
        if not self.source.is_dir():
            raise EvaluationInputError(
                f"'{self.source}' is neither a rosbag (.bag, .mcap or .db3 file, or ROS 2 bag folder with "
                "metadata.yaml) nor a dataset folder (KITTI raw / TUM RGB-D); pass one of these"
            )
        from depth_estimation_ros.data.datasets import open_dataset

        dataset = open_dataset(self.source)
        context.source_info = {"kind": f"folder ({type(dataset).__name__})",
                               "ground_truth": getattr(dataset, "ground_truth", "depth")}
        if self.output_bag is not None:
            fmt = output_format_for(self.output_bag, self.output_format, False)
            self._writer = BagWriter(self.output_bag, fmt).__enter__()
            context.writer = _OutputBag(self._writer, self.processor, True)
        expected = sum(1 for n in dataset.frame_numbers() if self.config.selects(n)) // self.config.frame_stride
        return folder_frames(self.source, self.stats), expected, context

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self._writer is not None:
                self._writer.__exit__(exc_type, exc, tb)
        finally:
            if self._bag is not None:
                self._bag.__exit__(exc_type, exc, tb)


def output_format_for(path: str | Path, requested: str | None, input_is_ros1: bool) -> str:
    """ROS 1 input -> ROS 1 output (messages are copied byte for byte); ROS 2 / folder -> requested or mcap."""
    if input_is_ros1:
        if Path(path).suffix != ".bag":
            raise EvaluationInputError(
                f"the input is a ROS 1 bag, so the output bag is ROS 1 too and must end in .bag (got '{path}')")
        return "ros1"
    if Path(path).suffix == ".bag":
        raise EvaluationInputError(
            f"output bag '{path}' ends in .bag (ROS 1) but the input is ROS 2 / a folder; give a folder path for a "
            "ROS 2 bag (sqlite3 or mcap)")
    return bag_format_for_path(path, requested or "mcap")
