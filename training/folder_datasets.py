"""Sequence folders from the image-folder datasets in shared/data (no bag): KITTI odometry (image_0/ or image_l/,
calib.txt, poses), TUM RGB-D keyframes (rgb/, truth_cam_poses.txt) and Microsoft 7-Scenes (rgb/, pose/). Their
ground-truth poses are stored as the sequence's odometry (camera-to-world), which gives COLMAP's reconstruction its
metric scale, as wheel/visual odometry in a bag would; they are never used as training poses directly."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from depth_estimation_training.sequence import Sequence, SequenceError, sequence_from_image_folder

from depth_estimation_ros.data.datasets import (
    DatasetError,
    kitti_odometry_intrinsics,
    read_kitti_odometry_poses,
    read_seven_scenes_pose,
    seven_scenes_intrinsics,
)
from depth_estimation_ros.frame.projection import quaternion_to_matrix


def _read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SequenceError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def kitti_odometry_sequence(folder: Path, out: Path, frames: range | None = None, name: str | None = None
                            ) -> Sequence:
    """KITTI odometry layout: image_0/ (or image_l/) NNNNNN.png, calib.txt (P0 lines or a 3x3 K), poses*.txt (3x4 per
    line, camera-to-world), times.txt (optional: 10 Hz assumed). Grey images are stored as 3-channel RGB."""
    folder = Path(folder)
    image_dir = next((folder / d for d in ("image_0", "image_l") if (folder / d).is_dir()), folder / "image_0")
    images = sorted(image_dir.glob("*.png"))
    if not images:
        raise SequenceError(f"{folder} has no image_0/ or image_l/ PNG images; is this a KITTI odometry folder?")
    try:
        k = kitti_odometry_intrinsics(folder / "calib.txt")
        pose_files = sorted(folder.glob("poses*.txt"))
        poses = read_kitti_odometry_poses(pose_files[0]) if pose_files else None
    except DatasetError as exc:
        raise SequenceError(str(exc)) from exc
    times = np.loadtxt(folder / "times.txt") if (folder / "times.txt").is_file() else np.arange(len(images)) * 0.1
    idx = list(frames) if frames is not None else list(range(len(images)))
    if idx and max(idx) >= len(images):
        raise SequenceError(f"{folder}: frame {max(idx)} requested, the folder has {len(images)} images")
    odometry = None if poses is None else [poses[i] for i in idx]
    return sequence_from_image_folder(Path(out), name or folder.name, [_read_rgb(images[i]) for i in idx], k,
                                      [float(times[i]) for i in idx], odometry)


TUM_FREIBURG3_K = np.array([[535.4, 0, 320.1], [0, 539.2, 247.6], [0, 0, 1]])


def tum_keyframes_sequence(folder: Path, out: Path, frames: range | None = None, name: str | None = None,
                           k: np.ndarray = TUM_FREIBURG3_K) -> Sequence:
    """TUM keyframes layout: rgb/NNNN_rgb_raw.jpg and truth_cam_poses.txt (timestamp tx ty tz qx qy qz qw per
    keyframe, camera-to-world)."""
    folder = Path(folder)
    images = sorted((folder / "rgb").glob("*.jpg"))
    rows = np.loadtxt(folder / "truth_cam_poses.txt")
    if len(images) != len(rows):
        raise SequenceError(f"{folder}: {len(images)} images but {len(rows)} poses")
    idx = list(frames) if frames is not None else list(range(len(images)))
    odometry = []
    for i in idx:
        m = np.eye(4)
        m[:3, :3] = quaternion_to_matrix(*rows[i, 4:8])
        m[:3, 3] = rows[i, 1:4]
        odometry.append(m)
    return sequence_from_image_folder(Path(out), name or folder.name, [_read_rgb(images[i]) for i in idx], k,
                                      [float(rows[i, 0]) for i in idx], odometry)


SEVEN_SCENES_RATE_HZ = 30.0


def seven_scenes_sequence(folder: Path, out: Path, frames: range | None = None, name: str | None = None
                          ) -> Sequence:
    """Microsoft 7-Scenes layout: rgb/frame-NNNNNN.color.jpg, pose/frame-NNNNNN.pose.txt (4x4 camera-to-world,
    metres), camera-intrinsics.txt (3x3 K); frames are 30 Hz, stamps are index / 30 s. Depth is not read: it is
    for validation only."""
    folder = Path(folder)
    images = sorted((folder / "rgb").glob("frame-*.color.*"))
    if not images:
        raise SequenceError(f"{folder}/rgb has no frame-NNNNNN.color.* images; is this a 7-Scenes folder?")
    idx = list(frames) if frames is not None else list(range(len(images)))
    if idx and max(idx) >= len(images):
        raise SequenceError(f"{folder}: frame {max(idx)} requested, the folder has {len(images)} images")
    try:
        k = seven_scenes_intrinsics(folder / "camera-intrinsics.txt")
        odometry = [read_seven_scenes_pose(folder / "pose" / f"{images[i].name.split('.')[0]}.pose.txt") for i in idx]
    except DatasetError as exc:
        raise SequenceError(str(exc)) from exc
    return sequence_from_image_folder(Path(out), name or folder.name, [_read_rgb(images[i]) for i in idx], k,
                                      [i / SEVEN_SCENES_RATE_HZ for i in idx], odometry)
