"""Colour augmentation of a training sample: one random jitter applied alike to the target and its sources
(monodepth2's brightness / contrast / saturation / hue ranges), so the photometric loss still compares like with like.

Hue: torchvision's adjust_hue converts every pixel RGB -> HSV -> RGB, about 50 ms for three 640x192 frames on one
core, which made it most of a data-loader worker's time per sample. Here hue is a rotation of the chroma plane in
YIQ, one 3x3 matrix for the whole image (about 1 ms): luma is kept exactly and a positive shift turns hue the same
way as torchvision's (red towards yellow); saturation and value move slightly, unlike HSV's rotation, which does
not matter for augmentation.
"""

from __future__ import annotations

import math

import torch
import torchvision.transforms.v2.functional as TF

# NTSC 1953 RGB -> YIQ (FCC); its inverse maps back.
_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]], dtype=torch.float64
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def hue_rotation_matrix(shift: float) -> torch.Tensor:
    """3x3 float64 RGB -> RGB matrix turning hue by ``shift`` of a full turn (torchvision's hue_factor)."""
    angle = -2.0 * math.pi * shift  # the sign that turns red towards yellow for a positive shift, as HSV does
    c, s = math.cos(angle), math.sin(angle)
    rotation = torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]], dtype=torch.float64)
    return _YIQ_TO_RGB @ rotation @ _RGB_TO_YIQ


def rotate_hue(images: torch.Tensor, shift: float) -> torch.Tensor:
    """(..., 3, H, W) RGB in [0, 1] with hue turned by ``shift`` (a fraction of a turn), clamped to [0, 1]."""
    if shift == 0.0:
        return images
    matrix = hue_rotation_matrix(shift).to(images.dtype)
    return torch.einsum("ij,...jhw->...ihw", matrix, images).clamp_(0.0, 1.0)


def jitter_colours(
    frames: torch.Tensor, ranges: tuple[float, float, float, float], uniforms: torch.Tensor
) -> torch.Tensor:
    """One colour jitter for all (N, 3, H, W) frames of a sample. ``ranges`` = (brightness, contrast, saturation,
    hue) as in torchvision's ColorJitter; ``uniforms`` = 4 draws in [0, 1) that pick each factor in its range."""
    b, c, s, h = (float(x) for x in ranges)
    u = [float(x) for x in uniforms]
    frames = TF.adjust_brightness(frames, 1 + b * (2 * u[0] - 1))
    frames = TF.adjust_contrast(frames, 1 + c * (2 * u[1] - 1))
    frames = TF.adjust_saturation(frames, 1 + s * (2 * u[2] - 1))
    return rotate_hue(frames, h * (2 * u[3] - 1))
