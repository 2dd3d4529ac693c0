"""Folder dataset readers on the real shared sets: KITTI odometry calibration layouts, 7-Scenes."""

from __future__ import annotations

import numpy as np
import pytest

from depth_estimation_ros.datasets import (
    DatasetError,
    kitti_odometry_intrinsics,
    read_kitti_odometry_poses,
    read_seven_scenes_pose,
    seven_scenes_intrinsics,
)


@pytest.mark.parametrize("calib, fx, cx, cy", [
    ("kitti_odometry07_first160/calib.txt", 707.0912, 601.8873, 183.1104),  # 'P0: ...' keyed
    ("kitti_odometry06_01_first51/seq06_KITTI_sequence_1/calib.txt", 707.0912, 601.8873, 183.1104),  # bare 3x4 rows
    ("kitti_odometry06_01_first51/seq01_KITTI_sequence_2/calib.txt", 718.856, 607.1928, 185.2157),
    ("kitti_odometry00_first200/calib.txt", 718.856, 607.1928, 185.2157),  # 3x3 K with '#' comments
])
def test_kitti_odometry_intrinsics_reads_every_shared_layout(shared_data, calib, fx, cx, cy):
    k = kitti_odometry_intrinsics(shared_data / calib)
    np.testing.assert_allclose(k, [[fx, 0, cx], [0, fx, cy], [0, 0, 1]])


def test_kitti_odometry_intrinsics_second_camera_and_errors(shared_data, tmp_path):
    k1 = kitti_odometry_intrinsics(shared_data / "kitti_odometry07_first160/calib.txt", camera_index=1)
    assert k1[0, 0] == pytest.approx(707.0912)
    bad = tmp_path / "calib.txt"
    bad.write_text("1 2 3 4\n5 6 7 8\n")
    with pytest.raises(DatasetError, match="not a KITTI odometry calibration"):
        kitti_odometry_intrinsics(bad)
    bad.write_text("P1: 1 0 0 0 0 1 0 0 0 0 1 0\n")
    with pytest.raises(DatasetError, match="no 12-value P0"):
        kitti_odometry_intrinsics(bad)
    with pytest.raises(DatasetError, match="no calibration file"):
        kitti_odometry_intrinsics(tmp_path / "missing.txt")


def test_kitti_odometry_poses_are_camera_to_world(shared_data):
    poses = read_kitti_odometry_poses(shared_data / "kitti_odometry07_first160/poses_07_first160.txt")
    assert poses.shape == (160, 4, 4)
    np.testing.assert_allclose(poses[0], np.eye(4), atol=1e-6)  # KITTI ground truth starts at the identity
    for pose in poses[::40]:
        np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-5)
    assert np.linalg.norm(poses[-1, :3, 3]) > 10  # the car moved


def test_seven_scenes_intrinsics_and_pose(shared_data):
    root = shared_data / "7scenes_redkitchen_1000"
    np.testing.assert_allclose(seven_scenes_intrinsics(root / "camera-intrinsics.txt"),
                               [[585, 0, 320], [0, 585, 240], [0, 0, 1]])
    pose = read_seven_scenes_pose(root / "pose/frame-000000.pose.txt")
    assert pose.shape == (4, 4)
    np.testing.assert_allclose(pose[3], [0, 0, 0, 1])
    np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-3)  # KinectFusion: ~1e-4 off
