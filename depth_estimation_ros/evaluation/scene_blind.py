"""Scene-blind references: does a model's depth depend on the image?

Two predictions that never look at the evaluated image, scored on the same frames with the same protocol
(metric and per-frame median-scaled, caps, crop) as the model:

- (b) the model's **mean prediction**: the per-pixel mean of its predictions over all evaluated frames, used as the
  prediction of every frame. A model that outputs the same depth whatever the image scores exactly as (b).
- (c) the **leave-one-out ground-truth median**: for frame i, the per-pixel median of the other frames' ground
  truth, taken over the frames where that pixel has a value (lidar is sparse). Pixels with no value in any other
  frame are left out of (c) only, and counted.

``structure gain = abs_rel(b) - abs_rel(a)``: how much the model gains over its own scene-blind average; below
STRUCTURE_GAIN_WARNING the depth does not follow the image.

Memory: the ground truth of every evaluated frame is kept (float32 at the evaluation resolution, NaN = none) and
(c) needs as much again, so about 8 bytes per pixel per frame (200 frames of 640x480: ~0.5 GB; of 1242x375:
~0.75 GB); the prediction mean needs one float64 sum and a count per pixel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from depth_estimation_ros.evaluation import metrics

STRUCTURE_GAIN_WARNING = 0.02
WARNING_TEXT = "this model does not use the image on these frames"
_BLOCK_ELEMENTS = 1 << 22  # leave-one-out median sorts this many values at a time


def mean_prediction(prediction_sum: np.ndarray, prediction_count: np.ndarray) -> np.ndarray:
    """Per-pixel mean of the finite predictions (sum / count); NaN where no frame had a finite prediction."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(prediction_count > 0, prediction_sum / np.maximum(prediction_count, 1), np.nan)


def leave_one_out_median(stack: np.ndarray) -> np.ndarray:
    """(N, H, W) ground truth (NaN = none) -> (N, H, W): out[i] = per-pixel median of stack[j != i] over the frames
    with a value there; NaN where no other frame has one.

    One sort per pixel column: removing frame i's value from the sorted column shifts the two middle positions of
    the remaining m values by one where they lie at or after its rank.
    """
    stack = np.asarray(stack, dtype=np.float32)
    n = stack.shape[0]
    flat = stack.reshape(n, -1)
    out = np.empty_like(flat)
    step = max(1, _BLOCK_ELEMENTS // max(n, 1))
    frame_rank = np.arange(n)[:, None]
    for start in range(0, flat.shape[1], step):
        block = flat[:, start:start + step]
        order = np.argsort(block, axis=0, kind="stable")  # NaN last
        ordered = np.take_along_axis(block, order, axis=0)
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.broadcast_to(frame_rank, order.shape), axis=0)
        valid = np.isfinite(block)
        others = valid.sum(axis=0, keepdims=True) - valid  # values left once frame i is removed
        lo = (others - 1) // 2
        hi = others // 2
        lo = lo + (valid & (lo >= rank))
        hi = hi + (valid & (hi >= rank))
        a = np.take_along_axis(ordered, np.clip(lo, 0, n - 1), axis=0)
        b = np.take_along_axis(ordered, np.clip(hi, 0, n - 1), axis=0)
        out[:, start:start + step] = np.where(others > 0, (a + b) / 2, np.nan)
    return out.reshape(stack.shape)


def structure_gain(scene_blind_abs_rel: float, model_abs_rel: float) -> float:
    """abs_rel(b) - abs_rel(a): positive when the model beats its own image-independent mean prediction."""
    return float(scene_blind_abs_rel - model_abs_rel)


@dataclass
class ReferenceScores:
    """Scores of one scene-blind prediction over the frames where it could be evaluated."""

    frames: int = 0
    metric: dict[str, float] = field(default_factory=dict)
    median_scaled: dict[str, float] = field(default_factory=dict)
    scale_ratio: dict[str, float] = field(default_factory=dict)
    excluded_pixels: int = 0  # evaluated ground-truth pixels this reference has no value for
    frames_without_pixels: int = 0  # frames left out because of that


@dataclass
class SceneBlindResult:
    mean_prediction: ReferenceScores
    ground_truth_median: ReferenceScores
    structure_gain: dict[str, float]  # median_scaled / metric: abs_rel(b) - abs_rel(a)
    warning: str | None
    per_frame: list[dict] = field(default_factory=list)  # index, name, abs_rel of (b) and (c) in both protocols


