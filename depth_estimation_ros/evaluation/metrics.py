"""Depth error metrics as small pure functions on 1-D arrays of valid ground truth ``g`` and prediction ``p``.

Definitions follow Eigen et al. (NIPS 2014) as used by monodepth2 (Godard et al., ICCV 2019):
abs_rel = mean(|g - p| / g), sq_rel = mean((g - p)^2 / g), rmse = sqrt(mean((g - p)^2)),
rmse_log = sqrt(mean((ln g - ln p)^2)), log10 = mean(|log10 g - log10 p|), d_k = mean(max(g/p, p/g) < 1.25^k).
Self-supervised protocol: per-image median scaling r = median(g) / median(p), predictions then clamped to the caps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "d1", "d2", "d3")

# Crops as fractions of (height, width): rows [top, bottom), cols [left, right).
# Garg et al. (ECCV 2016) crop, used by monodepth2 for the KITTI Eigen split.
GARG_CROP = (0.40810811, 0.99189189, 0.03594771, 0.96405229)
# Eigen et al. (NIPS 2014) crop.
EIGEN_CROP = (0.3324324, 0.91351351, 0.0359477, 0.96405229)
CROPS = {"none": None, "garg": GARG_CROP, "eigen": EIGEN_CROP}


def abs_rel(g: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(g - p) / g))


def sq_rel(g: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((g - p) ** 2 / g))


def rmse(g: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((g - p) ** 2)))


def rmse_log(g: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.log(g) - np.log(p)) ** 2)))


def log10(g: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(np.log10(g) - np.log10(p))))


def delta_accuracy(g: np.ndarray, p: np.ndarray, power: int) -> float:
    """Fraction of pixels with max(g/p, p/g) < 1.25^power."""
    return float(np.mean(np.maximum(g / p, p / g) < 1.25**power))


def depth_metrics(g: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """All metrics for matching 1-D float64 arrays of positive ground truth and prediction."""
    g = np.asarray(g, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if g.shape != p.shape or g.ndim != 1:
        raise ValueError(f"ground truth {g.shape} and prediction {p.shape} must be matching 1-D arrays")
    if g.size == 0:
        raise ValueError("no valid ground-truth pixels to compute metrics on")
    return {
        "abs_rel": abs_rel(g, p), "sq_rel": sq_rel(g, p), "rmse": rmse(g, p), "rmse_log": rmse_log(g, p),
        "log10": log10(g, p), "d1": delta_accuracy(g, p, 1), "d2": delta_accuracy(g, p, 2),
        "d3": delta_accuracy(g, p, 3),
    }


def crop_mask(height: int, width: int, crop: tuple[float, float, float, float] | None) -> np.ndarray:
    """Boolean HxW mask of the crop (fractions top, bottom, left, right); all True for None."""
    mask = np.zeros((height, width), dtype=bool)
    if crop is None:
        mask[:] = True
        return mask
    top, bottom, left, right = crop
    mask[int(top * height):int(bottom * height), int(left * width):int(right * width)] = True
    return mask


def valid_ground_truth_mask(gt: np.ndarray, min_depth: float, max_depth: float,
                            crop: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """Pixels with finite ground truth inside (min_depth, max_depth) and inside the crop."""
    with np.errstate(invalid="ignore"):
        mask = np.isfinite(gt) & (gt > min_depth) & (gt < max_depth)
    return mask & crop_mask(gt.shape[0], gt.shape[1], crop)


def median_scale(g: np.ndarray, p: np.ndarray) -> float:
    """Per-image scale r = median(g) / median(p) (monodepth2's median scaling)."""
    mp = float(np.median(p))
    if not mp > 0:
        raise ValueError("the median prediction is not positive; cannot median-scale")
    return float(np.median(g)) / mp


def clamp_prediction(p: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """Clamp predictions to the caps; non-finite predictions become the nearest cap (NaN -> max_depth)."""
    out = np.nan_to_num(np.asarray(p, dtype=np.float64), nan=max_depth, posinf=max_depth, neginf=min_depth)
    return np.clip(out, min_depth, max_depth)


@dataclass(frozen=True)
class FrameEvaluation:
    valid_pixels: int
    metric: dict[str, float]  # predictions as they are (clamped to the caps)
    scaled: dict[str, float]  # per-frame median-scaled, then clamped
    scale_ratio: float


def evaluate_frame(gt: np.ndarray, pred: np.ndarray, min_depth: float, max_depth: float,
                   crop: tuple[float, float, float, float] | None = None) -> FrameEvaluation:
    """Metric and median-scaled metrics of one frame; gt and pred are HxW metres (gt NaN = none).

    Raises ValueError when the frame has no valid ground truth after the caps and the crop.
    """
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in size")
    mask = valid_ground_truth_mask(gt, min_depth, max_depth, crop)
    if not mask.any():
        raise ValueError(
            f"frame has no ground-truth pixel inside ({min_depth}, {max_depth}) m and the crop; "
            "check the depth caps (--min-depth/--max-depth), the crop and the ground-truth topic"
        )
    g = gt[mask].astype(np.float64)
    raw = np.asarray(pred, dtype=np.float64)[mask]
    metric = depth_metrics(g, clamp_prediction(raw, min_depth, max_depth))
    finite = raw[np.isfinite(raw) & (raw > 0)]
    ratio = median_scale(g, finite) if finite.size else float("nan")
    scaled = depth_metrics(g, clamp_prediction(raw * ratio, min_depth, max_depth)) if finite.size else \
        {k: float("nan") for k in METRIC_NAMES}
    return FrameEvaluation(int(mask.sum()), metric, scaled, ratio)


def mean_metrics(per_frame: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over frames (the KITTI protocol averages per-image metrics)."""
    if not per_frame:
        return {k: float("nan") for k in METRIC_NAMES}
    return {k: float(np.mean([m[k] for m in per_frame])) for k in METRIC_NAMES}


def scale_ratio_summary(ratios: list[float]) -> dict[str, float]:
    """Median and standard deviation of the per-frame median-scaling ratios (and std / median)."""
    r = np.asarray([x for x in ratios if np.isfinite(x)], dtype=np.float64)
    if r.size == 0:
        return {"median": float("nan"), "std": float("nan"), "std_over_median": float("nan")}
    med = float(np.median(r))
    std = float(np.std(r))
    return {"median": med, "std": std, "std_over_median": std / med if med else float("nan")}


def error_by_distance(gt: np.ndarray, pred: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean abs_rel and pixel count per ground-truth distance bin [edges[i], edges[i+1]) over 1-D arrays."""
    g = np.asarray(gt, dtype=np.float64)
    p = np.asarray(pred, dtype=np.float64)
    index = np.digitize(g, edges) - 1
    n = len(edges) - 1
    inside = (index >= 0) & (index < n)
    rel = np.abs(g - p) / g
    sums = np.bincount(index[inside], weights=rel[inside], minlength=n)
    counts = np.bincount(index[inside], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return means, counts
