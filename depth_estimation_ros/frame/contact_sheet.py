"""The pieces every contact sheet is made of (depth-eval's report, the before/after comparison, the demo): the
colour range of a row, the ground-truth tile, labelled tiles and rows stacked into one image. RGB uint8 throughout.
"""

from __future__ import annotations

import cv2
import numpy as np

from depth_estimation_ros.frame.colorize import colorize_depth

SPARSE_FRACTION = 0.2  # ground truth with fewer valid pixels than this (lidar) is thickened to be visible


def valid_depths(depth: np.ndarray) -> np.ndarray:
    """The finite, positive values of a depth image (1-D)."""
    return depth[np.isfinite(depth) & (depth > 0)]


def depth_colour_range(values: np.ndarray, percentiles: tuple[float, float], fallback: tuple[float, float]
                       ) -> tuple[float, float]:
    """(low, high) metres for colorize_depth: the given percentiles of ``values`` (1-D), ``fallback`` without any."""
    if values.size == 0:
        return fallback
    low, high = (float(v) for v in np.percentile(values, percentiles))
    low = max(low, 1e-3)
    return low, max(high, low * 1.01)


def ground_truth_tile(ground_truth: np.ndarray, low: float, high: float, dilate: int = 3) -> np.ndarray:
    """The ground truth coloured like the predictions (invalid pixels black); sparse ground truth dilated."""
    tile = colorize_depth(np.where(np.isfinite(ground_truth) & (ground_truth > 0), ground_truth, np.nan), low, high)
    if np.isfinite(ground_truth).mean() < SPARSE_FRACTION:
        tile = cv2.dilate(tile, np.ones((dilate, dilate), np.uint8))
    return tile


def labelled(tile: np.ndarray, text: str, scale: float = 0.5) -> np.ndarray:
    """A copy of ``tile`` with ``text`` in its top-left corner."""
    out = np.ascontiguousarray(tile.copy())
    thickness = 1 if scale < 0.6 else 2
    cv2.putText(out, text, (4, int(8 + 24 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness,
                cv2.LINE_AA)
    return out


def stack_rows(rows: list[np.ndarray]) -> np.ndarray:
    """Rows of tiles one under the other, the narrower ones padded black on the right."""
    width = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)
