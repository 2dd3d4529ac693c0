"""depth-extract: rosbags (ROS 1 .bag, ROS 2 sqlite3 / MCAP) or image folders -> sequence folders for training.

Per bag: an image topic (Image or CompressedImage) with its CameraInfo; optionally a lidar PointCloud2 (projected
into the camera with the /tf_static extrinsics) or a depth Image as sparse metric depth, and odometry
(nav_msgs/Odometry or a /tf frame) as camera-to-world poses. Images are undistorted when CameraInfo D is non-zero and
the image topic is not a rectified one (image_rect*, which comes with the raw calibration's D).
Static frames are dropped (static_frames.py); a time gap longer than --max-gap starts a new segment, written as
its own sequence folder <out>/<bag name>_segNN. A summary says what was kept and why frames were dropped.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from depth_estimation_training.sequence import Frame, Sequence, save_sequence, write_image, write_sparse_depth
from depth_estimation_training.static_frames import StaticFrameFilter, is_static, thumbnail
from depth_estimation_training.undistort import Undistorter

from depth_estimation_ros.data.bag_reading import (
    CAMERA_INFO_TYPE,
    COMPRESSED_IMAGE_TYPE,
    IMAGE_TYPE,
    POINT_CLOUD2_TYPE,
    BagReader,
    camera_info_topic_for,
)
from depth_estimation_ros.data.stamp_matching import nearest_stamp_index
from depth_estimation_ros.data.transform_tree import TransformNotFoundError
from depth_estimation_ros.errors import EXPECTED_ERRORS, InputError, report_error
from depth_estimation_ros.frame.camera_model import PinholeCamera, camera_from_camera_info, looks_unrectified
from depth_estimation_ros.frame.projection import points_to_depth_image, quaternion_to_matrix, transform_points
from depth_estimation_ros.messages.message_decoding import (
    depth_from_image_message,
    header_stamp_ns,
    rgb_from_image_message,
    xyz_from_point_cloud_message,
)

LOG = logging.getLogger("depth-extract")
ODOMETRY_TYPE = "nav_msgs/msg/Odometry"


class ExtractionError(InputError):
    """The bag cannot be extracted as asked; the message names the problem and the fix."""


@dataclass
class ExtractOptions:
    image_topic: str | None = None  # None: the bag's only Image/CompressedImage topic
    camera_info_topic: str | None = None  # None: <image namespace>/camera_info, else the only CameraInfo topic
    lidar_topic: str | None = None
    depth_topic: str | None = None
    odometry_topic: str | None = None  # nav_msgs/Odometry
    odometry_frame: str | None = None  # or: a /tf frame (e.g. "odom", "map") giving the camera pose by lookup
    static: StaticFrameFilter = field(default_factory=StaticFrameFilter)
    sync_tolerance_s: float = 0.05  # lidar/depth/odometry within this of the image stamp
    max_gap_s: float = 1.0  # a longer gap between images starts a new segment
    min_segment_frames: int = 3
    progress: bool = True


@dataclass
class ExtractionSummary:
    sequences: list[Path] = field(default_factory=list)
    images: int = 0
    kept: int = 0
    dropped_static: int = 0
    dropped_short_segment: int = 0
    with_sparse_depth: int = 0
    with_odometry: int = 0
    undistorted: bool = False
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"{self.images} images: kept {self.kept} in {len(self.sequences)} sequence(s)"
                 + (" (undistorted)" if self.undistorted else "")]
        if self.dropped_static:
            lines.append(f"  dropped {self.dropped_static} static frame(s) (camera not moving)")
        if self.dropped_short_segment:
            lines.append(f"  dropped {self.dropped_short_segment} frame(s) in segments shorter than the minimum")
        lines.append(f"  sparse depth for {self.with_sparse_depth}, odometry for {self.with_odometry} kept frame(s)")
        lines.extend(f"  note: {n}" for n in self.notes)
        lines.extend(f"  -> {p}" for p in self.sequences)
        return "\n".join(lines)


def _pick_topic(bag: BagReader, wanted: str | None, types: tuple[str, ...], what: str, flag: str,
                exclude: tuple[str | None, ...] = ()) -> str:
    if wanted:
        bag.require_topic(wanted, list(types))
        return wanted
    candidates = [t for t, ty in bag.topics.items() if ty in types and t not in exclude]
    if len(candidates) != 1:
        raise ExtractionError(
            f"the bag has {len(candidates)} {what} topics ({', '.join(candidates) or 'none'}); choose one with {flag}"
            + (f". Topics: {bag.describe_topics()}" if not candidates else "")
        )
    return candidates[0]


def _camera_info_topic(bag: BagReader, image_topic: str, wanted: str | None) -> str:
    if wanted:
        bag.require_topic(wanted, [CAMERA_INFO_TYPE])
        return wanted
    infos = bag.topics_of_type(CAMERA_INFO_TYPE)
    found = camera_info_topic_for(image_topic, infos)
    if found is not None:
        return found
    raise ExtractionError(
        f"cannot tell which CameraInfo belongs to {image_topic}: found {infos or 'none'}; pass --camera-info-topic"
        + ("" if infos else " (training needs the intrinsics: record the camera_info topic)")
    )


def _odometry_pose(message) -> np.ndarray:
    pose = message.pose.pose
    q = pose.orientation
    m = np.eye(4)
    m[:3, :3] = quaternion_to_matrix(q.x, q.y, q.z, q.w)
    m[:3, 3] = (pose.position.x, pose.position.y, pose.position.z)
    return m


@dataclass
class _BagIndex:
    """What pass 1 over a bag's small messages finds: the camera, the image stamps and the auxiliary stamps."""

    camera: PinholeCamera
    camera_frame: str
    image_stamps: list[int]
    aux_stamps: dict[str, list[int]]
    odometry: list[tuple[int, np.ndarray, str]]  # (stamp, pose of the odometry child frame, child frame id)


