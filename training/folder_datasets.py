"""Sequence folders from the image-folder datasets in shared/data (no bag): KITTI odometry (image_0/, calib.txt,
poses) and TUM RGB-D keyframes (rgb/, truth_cam_poses.txt). Their ground-truth poses are stored as the sequence's
odometry (camera-to-world), which gives COLMAP's reconstruction its metric scale, as wheel/visual odometry in a bag
would; they are never used as training poses directly."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from depth_estimation_training.sequence import Sequence, SequenceError, sequence_from_image_folder

from depth_estimation_ros.bag_reading import quaternion_to_matrix


def _read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SequenceError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def kitti_odometry_sequence(folder: Path, out: Path, frames: range | None = None, name: str | None = None
                            ) -> Sequence:
    """KITTI odometry layout: image_0/NNNNNN.png, calib.txt (K as 3 rows, '#' comments), poses_*.txt (3x4 per line,
    camera-to-world), times.txt. Grey images are stored as 3-channel RGB."""
    folder = Path(folder)
    images = sorted((folder / "image_0").glob("*.png"))
    if not images:
        raise SequenceError(f"{folder}/image_0 has no PNG images; is this a KITTI odometry folder?")
    k = np.loadtxt(folder / "calib.txt", comments="#").reshape(3, 3)
    pose_files = sorted(folder.glob("poses*.txt"))
    poses = np.loadtxt(pose_files[0]).reshape(-1, 3, 4) if pose_files else None
    times = np.loadtxt(folder / "times.txt") if (folder / "times.txt").is_file() else np.arange(len(images)) * 0.1
    idx = list(frames) if frames is not None else list(range(len(images)))
    odometry = None if poses is None else [np.vstack([poses[i], [0, 0, 0, 1]]) for i in idx]
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
