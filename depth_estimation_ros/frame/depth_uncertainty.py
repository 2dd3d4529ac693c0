"""Per-pixel depth uncertainty (the network's depth_std, metres) in the published depth image's conventions.

Pure functions on HxW float32 arrays, shared by the node's frame processor and the evaluation:
- ``uncertainty_image``: std where the published depth is a finite measurement, NaN elsewhere (NaN invalid depth,
  -Inf / +Inf out of range, and pixels masked for being too uncertain);
- ``mask_uncertain_depth``: depth set to NaN where std / depth exceeds a threshold (a pixel with no finite std counts
  as above it; out-of-range +-Inf pixels are left as they are).
"""

from __future__ import annotations

import numpy as np


def relative_uncertainty(depth: np.ndarray, std: np.ndarray) -> np.ndarray:
    """std / depth (float32); NaN where depth is not a positive finite value or std is not finite."""
    depth = np.asarray(depth, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.asarray(std, dtype=np.float32) / depth
    ratio[~(np.isfinite(depth) & (depth > 0)) | ~np.isfinite(ratio)] = np.nan
    return ratio


def mask_uncertain_depth(depth: np.ndarray, std: np.ndarray, max_relative: float) -> tuple[np.ndarray, int]:
    """(depth with NaN where std / depth > max_relative, number of pixels so masked); max_relative 0 = off.

    Only finite depths are tested; one with a non-finite std is masked too (its uncertainty is unknown).
    """
    if max_relative <= 0:
        return depth, 0
    finite = np.isfinite(depth)
    with np.errstate(invalid="ignore"):
        masked = finite & ~(relative_uncertainty(depth, std) <= np.float32(max_relative))
    count = int(np.count_nonzero(masked))
    if count:
        depth = depth.copy()
        depth[masked] = np.nan
    return depth, count


def uncertainty_image(depth: np.ndarray, std: np.ndarray) -> np.ndarray:
    """float32 std where ``depth`` (conventions applied) is finite, NaN elsewhere."""
    out = np.array(std, dtype=np.float32, copy=True)
    out[~np.isfinite(depth) | ~np.isfinite(out)] = np.nan
    return out
