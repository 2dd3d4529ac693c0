"""Depth (REP 118 float32 metres) -> rgb8 colour map for RViz, without ROS.

Near is red, far is blue (OpenCV's turbo colormap). Scaling is in inverse depth by default, which spends the
colour range where a monocular network's relative accuracy is (near range); ``log`` is the alternative.
Pixels without a finite positive depth (NaN, +-Inf, <= 0) are black.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

SCALINGS = ("inverse", "log")


@lru_cache(maxsize=1)
def turbo_lut() -> np.ndarray:
    """(256, 3) uint8 RGB turbo colormap, index 0 blue (far) .. 255 red (near)."""
    ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
    bgr = cv2.applyColorMap(ramp, cv2.COLORMAP_TURBO).reshape(256, 3)
    return np.ascontiguousarray(bgr[:, ::-1])


def colorize_depth(
    depth: np.ndarray,
    min_depth: float | None = None,
    max_depth: float | None = None,
    scaling: str = "inverse",
) -> np.ndarray:
    """HxW depth -> HxWx3 uint8 RGB. Depths are clipped to [min_depth, max_depth]; without a range, the frame's
    valid minimum and maximum are used (that range changes frame to frame; give the node's min/max for a
    stable legend)."""
    if scaling not in SCALINGS:
        raise ValueError(f"depth colour scaling '{scaling}' is unknown; use one of {SCALINGS}")
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth must be a single-channel HxW image, got shape {depth.shape}")
    valid = np.isfinite(depth) & (depth > 0)
    if not valid.any():
        return np.zeros((*depth.shape, 3), dtype=np.uint8)
    lo = float(depth[valid].min()) if min_depth is None else float(min_depth)
    hi = float(depth[valid].max()) if max_depth is None else float(max_depth)
    if not (lo > 0 and hi > 0 and np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"colour range [{lo}, {hi}] must be finite and positive (metres)")
    if hi <= lo:
        hi = lo * (1.0 + 1e-6)
    clipped = np.clip(np.where(valid, depth, hi), lo, hi)
    if scaling == "inverse":
        near = (1.0 / clipped - 1.0 / hi) / (1.0 / lo - 1.0 / hi)
    else:
        near = (np.log(hi) - np.log(clipped)) / (np.log(hi) - np.log(lo))
    index = np.rint(np.clip(near * 255.0, 0.0, 255.0)).astype(np.uint8)
    rgb = turbo_lut()[index]
    rgb[~valid] = 0
    return rgb
