"""Bare .mcap / .db3 files (no metadata.yaml) through depth-eval, depth-extract and play_bag, with a bag written by
a third-party tool (kitti2mcap, pinned in .ci/requirements.txt) from a KITTI raw drive."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from shared_data import DATA

from depth_estimation_ros.data.bag_reading import BagError, BagReader
from depth_estimation_ros.data.bag_writing import BagWriter
from depth_estimation_ros.data.datasets import KittiRawSequence, kitti_velodyne_to_camera
from depth_estimation_ros.evaluation.cli import main as depth_eval_main
from depth_estimation_ros.frame.projection import backproject_depth, transform_points
from depth_estimation_ros.ros.background_spin import BackgroundSpinner

KITTI_ROOT = DATA / "kitti_drive0023_tiny" / "KITTI_tiny"
DRIVE = "2011_09_26_drive_0023_sync"
KITTI2MCAP_TOPICS = {"image": "/kitti/camera_color_left/image_raw",
                     "camera_info": "/kitti/camera_color_left/camera_info", "lidar": "/kitti/velodyne_points"}


def write_velodyne_scans(drive: Path) -> int:
    """velodyne_points/ for a drive that has only the projected depth: each frame's cloud reconstructed from it as
    dataset_bags.write_kitti_lidar_bag does (back-projected, moved to the velodyne frame), float32 x, y, z,
    intensity (0) per point, named and stamped like image_02's frames."""
    sequence = KittiRawSequence(drive, "image_02", ground_truth="velodyne")
    t_velo_cam = np.linalg.inv(kitti_velodyne_to_camera(sequence.calib_dir, 2))
    names = sorted(p.stem for p in (drive / "image_02" / "data").glob("*.png"))
    out = drive / "velodyne_points" / "data"
    out.mkdir(parents=True)
    for name, frame in zip(names, sequence, strict=True):
        xyz = transform_points(t_velo_cam, backproject_depth(frame.depth, frame.camera)).astype(np.float32)
        np.concatenate([xyz, np.zeros((len(xyz), 1), np.float32)], axis=1).tofile(out / f"{name}.bin")
    shutil.copy(drive / "image_02" / "timestamps.txt", drive / "velodyne_points" / "timestamps.txt")
    return len(names)