def _index_bag(bag: BagReader, bag_path: Path, image_topic: str, info_topic: str, aux_topics: list[str],
               odometry_topic: str | None) -> _BagIndex:
    camera: PinholeCamera | None = None
    camera_frame = ""
    image_stamps: list[int] = []
    aux_stamps: dict[str, list[int]] = {}
    odometry: list[tuple[int, np.ndarray, str]] = []
    for m in bag.messages([image_topic, info_topic, *aux_topics] + ([odometry_topic] if odometry_topic else [])):
        if m.topic == info_topic:
            if camera is None:
                camera = camera_from_camera_info(m.message)
                camera_frame = m.message.header.frame_id
        elif m.topic == image_topic:
            image_stamps.append(header_stamp_ns(m.message))
            camera_frame = camera_frame or m.message.header.frame_id
        elif m.topic == odometry_topic:
            odometry.append((header_stamp_ns(m.message), _odometry_pose(m.message), m.message.child_frame_id))
        else:
            aux_stamps.setdefault(m.topic, []).append(header_stamp_ns(m.message))
    if camera is None:
        raise ExtractionError(f"{info_topic} has no messages; training needs the camera intrinsics")
    if not image_stamps:
        raise ExtractionError(f"{image_topic} has no messages in {bag_path}")
    odometry.sort(key=lambda x: x[0])
    return _BagIndex(camera, camera_frame, image_stamps, aux_stamps, odometry)


