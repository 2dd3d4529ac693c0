"""Pinhole camera model, free of ROS types.

Built from the fields of a sensor_msgs/CameraInfo (K, D, P, width, height) and rescaled the way
image_proc's resize does it: every row-0 entry of K and P multiplied by the x scale, every row-1 entry by
the y scale (fx, cx, Tx and fy, cy respectively).

The image the node works on is the rectified one, so its intrinsics (fx, fy, cx, cy, skew) are those of the
projection matrix P, as image_geometry's PinholeCameraModel and depth_image_proc take them; K (with D) describes the
raw, distorted image and is used only to undistort. Without a valid P, P = [K | 0] (an unrectified pinhole camera
with no distortion). The stereo baseline term Tx of a right camera is not part of its own back-projection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class CameraModelError(ValueError):
    """The camera calibration cannot be used; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class PinholeCamera:
    width: int
    height: int
    k: np.ndarray  # 3x3
    p: np.ndarray = field(default=None)  # 3x4, defaults to [K | 0]
    d: tuple[float, ...] = ()
    distortion_model: str = ""

    def __post_init__(self) -> None:
        k = np.asarray(self.k, dtype=np.float64).reshape(3, 3)
        p = np.hstack([k, np.zeros((3, 1))]) if self.p is None else np.asarray(self.p, np.float64).reshape(3, 4)
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "p", p)
        object.__setattr__(self, "d", tuple(float(x) for x in self.d))

    @classmethod
    def from_camera_info_fields(
        cls, width: int, height: int, k, p=None, d=(), distortion_model: str = ""
    ) -> PinholeCamera:
        """Validate CameraInfo-like fields; raise CameraModelError naming the problem and the fix."""
        k_arr = np.asarray(k, dtype=np.float64).reshape(-1)
        if width <= 0 or height <= 0:
            raise CameraModelError(
                f"camera_info has width={width} height={height}; publish the calibrated image size"
            )
        if k_arr.size != 9 or not np.all(np.isfinite(k_arr)) or k_arr[0] <= 0 or k_arr[4] <= 0:
            raise CameraModelError(
                "camera_info K is zero or invalid (fx, fy must be > 0): the camera is uncalibrated; "
                "calibrate it (camera_calibration) or publish intrinsics from a calibration file"
            )
        p_arr = None
        if p is not None:
            p_arr = np.asarray(p, dtype=np.float64).reshape(-1)
            if p_arr.size != 12 or p_arr[0] <= 0 or p_arr[5] <= 0:
                p_arr = None  # P unset: fall back to [K | 0] as image_geometry does for unrectified cameras
        return cls(int(width), int(height), k_arr, p_arr, tuple(d), distortion_model)

    @property
    def intrinsics(self) -> np.ndarray:
        """3x3 intrinsic matrix of the rectified image: the left 3x3 block of P."""
        return self.p[:, :3].copy()

    @property
    def fx(self) -> float:
        return float(self.p[0, 0])

    @property
    def fy(self) -> float:
        return float(self.p[1, 1])

    @property
    def cx(self) -> float:
        return float(self.p[0, 2])

    @property
    def cy(self) -> float:
        return float(self.p[1, 2])

    @property
    def skew(self) -> float:
        return float(self.p[0, 1])

    def scaled(self, width: int, height: int) -> PinholeCamera:
        """Intrinsics for the same camera resampled to width x height (image_proc resize convention)."""
        sx = width / self.width
        sy = height / self.height
        k = self.k.copy()
        p = self.p.copy()
        k[0] *= sx
        k[1] *= sy
        p[0] *= sx
        p[1] *= sy
        return PinholeCamera(int(width), int(height), k, p, self.d, self.distortion_model)

    def pixel_rays(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel x and y of the ray K_rect^-1 [u, v, 1]^T, float32: y = (v - cy) / fy, shape (H, 1), and
        x = (u - cx - skew * y) / fx, shape (1, W) (or (H, W) when skew is not 0).

        Multiplying by a depth map Z gives X and Y of the back-projection X = Z K_rect^-1 [u, v, 1]^T.
        """
        u = np.arange(self.width, dtype=np.float64)[None, :]
        y = ((np.arange(self.height, dtype=np.float64) - self.cy) / self.fy)[:, None]
        x = (u - self.cx - self.skew * y) / self.fx if self.skew else (u - self.cx) / self.fx
        return x.astype(np.float32), y.astype(np.float32)


IMAGE_TRANSPORTS = ("compressed", "compressedDepth", "theora", "zstd")


def looks_unrectified(camera: PinholeCamera, image_topic: str) -> bool:
    """True when the camera has distortion and the image topic is not a rectified one (image_proc names those
    image_rect / image_rect_color; a transport suffix such as /compressed is skipped): the node then warns that it
    treats the input as rectified. A rectified image still comes with the raw calibration's D, so D alone says
    nothing."""
    if not any(abs(c) > 1e-9 for c in camera.d):
        return False
    names = [n for n in image_topic.split("/") if n]
    if names and names[-1] in IMAGE_TRANSPORTS:
        names = names[:-1]
    return not names or "rect" not in names[-1]
