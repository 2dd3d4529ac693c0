"""Network input preparation and depth resampling on the CPU (numpy / OpenCV).

GPU engines do the same steps on the device (see engines/torch_engine.py); the conventions are shared:
RGB uint8 -> float32 in [0, 1], NCHW, resized to the network input with area interpolation when shrinking
and bilinear when enlarging; depth is resampled back bilinearly.
"""

from __future__ import annotations

import cv2
import numpy as np


def resize_image(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an HxWxC image; area interpolation when shrinking (no aliasing), bilinear otherwise."""
    if rgb.shape[0] == height and rgb.shape[1] == width:
        return rgb
    shrinking = height * width < rgb.shape[0] * rgb.shape[1]
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def to_network_input(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """HxWx3 uint8 RGB -> (1, 3, height, width) float32 in [0, 1], contiguous."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got shape {rgb.shape} dtype {rgb.dtype}")
    resized = resize_image(rgb, height, width)
    return np.ascontiguousarray(resized.transpose(2, 0, 1)[None], dtype=np.float32) * np.float32(1.0 / 255.0)


def resize_depth(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resample an HxW depth map bilinearly to height x width (float32)."""
    if depth.shape == (height, width):
        return depth.astype(np.float32, copy=False)
    return cv2.resize(depth.astype(np.float32, copy=False), (width, height), interpolation=cv2.INTER_LINEAR)
