"""Folder dataset readers on the real shared sets: KITTI odometry calibration layouts, 7-Scenes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from depth_estimation_ros.data.datasets import (
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


def test_seven_scenes_reader_frames_with_depth_in_a_range(shared_data):
    from depth_estimation_ros.data.datasets import SevenScenesSequence, open_dataset

    root = shared_data / "7scenes_redkitchen_1000"
    everything = open_dataset(root)
    assert isinstance(everything, SevenScenesSequence)
    assert len(everything) == 200  # depth every 5th frame of 1000
    validation = open_dataset(root, frames=range(800, 1000))
    assert validation.frame_numbers() == list(range(800, 1000, 5))
    frames = list(itertools.islice(validation, 2))
    assert [f.name for f in frames] == ["frame-000800", "frame-000805"]
    assert [f.number for f in frames] == [800, 805]
    assert abs(frames[1].stamp_ns - frames[0].stamp_ns - 5e9 / 30) <= 1  # 30 Hz, rounded to ns
    f = frames[0]
    assert f.rgb.shape == (480, 640, 3) and f.rgb.dtype == np.uint8
    assert f.depth.shape == (480, 640) and f.depth.dtype == np.float32
    valid = np.isfinite(f.depth)
    assert 0.5 < valid.mean() < 1.0  # 0 = invalid became NaN
    assert 0.3 < np.median(f.depth[valid]) < 4.0  # metres (kitchen at 1-3 m), not millimetres
    assert (f.camera.fx, f.camera.cx, f.camera.cy) == (585.0, 320.0, 240.0)
    pose = validation.pose(800)
    np.testing.assert_allclose(pose, read_seven_scenes_pose(root / "pose/frame-000800.pose.txt"))
    with pytest.raises(DatasetError, match="within frames 2000:3000"):
        SevenScenesSequence(root, frames=range(2000, 3000))


def test_seven_scenes_reader_all_colour_frames(shared_data):
    from depth_estimation_ros.data.datasets import SevenScenesSequence

    seq = SevenScenesSequence(shared_data / "7scenes_redkitchen_1000", frames=range(0, 10), with_depth_only=False)
    assert seq.frame_numbers() == list(range(10))
    depths = [f.depth is not None for f in seq]
    assert depths == [n % 5 == 0 for n in range(10)]
