"""Inverse depth <-> depth, as monodepth2 does for sigmoid disparity heads."""

from __future__ import annotations

import torch


def disp_to_depth(disp: torch.Tensor, min_depth: float, max_depth: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Map a sigmoid output to (scaled inverse depth, depth) in [min_depth, max_depth].

    depth = 1 / (1/max_depth + (1/min_depth - 1/max_depth) * disp)  (monodepth2, Godard et al. 2019).
    """
    if not 0.0 < min_depth < max_depth:
        raise ValueError(f"need 0 < min_depth < max_depth, got min_depth={min_depth}, max_depth={max_depth}")
    min_disp = 1.0 / max_depth
    max_disp = 1.0 / min_depth
    scaled_disp = min_disp + (max_disp - min_disp) * disp
    return scaled_disp, 1.0 / scaled_disp


def depth_to_disp(depth: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
    """Inverse of :func:`disp_to_depth`: the sigmoid-space disparity in [0, 1] that gives ``depth``."""
    min_disp = 1.0 / max_depth
    max_disp = 1.0 / min_depth
    return (1.0 / depth - min_disp) / (max_disp - min_disp)
