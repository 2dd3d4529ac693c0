"""Lidar points -> sparse ground-truth depth image: project into the camera, keep the nearest return per pixel."""

from __future__ import annotations

import cv2
import numpy as np

from depth_estimation_ros.frame.camera_model import PinholeCamera


def points_to_camera_frame(points: np.ndarray, t_camera_lidar: np.ndarray) -> np.ndarray:
    """Nx3 lidar-frame points -> Nx3 camera optical-frame points (p_cam = T_camera_lidar p_lidar)."""
    m = np.asarray(t_camera_lidar, dtype=np.float64)
    return np.asarray(points, dtype=np.float64) @ m[:3, :3].T + m[:3, 3]


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


def lidar_depth_image(points_lidar: np.ndarray, t_camera_lidar: np.ndarray, camera: PinholeCamera,
                      min_depth: float = 1e-3, rectified: bool | None = None) -> np.ndarray:
    """Sparse HxW float32 depth (metres along the optical axis, NaN where no return) from a lidar scan.

    Points behind the camera or closer than ``min_depth`` are dropped; each point lands on the pixel whose centre
    is nearest (rounding); where several returns hit one pixel the nearest wins (occlusion by the closer surface).
    """
    pts = points_to_camera_frame(points_lidar, t_camera_lidar)
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
