"""Where evaluation frames come from: a rosbag (image + CameraInfo + depth image or lidar) or a folder dataset.

Each source yields ``EvaluationFrame`` objects with the decoded RGB, ground-truth depth (metres, NaN = none) on
the image grid, the camera and the image header. Bags are read once, in log-time order; images are paired with
the ground-truth message nearest in header stamp (within a tolerance) and with the CameraInfo of the same stamp
(else the nearest one).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from depth_estimation_ros.data.bag_reading import (
    CAMERA_INFO_TYPE,
    COMPRESSED_IMAGE_TYPE,
    IMAGE_TYPE,
    POINT_CLOUD2_TYPE,
    BagMessage,
    BagReader,
    TopicNotFoundError,
    camera_info_topic_for,
)
from depth_estimation_ros.data.datasets import open_dataset
from depth_estimation_ros.data.stamp_matching import StampPairer, nearest_stamp_index
from depth_estimation_ros.errors import InputError
from depth_estimation_ros.frame.camera_model import PinholeCamera, camera_from_camera_info, looks_unrectified
from depth_estimation_ros.frame.projection import lidar_depth_image
from depth_estimation_ros.messages.message_decoding import (
    depth_from_image_message,
    header_stamp_ns,
    rgb_from_image_message,
    xyz_from_point_cloud_message,
)


class EvaluationInputError(InputError):
    """The evaluation input lacks something it needs; the message names it and the fix."""


@dataclass
class EvaluationFrame:
    index: int
    name: str
    stamp_ns: int
    frame_id: str
    rgb: np.ndarray
    ground_truth: np.ndarray | None  # HxW metres, NaN = none; None when the frame has no ground-truth message
    camera: PinholeCamera  # at the RGB image size
    decode_s: float = 0.0
    log_time_ns: int = 0
    number: int | None = None  # the dataset's own frame number (folders); None: the position ``index``


@dataclass
class BagTopics:
    image: str | None = None
    camera_info: str | None = None
    depth: str | None = None
    lidar: str | None = None
    camera_frame: str | None = None  # overrides the CameraInfo / image frame_id for the lidar transform


@dataclass
class SourceStats:
    images: int = 0
    without_ground_truth: int = 0
    notes: list[str] = field(default_factory=list)


def resolve_bag_topics(bag: BagReader, topics: BagTopics) -> BagTopics:
    """Fill in topics the user left out when the bag makes the choice unambiguous; clear errors otherwise."""
    image_types = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)
    resolved = BagTopics(**vars(topics))
    if resolved.depth and resolved.lidar:
        raise EvaluationInputError("give either a depth topic or a lidar topic as ground truth, not both")
    if resolved.image is None:
        candidates = [t for t in bag.topics_of_type(IMAGE_TYPE) + bag.topics_of_type(COMPRESSED_IMAGE_TYPE)
                      if t != resolved.depth and "depth" not in t]
        if len(candidates) != 1:
            raise TopicNotFoundError(
                "cannot tell which topic is the camera image; pass --image-topic. The bag has:\n"
                + bag.describe_topics()
            )
        resolved.image = candidates[0]
    bag.require_topic(resolved.image, image_types)
    infos = bag.topics_of_type(CAMERA_INFO_TYPE)
    if resolved.camera_info is None:
        resolved.camera_info = camera_info_topic_for(resolved.image, infos)
        if resolved.camera_info is None:
            raise TopicNotFoundError(
                f"no CameraInfo topic for image '{resolved.image}' (the bag has CameraInfo topics: "
                f"{', '.join(infos) or 'none'}); record the camera's camera_info or pass --camera-info-topic. "
                f"The bag has:\n{bag.describe_topics()}"
            )
    bag.require_topic(resolved.camera_info, [CAMERA_INFO_TYPE])
    if resolved.depth is None and resolved.lidar is None:
        clouds = bag.topics_of_type(POINT_CLOUD2_TYPE)
        depths = [t for t in bag.topics_of_type(IMAGE_TYPE) if "depth" in t and t != resolved.image]
        if len(depths) == 1 and not clouds:
            resolved.depth = depths[0]
        elif len(clouds) == 1 and not depths:
            resolved.lidar = clouds[0]
        else:
            raise TopicNotFoundError(
                "cannot tell which topic is the ground truth; pass --depth-topic (16UC1/32FC1 image) or "
                f"--lidar-topic (PointCloud2). The bag has:\n{bag.describe_topics()}"
            )
    if resolved.depth:
        bag.require_topic(resolved.depth, [IMAGE_TYPE])
    if resolved.lidar:
        bag.require_topic(resolved.lidar, [POINT_CLOUD2_TYPE])
    return resolved


def _read_cameras(bag: BagReader, topic: str) -> tuple[list[int], list[PinholeCamera], list[str]]:
    stamps, cameras, frames = [], [], []
    for m in bag.messages([topic]):
        stamps.append(header_stamp_ns(m.message))
        cameras.append(camera_from_camera_info(m.message))
        frames.append(m.message.header.frame_id)
    if not stamps:
        raise EvaluationInputError(
            f"CameraInfo topic '{topic}' has no messages in bag '{bag.path}'; the camera intrinsics are needed to "
            "project lidar and scale predictions. Record the camera_info topic with the images."
        )
    order = np.argsort(stamps, kind="stable")
    return [stamps[i] for i in order], [cameras[i] for i in order], [frames[i] for i in order]


def bag_frames(bag: BagReader, topics: BagTopics, tolerance_s: float = 0.05, stats: SourceStats | None = None,
               copy_message: Callable[[BagMessage], None] | None = None) -> Iterator[EvaluationFrame]:
    """Evaluation frames from an open bag (topics already resolved with resolve_bag_topics).

    ``copy_message`` (for the output bag) receives every message of the bag; then all topics are read.
    """
    stats = stats or SourceStats()
    info_stamps, cameras, info_frames = _read_cameras(bag, topics.camera_info)
    transforms = bag.read_transforms() if topics.lidar else None
    truth_topic = topics.depth or topics.lidar
    pairer = StampPairer(int(tolerance_s * 1e9))
    index = 0

    def build(image_msg: BagMessage, truth_msg: BagMessage | None) -> EvaluationFrame:
        nonlocal index
        start = time.perf_counter()
        msg = image_msg.message
        stamp = header_stamp_ns(msg)
        rgb = rgb_from_image_message(msg)
        j = nearest_stamp_index(info_stamps, stamp)
        camera = cameras[j]
        if (camera.width, camera.height) != (rgb.shape[1], rgb.shape[0]):
            camera = camera.scaled(rgb.shape[1], rgb.shape[0])
        frame_id = topics.camera_frame or info_frames[j] or msg.header.frame_id
        truth = None
        if truth_msg is not None and topics.depth:
            truth = depth_from_image_message(truth_msg.message)
            if truth.shape != rgb.shape[:2]:
                raise EvaluationInputError(
                    f"depth ground truth is {truth.shape[1]}x{truth.shape[0]} but the image is "
                    f"{rgb.shape[1]}x{rgb.shape[0]}; use the depth topic registered to the colour camera "
                    "(e.g. aligned_depth_to_color)"
                )
        elif truth_msg is not None:
            cloud = truth_msg.message
            t_cam_lidar = transforms.lookup(frame_id, cloud.header.frame_id, header_stamp_ns(cloud))
            truth = lidar_depth_image(xyz_from_point_cloud_message(cloud), t_cam_lidar, camera,
                                      rectified=not looks_unrectified(camera, topics.image or ""))
        frame = EvaluationFrame(index, f"{index:06d}", stamp, frame_id, rgb, truth, camera,
                                time.perf_counter() - start, image_msg.log_time_ns)
        index += 1
        return frame

    def emit(pairs):
        for image_msg, truth_msg in pairs:
            stats.images += 1
            if truth_msg is None:
                stats.without_ground_truth += 1
            yield build(image_msg, truth_msg)

    wanted = None if copy_message else [topics.image, truth_topic]
    for m in bag.messages(wanted):
        if copy_message:
            copy_message(m)
        if m.topic == topics.image:
            yield from emit(pairer.add_image(header_stamp_ns(m.message), m))
        elif m.topic == truth_topic:
            yield from emit(pairer.add_truth(header_stamp_ns(m.message), m))
    yield from emit(pairer.finish())


def folder_frames(folder: str | Path, stats: SourceStats | None = None, **dataset_options
                  ) -> Iterator[EvaluationFrame]:
    """Evaluation frames from a KITTI or TUM folder (see datasets.open_dataset)."""
    stats = stats or SourceStats()
    dataset = open_dataset(folder, **dataset_options)
    for index, item in enumerate(dataset):
        stats.images += 1
        truth = item.depth
        if truth is None:
            stats.without_ground_truth += 1
        elif truth.shape != item.rgb.shape[:2]:
            truth = resize_depth_nearest(truth, item.rgb.shape[0], item.rgb.shape[1])
        yield EvaluationFrame(index, item.name, item.stamp_ns, "camera", item.rgb, truth, item.camera,
                              number=item.number)


def resize_depth_nearest(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resampling for sparse ground truth (never blends valid with missing pixels)."""
    rows = (np.arange(height) * depth.shape[0] / height).astype(int)
    cols = (np.arange(width) * depth.shape[1] / width).astype(int)
    return depth[rows][:, cols]
