"""REP 117 / 118 special values of a published depth image: what the node and depth-eval's output bag
publish instead of the raw network depth."""

from __future__ import annotations

import numpy as np


def apply_range_conventions(depth: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """REP 117/118 special values, in place on a float32 copy.

    NaN where the estimate is invalid (non-finite or <= 0), -Inf closer than min_depth, +Inf at or beyond
    max_depth (a network bounded to max_depth saturates there, so 'at the bound' means 'beyond range').
    Never 0.
    """
    out = np.array(depth, dtype=np.float32, copy=True)
    invalid = ~np.isfinite(out) | (out <= 0)
    out[out < min_depth] = -np.inf
    out[out >= max_depth] = np.inf
    out[invalid] = np.nan
    return out