def _sparse_depths(bag: BagReader, index: _BagIndex, opt: ExtractOptions, aux_topics: list[str], tf,
                   undistort: Undistorter, tol: int) -> dict[int, np.ndarray]:
    """Sparse depth (H, W float32 metres, 0 = none) for the images with a lidar / depth message close in time."""
    wanted: dict[tuple[str, int], list[int]] = {}
    for topic in aux_topics:
        stamps = sorted(index.aux_stamps.get(topic, []))
        for i, t in enumerate(index.image_stamps):
            j = nearest_stamp_index(stamps, t, tol)
            if j is not None and i not in {x for v in wanted.values() for x in v}:
                wanted.setdefault((topic, stamps[j]), []).append(i)
    camera = index.camera
    depth_camera = PinholeCamera(camera.width, camera.height, undistort.output_k)  # the undistorted image's
    sparse: dict[int, np.ndarray] = {}
    for m in bag.messages(aux_topics):
        key = (m.topic, header_stamp_ns(m.message))
        if key not in wanted:
            continue
        if m.topic == opt.lidar_topic:
            xyz = xyz_from_point_cloud_message(m.message).astype(np.float64)
            t_cam_lidar = tf.lookup(index.camera_frame, m.message.header.frame_id, key[1])
            depth = points_to_depth_image(transform_points(t_cam_lidar, xyz), depth_camera, min_depth=0.1)
            depth = np.nan_to_num(depth, nan=0.0)  # sparse depth files: 0 = no point
        else:
            raw = depth_from_image_message(m.message)
            depth = np.nan_to_num(undistort(raw, interpolation=0), nan=0.0).astype(np.float32)
        for i in wanted[key]:
            sparse[i] = depth
    return sparse


def _camera_poses(index: _BagIndex, opt: ExtractOptions, tf, tol: int,
                  summary: ExtractionSummary) -> dict[int, np.ndarray]:
    """Camera-to-world pose per image index: from odometry (nearest stamp) or from a /tf frame."""
    poses: dict[int, np.ndarray] = {}
    camera_frame = index.camera_frame
    if index.odometry:
        stamps = [o[0] for o in index.odometry]
        for i, t in enumerate(index.image_stamps):
            j = nearest_stamp_index(stamps, t, tol)
            if j is None:
                continue
            base_frame = index.odometry[j][2]
            try:
                t_base_cam = tf.lookup(base_frame, camera_frame, t) if base_frame else np.eye(4)
            except TransformNotFoundError:
                summary.notes.append(f"no tf from {camera_frame} to odometry child frame {base_frame}: "
                                     "camera assumed at the odometry frame")
                t_base_cam = np.eye(4)
            poses[i] = index.odometry[j][1] @ t_base_cam
    elif opt.odometry_frame:
        for i, t in enumerate(index.image_stamps):
            try:
                poses[i] = tf.lookup(opt.odometry_frame, camera_frame, t)
            except TransformNotFoundError as exc:
                raise ExtractionError(f"odometry frame: {exc}") from exc
    return poses


def _moving_segments(bag: BagReader, bag_path: Path, image_topic: str, index: _BagIndex, undistort: Undistorter,
                     poses: dict[int, np.ndarray], opt: ExtractOptions,
                     summary: ExtractionSummary) -> list[list[tuple[int, np.ndarray]]]:
    """The images, undistorted, cut into segments at gaps longer than max_gap_s, static frames dropped."""
    from tqdm import tqdm

    segments: list[list[tuple[int, np.ndarray]]] = []
    previous_stamp, last_thumb, last_pose = None, None, None
    with tqdm(total=len(index.image_stamps), disable=not opt.progress, desc=f"extract {bag_path.name}") as bar:
        for i, m in enumerate(bag.messages([image_topic])):
            bar.update(1)
            stamp = index.image_stamps[i]
            rgb = undistort(rgb_from_image_message(m.message))
            thumb = thumbnail(rgb)
            pose = poses.get(i)
            new_segment = previous_stamp is None or (stamp - previous_stamp) > opt.max_gap_s * 1e9
            previous_stamp = stamp
            if not new_segment and is_static(opt.static, thumb, last_thumb, pose, last_pose)[0]:
                summary.dropped_static += 1
                continue
            if new_segment:
                segments.append([])
            segments[-1].append((i, rgb))
            last_thumb, last_pose = thumb, pose
    return segments


