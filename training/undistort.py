"""Undistortion of camera images that are not rectified (CameraInfo D non-zero).

Training and COLMAP assume an ideal pinhole camera. plumb_bob / rational_polynomial use OpenCV's standard model,
equidistant its fisheye model. The output camera is CameraInfo's P[:3,:3] when P is set (as image_proc's rectify
does), otherwise K, so the image keeps its size and centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from depth_estimation_ros.errors import InputError
from depth_estimation_ros.frame.camera_model import PinholeCamera


class UndistortionError(InputError):
    """The distortion model is unknown; the message lists the supported ones."""


SUPPORTED_MODELS = ("plumb_bob", "rational_polynomial", "equidistant", "")


def needs_undistortion(camera: PinholeCamera) -> bool:
    return any(abs(x) > 0 for x in camera.d)


@dataclass
class Undistorter:
    """Precomputed remap tables for one camera."""

    camera: PinholeCamera
    output_k: np.ndarray
    map_x: np.ndarray | None
    map_y: np.ndarray | None

    @classmethod
    def for_camera(cls, camera: PinholeCamera, rectified: bool = False) -> Undistorter:
        """Remap tables from the raw image to the rectified one (intrinsics P[:3,:3]); none when there is no
        distortion or the images are already rectified (an image_rect topic comes with the raw calibration's D)."""
        new_k = camera.intrinsics
        if rectified or not needs_undistortion(camera):
            return cls(camera, new_k, None, None)
        model = camera.distortion_model
        size = (camera.width, camera.height)
        d = np.asarray(camera.d, np.float64)
        if model in ("plumb_bob", "rational_polynomial", ""):
            map_x, map_y = cv2.initUndistortRectifyMap(camera.k, d, None, new_k, size, cv2.CV_32FC1)
        elif model == "equidistant":
            map_x, map_y = cv2.fisheye.initUndistortRectifyMap(camera.k, d[:4], np.eye(3), new_k, size, cv2.CV_32FC1)
        else:
            raise UndistortionError(
                f"distortion model '{model}' is not supported; use one of {', '.join(m for m in SUPPORTED_MODELS if m)}"
                " or rectify the images before recording"
            )
        return cls(camera, new_k, map_x, map_y)

    def __call__(self, image: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        if self.map_x is None:
            return image
        return cv2.remap(image, self.map_x, self.map_y, interpolation, borderMode=cv2.BORDER_CONSTANT)
