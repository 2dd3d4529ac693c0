"""Similarity alignment of trajectories (Umeyama 1991) and the absolute trajectory error.

Umeyama, "Least-squares estimation of transformation parameters between two point patterns", TPAMI 1991:
for point sets x_i, y_i find s, R, t minimising sum |y_i - (s R x_i + t)|^2 in closed form from the SVD of the
cross-covariance. Used to put COLMAP camera centres (arbitrary scale) into a metric odometry / ground-truth frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depth_estimation_ros.errors import InputError


class AlignmentError(InputError):
    """The trajectories cannot be aligned (too few or degenerate points)."""


@dataclass(frozen=True)
class Sim3:
    """y = scale * rotation @ x + translation."""

    scale: float
    rotation: np.ndarray  # (3, 3)
    translation: np.ndarray  # (3,)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Transform (N, 3) points."""
        return self.scale * np.asarray(points, np.float64) @ self.rotation.T + self.translation


def umeyama_alignment(source: np.ndarray, target: np.ndarray, with_scale: bool = True) -> Sim3:
    """Least-squares Sim(3) (or SE(3) when with_scale=False) taking source (N,3) onto target (N,3)."""
    x = np.asarray(source, np.float64)
    y = np.asarray(target, np.float64)
    if x.shape != y.shape or x.ndim != 2 or x.shape[1] != 3:
        raise AlignmentError(f"need two (N, 3) point sets of equal shape, got {x.shape} and {y.shape}")
    if x.shape[0] < 3:
        raise AlignmentError(f"need at least 3 corresponding positions to align, got {x.shape[0]}")
    mean_x, mean_y = x.mean(0), y.mean(0)
    xc, yc = x - mean_x, y - mean_y
    var_x = (xc**2).sum() / x.shape[0]
    if var_x < 1e-12:
        raise AlignmentError("the source positions are all the same point (camera did not move); cannot align")
    cov = yc.T @ xc / x.shape[0]
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1.0
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(d) @ sign) / var_x) if with_scale else 1.0
    translation = mean_y - scale * rotation @ mean_x
    return Sim3(scale, rotation, translation)


def path_length(positions: np.ndarray) -> float:
    """Sum of distances between consecutive (N, 3) positions."""
    p = np.asarray(positions, np.float64)
    return float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum()) if len(p) > 1 else 0.0


def absolute_trajectory_error(
    estimate: np.ndarray, reference: np.ndarray, with_scale: bool = True
) -> tuple[float, Sim3]:
    """RMSE of positions after aligning estimate (N,3) onto reference (N,3); returns (rmse, alignment)."""
    alignment = umeyama_alignment(estimate, reference, with_scale)
    residual = alignment.apply(estimate) - np.asarray(reference, np.float64)
    return float(np.sqrt((residual**2).sum(1).mean())), alignment


def rotation_angle_deg(rotation: np.ndarray) -> float:
    """Angle of a 3x3 rotation in degrees (atan2 of the sine and cosine parts: accurate near 0, unlike arccos)."""
    r = np.asarray(rotation, np.float64)
    sine = 0.5 * np.linalg.norm([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    return float(np.degrees(np.arctan2(sine, 0.5 * (np.trace(r) - 1.0))))


def relative_rotation_errors(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-step rotation error in degrees between (N, 3, 3) world-from-camera rotations of two trajectories: the
    angle of (E_i^T E_{i+1})^T (R_i^T R_{i+1}). Independent of each trajectory's world frame and scale, so it
    separates rotation errors from the scale drift that ATE mixes in."""
    e = np.asarray(estimate, np.float64)
    r = np.asarray(reference, np.float64)
    if e.shape != r.shape or e.ndim != 3 or e.shape[1:] != (3, 3):
        raise AlignmentError(f"rotations must be two (N, 3, 3) arrays of one shape, got {e.shape} and {r.shape}")
    return np.array([
        rotation_angle_deg((e[i].T @ e[i + 1]).T @ (r[i].T @ r[i + 1])) for i in range(len(e) - 1)
    ])
