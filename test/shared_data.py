"""The real test data: shared/data beside the repository (or $DEPTH_SHARED_DATA), and readers the tests share."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from depth_estimation_ros.frame.projection import quaternion_to_matrix

DATA = Path(os.environ.get("DEPTH_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
TUM_KEYFRAMES = DATA / "tum_fr3_cabinet_keyframes"
TUM_K = np.array([[535.4, 0, 320.1], [0, 539.2, 247.6], [0, 0, 1]])  # freiburg3 factory intrinsics


def tum_keyframe_poses() -> tuple[np.ndarray, np.ndarray]:
    """(stamps (N,), camera-to-world 4x4 poses (N, 4, 4)) of the TUM keyframes' motion-capture ground truth
    (truth_cam_poses.txt rows: stamp tx ty tz qx qy qz qw)."""
    rows = np.loadtxt(TUM_KEYFRAMES / "truth_cam_poses.txt")
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    for pose, row in zip(poses, rows, strict=True):
        pose[:3, :3] = quaternion_to_matrix(*row[4:8])
        pose[:3, 3] = row[1:4]
    return rows[:, 0], poses
