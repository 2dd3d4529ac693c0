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

from depth_estimation_ros.errors import InputError


class CameraModelError(InputError):
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
        cls, width: int, height: int, k, p=None, d=(), distortion_model: str = "",
        binning: tuple[int, int] = (0, 0), roi: tuple[int, int, int, int] = (0, 0, 0, 0),
    ) -> PinholeCamera:
        """The camera of the image published with these CameraInfo fields; CameraModelError names what is wrong.

        ``width``, ``height``, ``k`` and ``p`` are the full-resolution calibration; ``binning`` (x, y; 0 or 1 = none)
        and ``roi`` (x_offset, y_offset, width, height; zero width or height = the full image) reduce it to the
        published image: f' = f / b, c' = (c - o) / b, size = roi size / b (REP 104, as image_geometry does).
        Every intrinsic of K and P must be finite and plausible (focal lengths positive and within a factor
        1e-3 .. 1e4 of the image size, fy / fx within 1e-2 .. 1e2, principal point and skew within 100 image sizes,
        bottom row 0 0 1); an all-zero P means unset
        and becomes [K | 0], as image_geometry does for unrectified cameras.
        """
        width, height = int(width), int(height)
        if width <= 0 or height <= 0:
            raise CameraModelError(
                f"camera_info has width={width} height={height}; publish the calibrated image size"
            )
        k_arr = np.asarray(k, dtype=np.float64).reshape(-1)
        if k_arr.size != 9 or not np.any(k_arr):
            raise CameraModelError(
                "camera_info K is zero or invalid (fx, fy must be > 0): the camera is uncalibrated; "
                "calibrate it (camera_calibration) or publish intrinsics from a calibration file"
            )
        _check_intrinsics("K", k_arr.reshape(3, 3), width, height)
        p_arr = None
        if p is not None:
            p_arr = np.asarray(p, dtype=np.float64).reshape(-1)
            if p_arr.size != 12:
                raise CameraModelError(f"camera_info P has {p_arr.size} entries, not 12; publish a 3x4 P")
            if not np.any(p_arr[[0, 5]]) and np.all(np.isfinite(p_arr)):
                p_arr = None  # P unset: [K | 0]
            else:
                _check_intrinsics("P", p_arr.reshape(3, 4), width, height)
        camera = cls(width, height, k_arr, p_arr, tuple(d), distortion_model)
        bx, by = max(int(binning[0]), 1), max(int(binning[1]), 1)
        x_off, y_off, roi_w, roi_h = (int(v) for v in roi)
        if roi_w == 0 or roi_h == 0:
            x_off = y_off = 0
            roi_w, roi_h = width, height
        elif x_off < 0 or y_off < 0 or x_off + roi_w > width or y_off + roi_h > height:
            raise CameraModelError(
                f"camera_info ROI {roi_w}x{roi_h} at ({x_off}, {y_off}) lies outside the {width}x{height} "
                "calibrated image; publish the ROI the driver actually crops (or a zero ROI for the full image)"
            )
        out_w, out_h = roi_w // bx, roi_h // by
        if out_w <= 0 or out_h <= 0:
            raise CameraModelError(
                f"camera_info binning {bx}x{by} leaves no pixel of the {roi_w}x{roi_h} image; publish the "
                "binning the driver actually applies"
            )
        if (bx, by, x_off, y_off, out_w, out_h) == (1, 1, 0, 0, width, height):
            return camera
        k2, p2 = camera.k.copy(), camera.p.copy()
        k2[0, 2] -= x_off
        k2[1, 2] -= y_off
        p2[0, 2] -= x_off * p2[2, 2]
        p2[1, 2] -= y_off * p2[2, 2]
        k2[0] /= bx
        k2[1] /= by
        p2[0] /= bx
        p2[1] /= by
        return cls(out_w, out_h, k2, p2, camera.d, camera.distortion_model)

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


def _check_intrinsics(name: str, matrix: np.ndarray, width: int, height: int) -> None:
    """CameraModelError unless the 3x3 (K) or 3x4 (P) matrix is finite with plausible focal lengths."""
    fix = "calibrate the camera (camera_calibration) or publish the intrinsics of its calibration file"
    if not np.all(np.isfinite(matrix)):
        raise CameraModelError(f"camera_info {name} holds NaN or Inf ({matrix.reshape(-1).tolist()}); {fix}")
    fx, fy = float(matrix[0, 0]), float(matrix[1, 1])
    size = max(width, height)
    if not (1e-3 * size <= fx <= 1e4 * size and 1e-3 * size <= fy <= 1e4 * size):
        raise CameraModelError(
            f"camera_info {name} has fx={fx:.6g} fy={fy:.6g}, not plausible for a {width}x{height} image "
            f"(expected {1e-3 * size:.3g} .. {1e4 * size:.3g} pixels); {fix}"
        )
    if not 1e-2 <= fy / fx <= 1e2:
        raise CameraModelError(f"camera_info {name} has fy / fx = {fy / fx:.6g} (fx={fx:.6g}, fy={fy:.6g}); {fix}")
    cx, cy, skew = float(matrix[0, 2]), float(matrix[1, 2]), float(matrix[0, 1])
    if max(abs(cx), abs(cy), abs(skew)) > 1e2 * size:
        raise CameraModelError(
            f"camera_info {name} has cx={cx:.6g} cy={cy:.6g} skew={skew:.6g}, not plausible for a {width}x{height} "
            f"image (expected within {1e2 * size:.3g} pixels); {fix}"
        )
    if abs(matrix[2, 0]) > 1e-9 or abs(matrix[2, 1]) > 1e-9 or abs(matrix[2, 2] - 1.0) > 1e-6:
        raise CameraModelError(
            f"camera_info {name} has bottom row {matrix[2, :3].tolist()}, not [0, 0, 1]; {fix}"
        )


def camera_from_camera_info(message) -> PinholeCamera:
    """PinholeCamera of the image published with a sensor_msgs/CameraInfo: an rclpy message, or a rosbags one
    of ROS 2 (k, d, p) or ROS 1 (K, D, P) field names. The node and the bag readers both take this path."""

    def field(lower: str):
        return getattr(message, lower) if hasattr(message, lower) else getattr(message, lower.upper())

    roi = message.roi
    return PinholeCamera.from_camera_info_fields(
        int(message.width), int(message.height), field("k"), field("p"), tuple(field("d")),
        str(message.distortion_model), binning=(int(message.binning_x), int(message.binning_y)),
        roi=(int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height)))


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
