"""Static-frame removal: drop frames recorded while the camera did not move.

Self-supervised training learns nothing from a pair with no camera motion (and auto-masking would mask it all),
so, as monodepth2 does for KITTI (following Zhou et al. 2017), such frames are removed before training. Motion is
judged against the last kept frame: by odometry when the bag has it (translation and rotation thresholds),
otherwise by the mean absolute grey-level difference of small copies of the images.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class StaticFrameFilter:
    """min_image_difference: mean |grey_a - grey_b| (0-255) of 64-pixel-wide copies below which a frame is static;
    min_translation (m) / min_rotation (deg): odometry motion below both is static. <= 0 disables a test."""

    min_image_difference: float = 2.0
    min_translation: float = 0.05
    min_rotation: float = 0.5


def thumbnail(rgb: np.ndarray, width: int = 64) -> np.ndarray:
    """Small float32 grey copy used for motion tests."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    h, w = grey.shape
    height = max(1, round(h * width / w))
    return cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)


def image_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails (0-255)."""
    return float(np.abs(a - b).mean())


def pose_motion(camera_to_world_a: np.ndarray, camera_to_world_b: np.ndarray) -> tuple[float, float]:
    """(translation in metres, rotation in degrees) between two camera-to-world poses."""
    rel = np.linalg.inv(camera_to_world_a) @ camera_to_world_b
    cos = np.clip((np.trace(rel[:3, :3]) - 1.0) / 2.0, -1.0, 1.0)
    return float(np.linalg.norm(rel[:3, 3])), float(np.degrees(np.arccos(cos)))


def is_static(
    filt: StaticFrameFilter,
    thumb: np.ndarray,
    last_thumb: np.ndarray,
    pose: np.ndarray | None = None,
    last_pose: np.ndarray | None = None,
) -> tuple[bool, str]:
    """Whether the frame is static relative to the last kept one, and why (for the extraction summary)."""
    if pose is not None and last_pose is not None and (filt.min_translation > 0 or filt.min_rotation > 0):
        translation, rotation = pose_motion(last_pose, pose)
        if translation < filt.min_translation and rotation < filt.min_rotation:
            return True, f"odometry motion {translation:.3f} m / {rotation:.2f} deg"
        return False, ""
    if filt.min_image_difference > 0:
        diff = image_difference(thumb, last_thumb)
        if diff < filt.min_image_difference:
            return True, f"image difference {diff:.2f} < {filt.min_image_difference}"
    return False, ""
