"""Is the predicted per-pixel depth_std (sigma, metres) calibrated? Pure functions and an accumulator over frames.

On the pixels with valid ground truth g (after the caps and crop), with the metric prediction p (clamped to the caps):
- coverage: the fraction of pixels with |g - p| <= k sigma for k = 1, 2 (a Gaussian error gives 68.3 % and 95.4 %);
- selective abs_rel: abs_rel of the pixels kept when those with sigma / p above a threshold are dropped, with the
  fraction kept, for several thresholds (a useful uncertainty lowers abs_rel as the threshold tightens), and abs_rel
  of the most certain 10 %, 25 %, ... of the pixels (a ranking measure, independent of the scale of sigma; also ranked
  by sigma in metres, and by the predicted depth alone as the baseline a useful sigma must beat); pooled
  over all pixels of all frames (a frame with more ground truth weighs more), unlike the per-frame means of
  metrics.py;
- the one scale factor s that makes the 1-sigma coverage 68.27 % on these pixels: the 68.27th percentile of
  |g - p| / sigma (sigma' = s sigma). It is fitted on training frames (evaluation/uncertainty_fit.py), never on the
  frames it is then evaluated on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

GAUSSIAN_COVERAGE = {1: math.erf(1 / math.sqrt(2)), 2: math.erf(2 / math.sqrt(2))}  # 0.6827, 0.9545
RELATIVE_THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0, math.inf)  # sigma / depth; inf keeps every pixel


def normalised_errors(g: np.ndarray, p: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """|g - p| / sigma (float64) for matching 1-D arrays; +inf where sigma is 0 or not finite."""
    g, p, sigma = (np.asarray(a, dtype=np.float64) for a in (g, p, sigma))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(g - p) / sigma
    z[~np.isfinite(z)] = np.inf
    return z


def coverage(z: np.ndarray, k: float) -> float:
    """Fraction of normalised errors <= k."""
    return float(np.mean(z <= k)) if z.size else math.nan


def fitted_scale(z: np.ndarray) -> float:
    """The factor s with coverage(z / s, 1) = 68.27 %: the 68.27th percentile of z; NaN when it is not a positive
    finite number (no pixels, or too many with sigma 0)."""
    if z.size == 0:
        return math.nan
    scale = float(np.quantile(z, GAUSSIAN_COVERAGE[1], method="higher"))
    return scale if math.isfinite(scale) and scale > 0 else math.nan


@dataclass
class CalibrationResult:
    pixels: int
    within_1_sigma: float
    within_2_sigma: float
    fitted_scale: float  # sigma' = fitted_scale * sigma gives 68.27 % within 1 sigma' on these pixels
    thresholds: list[float]  # sigma / depth
    kept_fraction: list[float]
    abs_rel_kept: list[float]  # NaN where no pixel is kept
    ranked_fractions: list[float]  # the most certain fraction of the pixels (lowest sigma / depth) ...
    ranked_abs_rel: list[float]  # ... and their abs_rel: independent of the scale of sigma
    ranked_abs_rel_by_sigma: list[float]  # the same, ranked by sigma in metres instead of sigma / depth
    ranked_abs_rel_by_depth: list[float]  # the same, ranked by the predicted depth (nearest first): a baseline
    sigma_depth_rank_correlation: float  # Spearman's rho of sigma and the predicted depth (1: sigma only says distance)

    normalised_errors: np.ndarray | None = None  # |g - p| / sigma of every pixel (for coverage at another scale)

    def within_1_sigma_at(self, scale: float) -> float:
        """Coverage at 1 sigma had sigma been multiplied by ``scale``."""
        return coverage(self.normalised_errors / scale, 1.0)

    def within_2_sigma_at(self, scale: float) -> float:
        return coverage(self.normalised_errors / scale, 2.0)

    def rows(self) -> list[dict]:
        return [{"max_relative_uncertainty": t, "kept_fraction": k, "abs_rel": a}
                for t, k, a in zip(self.thresholds, self.kept_fraction, self.abs_rel_kept)]

    def ranked_rows(self) -> list[dict]:
        return [{"most_certain_fraction": f, "abs_rel": a, "abs_rel_by_sigma": b, "abs_rel_nearest_first": c}
                for f, a, b, c in zip(self.ranked_fractions, self.ranked_abs_rel, self.ranked_abs_rel_by_sigma,
                                      self.ranked_abs_rel_by_depth)]


def abs_rel_of_kept(relative: np.ndarray, abs_rel: np.ndarray, threshold: float) -> tuple[float, float]:
    """(fraction of pixels with relative uncertainty <= threshold, their mean abs_rel (NaN if none))."""
    keep = relative <= threshold
    kept = int(np.count_nonzero(keep))
    return kept / max(relative.size, 1), float(abs_rel[keep].mean()) if kept else math.nan


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two 1-D arrays (ties broken by position); NaN for fewer than 2 values."""
    if a.size < 2:
        return math.nan
    ranks_a = np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(np.float64)
    ranks_b = np.argsort(np.argsort(b, kind="stable"), kind="stable").astype(np.float64)
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def abs_rel_of_most_certain(relative: np.ndarray, abs_rel: np.ndarray, fraction: float) -> float:
    """Mean abs_rel of the ``fraction`` of pixels with the lowest relative uncertainty."""
    count = max(1, int(round(fraction * relative.size)))
    order = np.argsort(relative, kind="stable")[:count]
    return float(abs_rel[order].mean())