def extract_bag(bag_path: Path, out_root: Path, options: ExtractOptions | None = None) -> ExtractionSummary:
    """Extract one bag into sequence folder(s) under out_root; returns the summary."""
    opt = options or ExtractOptions()
    bag_path, out_root = Path(bag_path), Path(out_root)
    summary = ExtractionSummary()
    tol = int(opt.sync_tolerance_s * 1e9)
    with BagReader(bag_path) as bag:
        image_topic = _pick_topic(bag, opt.image_topic, (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE), "image", "--image-topic",
                                  exclude=(opt.depth_topic,))
        info_topic = _camera_info_topic(bag, image_topic, opt.camera_info_topic)
        for topic, types in ((opt.lidar_topic, [POINT_CLOUD2_TYPE]), (opt.depth_topic, [IMAGE_TYPE]),
                             (opt.odometry_topic, [ODOMETRY_TYPE])):
            if topic:
                bag.require_topic(topic, types)
        aux_topics = [t for t in (opt.lidar_topic, opt.depth_topic) if t]
        index = _index_bag(bag, bag_path, image_topic, info_topic, aux_topics, opt.odometry_topic)
        camera = index.camera
        undistort = Undistorter.for_camera(camera, rectified=not looks_unrectified(camera, image_topic))
        summary.undistorted = undistort.map_x is not None
        summary.images = len(index.image_stamps)
        tf = bag.read_transforms() if (opt.lidar_topic or opt.odometry_topic or opt.odometry_frame) else None
        sparse = _sparse_depths(bag, index, opt, aux_topics, tf, undistort, tol) if aux_topics else {}
        poses = _camera_poses(index, opt, tf, tol, summary)
        segments = _moving_segments(bag, bag_path, image_topic, index, undistort, poses, opt, summary)
    base_name = bag_path.stem if bag_path.suffix in (".bag", ".mcap", ".db3") else bag_path.name
    source = {"source": str(bag_path), "image_topic": image_topic, "camera_info_topic": info_topic,
              "lidar_topic": opt.lidar_topic, "depth_topic": opt.depth_topic,
              "odometry": opt.odometry_topic or opt.odometry_frame}
    for s_idx, seg in enumerate(segments):
        if len(seg) < opt.min_segment_frames:
            summary.dropped_short_segment += len(seg)
            continue
        name = base_name if len(segments) == 1 else f"{base_name}_seg{s_idx:02d}"
        _write_segment(out_root / name, name, seg, index, undistort.output_k, sparse, poses, source, opt, summary)
    if not summary.sequences:
        raise ExtractionError(f"{bag_path}: no segment with at least {opt.min_segment_frames} moving frames "
                              f"({summary.images} images, {summary.dropped_static} static); lower the static "
                              "thresholds (--min-image-difference) or --min-segment-frames")
    return summary


