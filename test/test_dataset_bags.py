"""Bags built from the KITTI odometry and 7-Scenes folders, read back by depth-extract (real rosbags end to end)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from depth_estimation_training.extract import main as depth_extract_main
from depth_estimation_training.sequence import load_sequence

from depth_estimation_ros.data.bag_reading import BagReader
from depth_estimation_ros.data.dataset_bags import (
    KITTI_ODOMETRY_TOPICS,
    SEVEN_SCENES_TOPICS,
    write_kitti_odometry_bag,
    write_seven_scenes_bag,
)
from depth_estimation_ros.data.dataset_bags import (
    main as dataset_bags_main,
)
from depth_estimation_ros.data.datasets import read_kitti_odometry_poses, read_seven_scenes_pose


def _only_sequence(out):
    roots = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(roots) == 1, roots
    return load_sequence(roots[0])


@pytest.mark.parametrize("fmt", ["ros1", "mcap"])
def test_kitti_odometry_bag_extracts_grey_frames_intrinsics_and_odometry(shared_data, tmp_path, fmt):
    folder = shared_data / "kitti_odometry07_first160"
    bag = tmp_path / ("kitti07.bag" if fmt == "ros1" else "kitti07")
    topics = write_kitti_odometry_bag(folder, bag, fmt, frames=range(0, 12, 3))
    with BagReader(bag) as reader:
        assert reader.message_counts[topics["image"]] == 4 and reader.message_counts[topics["odometry"]] == 4
        assert next(reader.messages([topics["image"]])).message.encoding == "mono8"
    out = tmp_path / "out"
    assert depth_extract_main([str(bag), "--out", str(out), "--odometry-topic", KITTI_ODOMETRY_TOPICS["odometry"]]) == 0
    seq = _only_sequence(out)
    assert len(seq.frames) == 4 and (seq.width, seq.height) == (1226, 370)
    np.testing.assert_allclose(seq.intrinsics, [[707.0912, 0, 601.8873], [0, 707.0912, 183.1104], [0, 0, 1]])
    truth = read_kitti_odometry_poses(folder / "poses_07_first160.txt")
    times = np.loadtxt(folder / "times.txt")
    for frame, number in zip(seq.frames, range(0, 12, 3), strict=True):
        np.testing.assert_allclose(frame.odometry, truth[number], atol=1e-6)
        assert frame.stamp == pytest.approx(times[number], abs=1e-6)
    grey = cv2.imread(str(folder / "image_0" / "000003.png"), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(seq.read_rgb(1)[..., 0], grey)


def test_kitti_odometry_bag_with_bare_calib_and_tf_poses(shared_data, tmp_path):
    """KITTI 01 as the shared set has it: image_l/, calib.txt without keys, no times.txt; poses on /tf."""
    folder = shared_data / "kitti_odometry06_01_first51" / "seq01_KITTI_sequence_2"
    bag = tmp_path / "kitti01"
    rc = dataset_bags_main(["kitti-odometry", str(folder), str(bag), "--frames", "10:20:2", "--poses", "tf"])
    assert rc == 0
    out = tmp_path / "out"
    assert depth_extract_main([str(bag), "--out", str(out), "--odometry-frame", "odom"]) == 0
    seq = _only_sequence(out)
    assert len(seq.frames) == 5 and (seq.width, seq.height) == (1241, 376)
    assert seq.intrinsics[0, 0] == pytest.approx(718.856)
    truth = read_kitti_odometry_poses(folder / "poses.txt")
    for frame, number in zip(seq.frames, range(10, 20, 2), strict=True):
        np.testing.assert_allclose(frame.odometry, truth[number], atol=1e-6)
        assert frame.stamp == pytest.approx(number * 0.1)  # 10 Hz without times.txt


def test_seven_scenes_bag_extracts_colour_depth_and_poses(shared_data, tmp_path):
    folder = shared_data / "7scenes_redkitchen_1000"
    bag = tmp_path / "redkitchen"
    numbers = range(800, 1000, 25)  # validation frames with depth, ~0.2 m apart
    topics = write_seven_scenes_bag(folder, bag, "mcap", frames=numbers)
    with BagReader(bag) as reader:
        assert reader.message_counts[topics["depth"]] == 8 and reader.message_counts[topics["odometry"]] == 8
    out = tmp_path / "out"
    assert depth_extract_main([str(bag), "--out", str(out), "--depth-topic", SEVEN_SCENES_TOPICS["depth"],
                               "--odometry-topic", SEVEN_SCENES_TOPICS["odometry"]]) == 0
    seq = _only_sequence(out)
    assert len(seq.frames) == 8 and (seq.width, seq.height) == (640, 480)
    np.testing.assert_allclose(seq.intrinsics, [[585, 0, 320], [0, 585, 240], [0, 0, 1]])
    for i, number in enumerate(numbers):
        # KinectFusion rotations are orthonormal to ~1e-4 only; the quaternion in the message is the nearest rotation
        np.testing.assert_allclose(seq.frames[i].odometry,
                                   read_seven_scenes_pose(folder / "pose" / f"frame-{number:06d}.pose.txt"),
                                   atol=2e-3)
    raw = cv2.imread(str(folder / "depth" / "frame-000825.depth.png"), cv2.IMREAD_UNCHANGED)
    depth = seq.read_sparse_depth(1)
    valid = raw > 0
    np.testing.assert_allclose(depth[valid], raw[valid] / 1000.0, atol=1e-6)  # 16UC1 millimetres, lossless
    assert np.all(depth[~valid] == 0)
    colour = cv2.cvtColor(cv2.imread(str(folder / "rgb" / "frame-000825.color.jpg")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(seq.read_rgb(1), colour)


def test_seven_scenes_bag_has_every_colour_frame_and_depth_every_fifth(shared_data, tmp_path):
    bag = tmp_path / "all.bag"
    topics = write_seven_scenes_bag(shared_data / "7scenes_redkitchen_1000", bag, "ros1", frames=range(0, 12),
                                    poses="none")
    with BagReader(bag) as reader:
        counts = reader.message_counts
    assert counts[topics["image"]] == 12 and counts[topics["depth"]] == 3  # frames 0, 5, 10
    assert "odometry" not in topics and SEVEN_SCENES_TOPICS["odometry"] not in counts


def test_pose_output_and_missing_poses_errors(shared_data, tmp_path):
    with pytest.raises(ValueError, match="pose output 'gps' is unknown"):
        write_kitti_odometry_bag(shared_data / "kitti_odometry07_first160", tmp_path / "x", "mcap", poses="gps")