class SceneBlindAccumulator:
    """Collects, frame by frame, what the scene-blind references need: the ground truth inside the caps and the
    running sum of the model's predictions."""

    def __init__(self, min_depth: float, max_depth: float, crop: tuple[float, float, float, float] | None) -> None:
        self.min_depth, self.max_depth, self.crop = min_depth, max_depth, crop
        self.truths: list[np.ndarray] = []
        self.frames: list[tuple[int, str]] = []
        self.model_abs_rel: list[tuple[float, float]] = []  # (metric, median-scaled) of (a), per frame
        self.prediction_sum: np.ndarray | None = None
        self.prediction_count: np.ndarray | None = None
        self.note: str | None = None

    def add(self, index: int, name: str, ground_truth: np.ndarray, prediction: np.ndarray,
            model: metrics.FrameEvaluation) -> None:
        if self.note is not None:
            return
        if self.truths and ground_truth.shape != self.truths[0].shape:
            self.note = (f"not computed: frame {name} is {ground_truth.shape[1]}x{ground_truth.shape[0]}, the first "
                         f"was {self.truths[0].shape[1]}x{self.truths[0].shape[0]} (needs one image size)")
            return
        inside = metrics.valid_ground_truth_mask(ground_truth, self.min_depth, self.max_depth)
        self.truths.append(np.where(inside, ground_truth, np.nan).astype(np.float32))
        if self.prediction_sum is None:
            self.prediction_sum = np.zeros(ground_truth.shape, np.float64)
            self.prediction_count = np.zeros(ground_truth.shape, np.int32)
        finite = np.isfinite(prediction)
        self.prediction_sum[finite] += prediction[finite]
        self.prediction_count += finite
        self.frames.append((index, name))
        self.model_abs_rel.append((model.metric["abs_rel"], model.scaled["abs_rel"]))

    def result(self) -> SceneBlindResult | None:
        """Score (b) and (c) on the collected frames; None (with ``note`` set) when they cannot be computed."""
        if self.note is not None:
            return None
        if len(self.truths) < 2:
            self.note = "not computed: needs at least 2 evaluated frames"
            return None
        mean = mean_prediction(self.prediction_sum, self.prediction_count)
        stack = np.stack(self.truths)
        self.truths = []  # the stack holds them now
        loo = leave_one_out_median(stack)
        b_scores, c_scores, per_frame = [], [], []
        c = ReferenceScores()
        for (index, name), gt, median in zip(self.frames, stack, loo):
            b = metrics.evaluate_frame(gt, mean, self.min_depth, self.max_depth, self.crop)
            b_scores.append(b)
            row = {"index": index, "name": name, "mean_prediction_abs_rel": b.metric["abs_rel"],
                   "mean_prediction_scaled_abs_rel": b.scaled["abs_rel"]}
            evaluated = metrics.valid_ground_truth_mask(gt, self.min_depth, self.max_depth, self.crop)
            missing = evaluated & ~np.isfinite(median)
            c.excluded_pixels += int(missing.sum())
            row["gt_median_excluded_pixels"] = int(missing.sum())
            if not (evaluated & ~missing).any():
                c.frames_without_pixels += 1
                row["gt_median_abs_rel"] = row["gt_median_scaled_abs_rel"] = float("nan")
            else:
                scored = metrics.evaluate_frame(np.where(missing, np.nan, gt), median, self.min_depth,
                                                self.max_depth, self.crop)
                c_scores.append(scored)
                row["gt_median_abs_rel"] = scored.metric["abs_rel"]
                row["gt_median_scaled_abs_rel"] = scored.scaled["abs_rel"]
            per_frame.append(row)
        b_ref = _reference(b_scores)
        c_ref = _reference(c_scores)
        c_ref.excluded_pixels, c_ref.frames_without_pixels = c.excluded_pixels, c.frames_without_pixels
        model_metric = float(np.mean([m for m, _ in self.model_abs_rel]))
        model_scaled = float(np.mean([s for _, s in self.model_abs_rel]))
        gain = {"median_scaled": structure_gain(b_ref.median_scaled["abs_rel"], model_scaled),
                "metric": structure_gain(b_ref.metric["abs_rel"], model_metric)}
        warning = None
        if not gain["median_scaled"] >= STRUCTURE_GAIN_WARNING:
            warning = (f"structure gain {gain['median_scaled']:.4f} < {STRUCTURE_GAIN_WARNING} (median-scaled "
                       f"abs_rel of the mean prediction minus the model's): {WARNING_TEXT}")
        return SceneBlindResult(b_ref, c_ref, gain, warning, per_frame)


def _reference(scores: list[metrics.FrameEvaluation]) -> ReferenceScores:
    return ReferenceScores(
        frames=len(scores),
        metric=metrics.mean_metrics([s.metric for s in scores]),
        median_scaled=metrics.mean_metrics([s.scaled for s in scores]),
        scale_ratio=metrics.scale_ratio_summary([s.scale_ratio for s in scores]),
    )