def _write_segment(root: Path, name: str, segment: list[tuple[int, np.ndarray]], index: _BagIndex, k: np.ndarray,
                   sparse: dict[int, np.ndarray], poses: dict[int, np.ndarray], source: dict, opt: ExtractOptions,
                   summary: ExtractionSummary) -> None:
    """One sequence folder: images, sparse depth where there is some, sequence.json."""
    frames = []
    for local, (i, rgb) in enumerate(segment):
        rel = f"images/{local:06d}.png"
        write_image(root / rel, rgb)
        sparse_rel = None
        if i in sparse:
            sparse_rel = f"sparse_depth/{local:06d}.npz"
            write_sparse_depth(root / sparse_rel, sparse[i])
            summary.with_sparse_depth += 1
        if i in poses:
            summary.with_odometry += 1
        frames.append(Frame(rel, index.image_stamps[i] * 1e-9, sparse_rel, poses.get(i)))
    summary.kept += len(frames)
    seq = Sequence(root, name, index.camera.width, index.camera.height, k, frames, {
        **source, "undistorted": summary.undistorted, "images_in_bag": summary.images,
        "dropped_static": summary.dropped_static, "static_filter": vars(opt.static),
    })
    save_sequence(seq)
    summary.sequences.append(root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="depth-extract", description=__doc__.split("\n")[0])
    parser.add_argument("bags", nargs="*", type=Path, help="ROS 1 .bag files, ROS 2 bag folders or .mcap / .db3 "
                                                           "files")
    parser.add_argument("--kitti-odometry", type=Path, help="instead of bags: a KITTI odometry folder (image_0/)")
    parser.add_argument("--tum-keyframes", type=Path, help="instead of bags: a TUM keyframe folder (rgb/)")
    parser.add_argument("--seven-scenes", type=Path, help="instead of bags: a 7-Scenes folder (rgb/, pose/)")
    parser.add_argument("--frames", help="with a folder dataset: frame range START:STOP[:STEP]")
    parser.add_argument("--name", help="with a folder dataset: sequence name (default: the folder's name)")
    parser.add_argument("--out", type=Path, required=True, help="folder receiving the sequence folders")
    parser.add_argument("--image-topic")
    parser.add_argument("--camera-info-topic")
    parser.add_argument("--lidar-topic", help="sensor_msgs/PointCloud2 projected to sparse depth (needs /tf_static)")
    parser.add_argument("--depth-topic", help="registered depth Image (16UC1 mm or 32FC1 m) as sparse depth")
    parser.add_argument("--odometry-topic", help="nav_msgs/Odometry giving metric camera poses")
    parser.add_argument("--odometry-frame", help="or: a /tf frame (odom, map) in which to look up the camera pose")
    parser.add_argument("--min-image-difference", type=float, default=2.0,
                        help="static-frame threshold: mean grey-level change (0-255) vs the last kept frame")
    parser.add_argument("--min-translation", type=float, default=0.05, help="static threshold with odometry (m)")
    parser.add_argument("--min-rotation", type=float, default=0.5, help="static threshold with odometry (deg)")
    parser.add_argument("--max-gap", type=float, default=1.0, help="seconds without images that split segments")
    parser.add_argument("--min-segment-frames", type=int, default=3)
    parser.add_argument("--sync-tolerance", type=float, default=0.05, help="seconds, image vs lidar/depth/odometry")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    opt = ExtractOptions(
        args.image_topic, args.camera_info_topic, args.lidar_topic, args.depth_topic, args.odometry_topic,
        args.odometry_frame, StaticFrameFilter(args.min_image_difference, args.min_translation, args.min_rotation),
        args.sync_tolerance, args.max_gap, args.min_segment_frames,
    )
    if args.kitti_odometry or args.tum_keyframes or args.seven_scenes:
        from depth_estimation_training.folder_datasets import (
            kitti_odometry_sequence,
            seven_scenes_sequence,
            tum_keyframes_sequence,
        )

        frames = range(*map(int, args.frames.split(":"))) if args.frames else None
        folder = args.kitti_odometry or args.tum_keyframes or args.seven_scenes
        build = (kitti_odometry_sequence if args.kitti_odometry else
                 tum_keyframes_sequence if args.tum_keyframes else seven_scenes_sequence)
        name = args.name or folder.name
        seq = build(folder, args.out / name, frames, name)
        print(f"{folder}: {len(seq.frames)} frames -> {seq.root}")
        return 0
    if not args.bags:
        parser.error("give bags, or --kitti-odometry / --tum-keyframes / --seven-scenes")
    status = 0
    for bag in args.bags:
        try:
            print(f"{bag}: {extract_bag(bag, args.out, opt).text()}")
        except EXPECTED_ERRORS as exc:
            status = max(status, report_error("depth-extract", exc, str(bag)))
    return status


if __name__ == "__main__":
    sys.exit(main())