RANKED_FRACTIONS = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


class CalibrationAccumulator:
    """Collects the valid pixels' normalised error, relative uncertainty and abs_rel, frame by frame."""

    def __init__(self, thresholds: tuple[float, ...] = RELATIVE_THRESHOLDS,
                 ranked_fractions: tuple[float, ...] = RANKED_FRACTIONS) -> None:
        self.thresholds = thresholds
        self.ranked_fractions = ranked_fractions
        self._z: list[np.ndarray] = []
        self._relative: list[np.ndarray] = []
        self._abs_rel: list[np.ndarray] = []
        self._sigma: list[np.ndarray] = []
        self._depth: list[np.ndarray] = []

    def add(self, g: np.ndarray, p: np.ndarray, sigma: np.ndarray) -> None:
        """1-D ground truth, (clamped) prediction and sigma of one frame's valid pixels."""
        g, p, sigma = (np.asarray(a, dtype=np.float64) for a in (g, p, sigma))
        self._z.append(normalised_errors(g, p, sigma).astype(np.float32))
        with np.errstate(invalid="ignore", divide="ignore"):
            relative = np.where(np.isfinite(sigma), sigma / p, np.inf)
        self._relative.append(relative.astype(np.float32))
        self._abs_rel.append((np.abs(g - p) / g).astype(np.float32))
        self._sigma.append(np.where(np.isfinite(sigma), sigma, np.inf).astype(np.float32))
        self._depth.append(p.astype(np.float32))

    @property
    def pixels(self) -> int:
        return int(sum(z.size for z in self._z))

    def result(self) -> CalibrationResult:
        if not self.pixels:
            raise ValueError("no pixel with ground truth and an uncertainty was collected")
        z = np.concatenate(self._z).astype(np.float64)
        relative = np.concatenate(self._relative)
        abs_rel = np.concatenate(self._abs_rel).astype(np.float64)
        sigma, depth = np.concatenate(self._sigma), np.concatenate(self._depth)
        kept = [abs_rel_of_kept(relative, abs_rel, t) for t in self.thresholds]
        return CalibrationResult(
            pixels=int(z.size), within_1_sigma=coverage(z, 1.0), within_2_sigma=coverage(z, 2.0),
            fitted_scale=fitted_scale(z), thresholds=list(self.thresholds),
            kept_fraction=[k for k, _ in kept], abs_rel_kept=[a for _, a in kept],
            ranked_fractions=list(self.ranked_fractions),
            ranked_abs_rel=[abs_rel_of_most_certain(relative, abs_rel, f) for f in self.ranked_fractions],
            ranked_abs_rel_by_sigma=[abs_rel_of_most_certain(sigma, abs_rel, f) for f in self.ranked_fractions],
            ranked_abs_rel_by_depth=[abs_rel_of_most_certain(depth, abs_rel, f) for f in self.ranked_fractions],
            sigma_depth_rank_correlation=rank_correlation(sigma, depth),
            normalised_errors=z)
