"""Calibration frames for INT8 quantization and the accuracy gate: from an image folder or a rosbag image topic.

Frames are returned exactly as the engines see them: (N, 3, H, W) float32 RGB in [0, 1] at the network input size,
prepared by preprocessing.to_network_input. Grayscale images are replicated to three channels (what a mono camera
gives the node after conversion).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from depth_estimation_ros.data.bag_reading import BagReader, is_bag_path
from depth_estimation_ros.errors import InputError
from depth_estimation_ros.frame import preprocessing
from depth_estimation_ros.messages.message_decoding import rgb_from_image_message

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff")
IMAGE_MSGTYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


class CalibrationDataError(InputError):
    """Calibration frames cannot be read; the message names the source and the fix."""


def _evenly_spaced(count: int, limit: int) -> list[int]:
    """Indices of at most ``limit`` items spread over ``count`` (whole drive, not its first seconds)."""
    if limit <= 0 or count <= limit:
        return list(range(count))
    return sorted({round(float(i)) for i in np.linspace(0, count - 1, limit)})


def _as_rgb(image: np.ndarray, source: str) -> np.ndarray:
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise CalibrationDataError(f"{source}: expected a grayscale or colour image, got shape {image.shape}")
    if image.dtype == np.uint16:
        image = (image / 257.0).round().astype(np.uint8)
    if image.dtype != np.uint8:
        raise CalibrationDataError(f"{source}: expected 8- or 16-bit pixels, got {image.dtype}")
    return np.ascontiguousarray(image[:, :, :3])


def load_image_folder(folder: str | os.PathLike, height: int, width: int, max_frames: int = 32) -> np.ndarray:
    """Up to ``max_frames`` images of ``folder`` (sorted by name, evenly spaced) as (N, 3, height, width)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CalibrationDataError(f"calibration folder '{folder}' does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise CalibrationDataError(
            f"calibration folder '{folder}' has no images ({', '.join(IMAGE_SUFFIXES)}); point it at a folder of "
            "camera frames, or at a rosbag with --topic"
        )
    frames = []
    for index in _evenly_spaced(len(files), max_frames):
        bgr = cv2.imread(str(files[index]), cv2.IMREAD_UNCHANGED)
        if bgr is None:
            raise CalibrationDataError(f"cannot decode calibration image '{files[index]}'")
        if bgr.ndim == 3:
            bgr = cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGBA if bgr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
        frames.append(preprocessing.to_network_input(_as_rgb(bgr, str(files[index])), height, width)[0])
    return np.stack(frames)


def list_image_topics(bag_path: str | os.PathLike) -> dict[str, str]:
    """Image / CompressedImage topics of a rosbag (ROS 1 .bag or ROS 2 folder/.mcap/.db3) -> message type."""
    with BagReader(bag_path) as bag:
        return {topic: msgtype for topic, msgtype in bag.topics.items() if msgtype in IMAGE_MSGTYPES}


def load_rosbag_frames(
    bag_path: str | os.PathLike, topic: str, height: int, width: int, max_frames: int = 32
) -> np.ndarray:
    """Up to ``max_frames`` frames of an Image or CompressedImage topic, evenly spaced over the bag, decoded as the
    node decodes them (messages/message_decoding.py)."""
    bag_path = Path(bag_path)
    if not bag_path.exists():
        raise CalibrationDataError(f"rosbag '{bag_path}' does not exist")
    with BagReader(bag_path) as bag:
        if topic not in bag.topics:
            topics = {t: m for t, m in bag.topics.items() if m in IMAGE_MSGTYPES}
            raise CalibrationDataError(
                f"rosbag '{bag_path}' has no topic '{topic}'; its image topics are {topics or 'none'}"
            )
        if bag.topics[topic] not in IMAGE_MSGTYPES:
            raise CalibrationDataError(
                f"topic '{topic}' in '{bag_path}' is {bag.topics[topic]}; expected one of {IMAGE_MSGTYPES}"
            )
        wanted = set(_evenly_spaced(bag.count(topic), max_frames))
        frames = []
        for index, item in enumerate(bag.messages([topic])):
            if index not in wanted:
                continue
            rgb = rgb_from_image_message(item.message)
            frames.append(preprocessing.to_network_input(_as_rgb(rgb, f"{bag_path}:{topic}"), height, width)[0])
    if not frames:
        raise CalibrationDataError(f"topic '{topic}' in rosbag '{bag_path}' has no messages")
    return np.stack(frames)


def load_calibration_frames(
    source: str | os.PathLike, height: int, width: int, topic: str | None = None, max_frames: int = 32
) -> np.ndarray:
    """Frames from an image folder, or from a rosbag (``topic`` required unless the bag has one image topic)."""
    path = Path(source)
    if path.is_dir() and not is_bag_path(path):
        return load_image_folder(path, height, width, max_frames)
    if not path.exists():
        raise CalibrationDataError(f"calibration source '{source}' does not exist (an image folder or a rosbag)")
    if topic is None:
        topics = list_image_topics(path)
        if len(topics) != 1:
            raise CalibrationDataError(
                f"rosbag '{source}' has image topics {sorted(topics) or 'none'}; name one with --topic"
            )
        topic = next(iter(topics))
    return load_rosbag_frames(path, topic, height, width, max_frames)