@pytest.fixture(scope="module")
def kitti2mcap_bag(tmp_path_factory) -> Path:
    """A bare .mcap written by kitti2mcap from a temporary copy of the KITTI drive plus reconstructed scans."""
    root = tmp_path_factory.mktemp("kitti2mcap")
    copy = root / "KITTI_tiny"
    shutil.copytree(KITTI_ROOT, copy)
    for path in [copy, *copy.rglob("*")]:  # shared/ is read-only: the copy must take velodyne_points/
        path.chmod(path.stat().st_mode | 0o200)
    assert write_velodyne_scans(copy / "2011_09_26" / DRIVE) == 7
    out = root / "drive0023.mcap"
    run = subprocess.run([sys.executable, "-m", "kitti2mcap", "--date", "2011_09_26", "--drive", "0023",
                          "--kitti-dir", str(copy), "--output", str(out), "--no-imu"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert out.is_file() and not (root / "metadata.yaml").exists()
    return out


def test_kitti2mcap_bag_reads_as_a_bare_mcap(kitti2mcap_bag):
    with BagReader(kitti2mcap_bag) as bag:
        assert not bag.is_ros1
        assert bag.topics[KITTI2MCAP_TOPICS["lidar"]] == "sensor_msgs/msg/PointCloud2"
        assert bag.count(KITTI2MCAP_TOPICS["image"]) == 7 and bag.count(KITTI2MCAP_TOPICS["lidar"]) == 7
        assert "velodyne" in bag.read_transforms().frames


def test_depth_eval_lidar_on_the_kitti2mcap_bag_matches_the_drive_folder(kitti2mcap_bag, tmp_path, capsys):
    """End to end: the third-party bag's cloud, CameraInfo and /tf_static give the same ground truth, so the same
    scores, as the drive folder's shipped projected depth."""
    common = ["--model", "lacdepth", "--backend", "onnxruntime", "--preset", "kitti", "--no-progress",
              "--no-scene-blind"]
    rc = depth_eval_main([str(kitti2mcap_bag), "--lidar-topic", KITTI2MCAP_TOPICS["lidar"],
                          "--image-topic", KITTI2MCAP_TOPICS["image"], "--output-dir", str(tmp_path / "bag"),
                          *common])
    assert rc == 0, capsys.readouterr().err
    rc = depth_eval_main([str(KITTI_ROOT / "2011_09_26" / DRIVE), "--output-dir", str(tmp_path / "folder"), *common])
    assert rc == 0, capsys.readouterr().err
    bag = json.loads((tmp_path / "bag" / "summary.json").read_text())
    folder = json.loads((tmp_path / "folder" / "summary.json").read_text())
    assert bag["source"]["ground_truth"] == "lidar" and bag["source"]["kind"] == "ros2 bag"
    assert bag["summary"]["frames_evaluated"] == folder["summary"]["frames_evaluated"] == 7
    for key in ("abs_rel", "rmse", "d1"):
        got, want = bag["summary"]["metric"][key], folder["summary"]["metric"][key]
        assert got == pytest.approx(want, rel=0.02), (key, got, want)


def test_depth_extract_takes_the_bare_mcap(kitti2mcap_bag, tmp_path):
    from depth_estimation_training.extract import ExtractOptions, extract_bag

    summary = extract_bag(kitti2mcap_bag, tmp_path / "out",
                          ExtractOptions(image_topic=KITTI2MCAP_TOPICS["image"],
                                         lidar_topic=KITTI2MCAP_TOPICS["lidar"], progress=False))
    assert summary.kept == 7 and summary.with_sparse_depth == 7
    assert [Path(s).name for s in summary.sequences] == ["drive0023"]  # named after the file, suffix dropped


@pytest.mark.parametrize("fmt", ["sqlite3", "mcap"])
def test_bare_file_reads_like_its_bag_folder(tmp_path, fmt):
    folder = tmp_path / "bag"
    with BagWriter(folder, fmt) as writer:
        for i in range(3):
            writer.write_image("/cam/image", 1_000 + i, "cam", np.full((4, 6, 3), i, np.uint8), "rgb8")
    data_file = next(p for p in folder.iterdir() if p.suffix in (".db3", ".mcap"))
    bare = tmp_path / f"bare{data_file.suffix}"
    shutil.copy(data_file, bare)
    with BagReader(folder) as a, BagReader(bare) as b:
        assert a.topics == b.topics and a.message_counts == b.message_counts
        assert [m.raw for m in a.messages()] == [m.raw for m in b.messages()]
    with BagReader(data_file) as inside:  # a file inside a bag folder still means the folder
        assert inside.count("/cam/image") == 3
    data_file.rename(tmp_path / "loose")  # a folder with metadata.yaml but ...
    (folder / "metadata.yaml").unlink()
    shutil.copy(bare, folder / bare.name)
    with pytest.raises(BagError, match=rf"without metadata.yaml.*{bare.name}: pass one of these files"):
        BagReader(folder)


def test_play_bag_plays_a_bare_mcap(kitti2mcap_bag, rclpy_context):
    import rclpy.executors
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo

    node = Node("bare_mcap_listener")
    received = []
    node.create_subscription(CameraInfo, "/bare_mcap/camera_info", received.append,
                             QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    spinner = BackgroundSpinner(executor).start()
    try:
        run = subprocess.run(
            [sys.executable, "-m", "depth_estimation_ros.ros.bag_player", str(kitti2mcap_bag), "--rate", "10",
             "--topics", KITTI2MCAP_TOPICS["camera_info"], "--wait-for", "/bare_mcap/camera_info",
             "--remap", f"{KITTI2MCAP_TOPICS['camera_info']}:=/bare_mcap/camera_info"],
            capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "published 7 messages" in run.stdout
        deadline = time.monotonic() + 10
        while len(received) < 7 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(received) == 7 and received[0].header.frame_id == "camera_color_left"
    finally:
        spinner.stop()
        node.destroy_node()
