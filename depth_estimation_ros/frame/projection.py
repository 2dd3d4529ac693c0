"""Rigid transforms and pinhole projection of points, free of ROS types: the one place a point moves between
frames, a depth pixel becomes a point, or a point becomes a pixel (evaluation's lidar ground truth, extraction's
sparse depth, the dataset bag builders).

Sparse depth images made here are float32 metres along the optical axis with NaN where no point landed; a file
format that stores 0 for "none" converts at its own boundary.
"""

from __future__ import annotations

import cv2
import numpy as np

from depth_estimation_ros.errors import InputError
from depth_estimation_ros.frame.camera_model import PinholeCamera


def quaternion_to_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """Unit quaternion (x, y, z, w) -> 3x3 rotation matrix (normalised first)."""
    q = np.array([x, y, z, w], dtype=np.float64)
    n = np.linalg.norm(q)
    if n == 0:
        raise InputError("transform has a zero quaternion; the tf publisher is broken")
    x, y, z, w = q / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quaternion(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """3x3 rotation -> unit quaternion (x, y, z, w), w >= 0."""
    r = np.asarray(rotation, dtype=np.float64)
    trace = np.trace(r)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        w, x, y, z = 0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        w, x, y, z = (r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s
    elif r[1, 1] > r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        w, x, y, z = (r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s
    else:
        s = 2.0 * np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        w, x, y, z = (r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s
    q = np.array([x, y, z, w])
    q /= np.linalg.norm(q)
    if q[3] < 0:
        q = -q
    return tuple(float(v) for v in q)


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 homogeneous transform to Nx3 points (p' = R p + t), float64."""
    m = np.asarray(matrix, dtype=np.float64)
    return np.asarray(points, dtype=np.float64) @ m[:3, :3].T + m[:3, 3]


def backproject_depth(depth: np.ndarray, camera: PinholeCamera) -> np.ndarray:
    """Valid pixels of an HxW depth map -> Nx3 points in the camera optical frame (X = d K_rect^-1 [u, v, 1])."""
    v, u = np.nonzero(np.isfinite(depth) & (depth > 0))
    d = depth[v, u].astype(np.float64)
    y = (v - camera.cy) / camera.fy
    x = (u - camera.cx - camera.skew * y) / camera.fx
    return np.stack([x * d, y * d, d], axis=1)


def project_to_pixels(
    points_camera: np.ndarray, camera: PinholeCamera, rectified: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame points (z > 0 assumed) -> float pixel coordinates (u, v).

    A rectified image uses the projection matrix P, as image_geometry's project3dToPixel does; a raw image with
    distortion coefficients projects with K and D. ``rectified`` None: rectified unless D is non-zero (the caller
    that knows the topic passes it: an image_rect topic comes with the raw calibration's D).
    """
    if rectified is None:
        rectified = not any(abs(c) > 0 for c in camera.d)
    if not rectified:
        uv, _ = cv2.projectPoints(points_camera.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), camera.k,
                                  np.asarray(camera.d, dtype=np.float64))
        uv = uv.reshape(-1, 2)
        return uv[:, 0], uv[:, 1]
    homogeneous = points_camera @ camera.p[:, :3].T + camera.p[:, 3]
    return homogeneous[:, 0] / homogeneous[:, 2], homogeneous[:, 1] / homogeneous[:, 2]


def points_to_depth_image(points_camera: np.ndarray, camera: PinholeCamera, min_depth: float = 1e-3,
                          rectified: bool | None = None) -> np.ndarray:
    """Sparse HxW float32 depth (metres along the optical axis, NaN where no point) from camera-frame points.

    Points behind the camera or closer than ``min_depth`` are dropped; each point lands on the pixel whose centre
    is nearest (rounding); where several points hit one pixel the nearest wins (occlusion by the closer surface).
    """
    pts = np.asarray(points_camera, dtype=np.float64).reshape(-1, 3)
    pts = pts[pts[:, 2] > min_depth]
    depth = np.full(camera.height * camera.width, np.inf, dtype=np.float64)
    if len(pts):
        u, v = project_to_pixels(pts, camera, rectified)
        col = np.rint(u).astype(np.int64)
        row = np.rint(v).astype(np.int64)
        inside = (col >= 0) & (col < camera.width) & (row >= 0) & (row < camera.height)
        np.minimum.at(depth, row[inside] * camera.width + col[inside], pts[inside, 2])
    depth[~np.isfinite(depth)] = np.nan
    return depth.reshape(camera.height, camera.width).astype(np.float32)


def lidar_depth_image(points_lidar: np.ndarray, t_camera_lidar: np.ndarray, camera: PinholeCamera,
                      min_depth: float = 1e-3, rectified: bool | None = None) -> np.ndarray:
    """points_to_depth_image of a lidar scan moved into the camera frame (p_cam = T_camera_lidar p_lidar)."""
    return points_to_depth_image(transform_points(t_camera_lidar, points_lidar), camera, min_depth, rectified)
