"""Calibration frames from an image folder and from a rosbag image topic (real frames, real rosbags)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from shared_data import DATA

from depth_estimation_ros.engines.calibration_frames import (
    CalibrationDataError,
    list_image_topics,
    load_calibration_frames,
    load_image_folder,
    load_rosbag_frames,
)
from depth_estimation_ros.frame import preprocessing

TUM_RGB = DATA / "tum_fr3_cabinet_keyframes" / "rgb"
KITTI_GRAY = DATA / "kitti_odometry00_first200"


def test_image_folder_gives_network_inputs_evenly_spaced():
    frames = load_image_folder(TUM_RGB, 48, 64, max_frames=5)
    assert frames.shape == (5, 3, 48, 64) and frames.dtype == np.float32
    assert 0.0 <= frames.min() and frames.max() <= 1.0
    files = sorted(TUM_RGB.glob("*.jpg"))
    last = cv2.cvtColor(cv2.imread(str(files[-1])), cv2.COLOR_BGR2RGB)  # evenly spaced: first and last included
    np.testing.assert_array_equal(frames[-1], preprocessing.to_network_input(last, 48, 64)[0])


def test_grayscale_frames_become_three_equal_channels():
    folder = next(p for p in KITTI_GRAY.rglob("*") if p.is_dir() and any(p.glob("*.png")))
    frames = load_image_folder(folder, 32, 96, max_frames=2)
    assert frames.shape == (2, 3, 32, 96)
    np.testing.assert_array_equal(frames[:, 0], frames[:, 2])


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(CalibrationDataError, match="has no images"):
        load_image_folder(tmp_path, 32, 32)
    with pytest.raises(CalibrationDataError, match="does not exist"):
        load_calibration_frames(tmp_path / "nope", 32, 32)


def _write_bag(path: Path, rgb_frames: list[np.ndarray]) -> None:
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    image_t = store.types["sensor_msgs/msg/Image"]
    compressed_t = store.types["sensor_msgs/msg/CompressedImage"]
    header_t, time_t = store.types["std_msgs/msg/Header"], store.types["builtin_interfaces/msg/Time"]
    with Writer(path, version=9) as writer:
        raw = writer.add_connection("/camera/image_raw", image_t.__msgtype__, typestore=store)
        jpeg = writer.add_connection("/camera/image_raw/compressed", compressed_t.__msgtype__, typestore=store)
        for index, rgb in enumerate(rgb_frames):
            stamp = 1_700_000_000_000_000_000 + index * 100_000_000
            header = header_t(stamp=time_t(sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id="camera")
            msg = image_t(header=header, height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", is_bigendian=0,
                          step=rgb.shape[1] * 3, data=np.ascontiguousarray(rgb).reshape(-1))
            writer.write(raw, stamp, store.serialize_cdr(msg, image_t.__msgtype__))
            ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            assert ok
            cmsg = compressed_t(header=header, format="rgb8; png compressed bgr8", data=encoded.reshape(-1))
            writer.write(jpeg, stamp, store.serialize_cdr(cmsg, compressed_t.__msgtype__))


@pytest.fixture(scope="module")
def bag_and_frames(tmp_path_factory):
    files = sorted(TUM_RGB.glob("*.jpg"))[:6]
    rgb = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]
    bag = tmp_path_factory.mktemp("bags") / "camera_bag"
    _write_bag(bag, rgb)
    return bag, rgb


def test_rosbag_image_and_compressed_topics_give_the_same_frames_as_the_images(bag_and_frames):
    bag, rgb = bag_and_frames
    assert list_image_topics(bag) == {
        "/camera/image_raw": "sensor_msgs/msg/Image",
        "/camera/image_raw/compressed": "sensor_msgs/msg/CompressedImage",
    }
    expected = np.stack([preprocessing.to_network_input(f, 40, 56)[0] for f in rgb])
    raw = load_rosbag_frames(bag, "/camera/image_raw", 40, 56, max_frames=10)
    png = load_calibration_frames(bag, 40, 56, topic="/camera/image_raw/compressed", max_frames=10)
    np.testing.assert_array_equal(raw, expected)
    np.testing.assert_array_equal(png, expected)  # png is lossless
    assert load_rosbag_frames(bag, "/camera/image_raw", 40, 56, max_frames=3).shape == (3, 3, 40, 56)


def test_rosbag_errors_name_the_topics(bag_and_frames):
    bag, _ = bag_and_frames
    with pytest.raises(CalibrationDataError, match="/camera/image_raw/compressed"):
        load_rosbag_frames(bag, "/wrong", 40, 56)
    with pytest.raises(CalibrationDataError, match="name one with --topic"):
        load_calibration_frames(bag, 40, 56)
