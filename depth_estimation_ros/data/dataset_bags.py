"""Build rosbags from folder datasets (the sample bag, evaluation and extraction tests, the docs' commands).

- TUM RGB-D -> colour image (raw rgb8 or CompressedImage jpeg/png), CameraInfo, registered depth (16UC1 mm or
  32FC1 m), all in one optical frame, as a RealSense-style driver publishes them.
- KITTI raw drive -> left colour image, CameraInfo, the velodyne scan as PointCloud2 in ``velo_link`` and
  /tf_static ``velo_link -> camera_color_left`` from calib_velo_to_cam.txt, R_rect_00 and P_rect_02.
- KITTI odometry sequence -> left grey image (mono8), CameraInfo from P0 and, where the folder has poses, the
  ground-truth camera pose as nav_msgs/Odometry or /tf (``odom`` = the first camera pose, KITTI's optical axes).
- 7-Scenes -> colour image (rgb8), CameraInfo, depth (16UC1 mm) where the frame has one, camera pose as
  nav_msgs/Odometry or /tf (``world`` = 7-Scenes' world frame). The depth is the depth camera's, not registered
  to the colour camera (a few pixels off at depth edges); it is written in the colour camera's frame as is.

KITTI lidar caveat: a drive folder may come without the raw ``velodyne_points/*.bin`` scans (the shared KITTI_tiny
set has only TRI's projection of each scan into image_02). Then the scan is *reconstructed*: every pixel of the
projected depth is back-projected into the camera frame (X = d K^-1 [u, v, 1]) and moved into the velodyne frame
with the inverse extrinsics. That cloud holds only the returns that fell inside image_02 (about 4 % of pixels,
one point per pixel), not the full 360° scan; it exercises the real extrinsics and projection chain, but
evaluating against it is equivalent to evaluating against the shipped projected depth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depth_estimation_ros.data.bag_writing import BagWriter
from depth_estimation_ros.data.datasets import (
    KittiOdometryFolder,
    KittiRawSequence,
    SevenScenesSequence,
    TumRgbdSequence,
    kitti_velodyne_to_camera,
)
from depth_estimation_ros.errors import EXPECTED_ERRORS, report_error
from depth_estimation_ros.frame.projection import backproject_depth, transform_points

TUM_TOPICS = {
    "image": "/camera/color/image_raw",
    "camera_info": "/camera/color/camera_info",
    "depth": "/camera/depth/image_raw",
    "depth_camera_info": "/camera/depth/camera_info",
}
TUM_FRAME = "camera_color_optical_frame"
KITTI_TOPICS = {
    "image": "/kitti/camera_color_left/image_raw",
    "camera_info": "/kitti/camera_color_left/camera_info",
    "lidar": "/kitti/velo/pointcloud",
}
KITTI_CAMERA_FRAME = "camera_color_left"
KITTI_LIDAR_FRAME = "velo_link"
KITTI_ODOMETRY_TOPICS = {
    "image": "/kitti/camera_gray_left/image_raw",
    "camera_info": "/kitti/camera_gray_left/camera_info",
    "odometry": "/kitti/odometry",
}
KITTI_ODOMETRY_CAMERA_FRAME = "camera_gray_left"
KITTI_ODOMETRY_WORLD_FRAME = "odom"
SEVEN_SCENES_TOPICS = {
    "image": "/camera/color/image_raw",
    "camera_info": "/camera/color/camera_info",
    "depth": "/camera/depth/image_raw",
    "depth_camera_info": "/camera/depth/camera_info",
    "odometry": "/camera/odometry",
}
SEVEN_SCENES_CAMERA_FRAME = "camera_color_optical_frame"
SEVEN_SCENES_WORLD_FRAME = "world"
POSE_OUTPUTS = ("odometry", "tf", "none")


def write_tum_bag(folder: str | Path, out_path: str | Path, bag_format: str | None = None, *,
                  compressed: str | None = None, depth_encoding: str = "16UC1", max_frames: int | None = None,
                  frame_stride: int = 1, first_frame: int = 0) -> dict[str, str]:
    """TUM RGB-D folder -> bag; ``compressed`` = 'jpeg' / 'png' writes image_raw/compressed instead of raw rgb8,
    'original' stores the dataset's own image files unchanged (no re-encoding). Frames first_frame,
    first_frame + frame_stride, ... (at most max_frames).

    Returns the topic names written (keys image, camera_info, depth, depth_camera_info).
    """
    sequence = TumRgbdSequence(folder)
    topics = dict(TUM_TOPICS)
    if compressed:
        topics["image"] = TUM_TOPICS["image"] + "/compressed"
    with BagWriter(out_path, bag_format) as bag:
        for i, (frame, (_, _, rgb_path, _)) in enumerate(zip(sequence, sequence.pairs)):
            if i < first_frame or (i - first_frame) % frame_stride:
                continue
            if max_frames is not None and (i - first_frame) // frame_stride >= max_frames:
                break
            if compressed == "original":
                fmt = "png" if Path(rgb_path).suffix.lower() == ".png" else "jpeg"
                bag.write_compressed_bytes(topics["image"], frame.stamp_ns, TUM_FRAME, Path(rgb_path).read_bytes(),
                                           fmt)
            elif compressed:
                bag.write_compressed_image(topics["image"], frame.stamp_ns, TUM_FRAME, frame.rgb, compressed)
            else:
                bag.write_image(topics["image"], frame.stamp_ns, TUM_FRAME, frame.rgb, "rgb8")
            bag.write_camera_info(topics["camera_info"], frame.stamp_ns, TUM_FRAME, frame.camera)
            if frame.depth is not None:
                bag.write_depth(topics["depth"], frame.stamp_ns, TUM_FRAME, frame.depth, depth_encoding)
                bag.write_camera_info(topics["depth_camera_info"], frame.stamp_ns, TUM_FRAME, frame.camera)
    return topics


def write_kitti_lidar_bag(drive_dir: str | Path, out_path: str | Path, bag_format: str | None = None, *,
                          compressed: str | None = None, max_frames: int | None = None) -> dict[str, str]:
    """KITTI raw drive with projected velodyne depth -> bag with image, CameraInfo, lidar cloud and /tf_static.

    See the module docstring for how the cloud is reconstructed when the raw scans are absent.
    """
    sequence = KittiRawSequence(drive_dir, "image_02", ground_truth="velodyne")
    if sequence.ground_truth != "velodyne":
        raise ValueError(f"'{drive_dir}' has no proj_depth/velodyne/image_02; cannot reconstruct the lidar scans")
    t_cam_velo = kitti_velodyne_to_camera(sequence.calib_dir, 2)
    t_velo_cam = np.linalg.inv(t_cam_velo)
    topics = dict(KITTI_TOPICS)
    if compressed:
        topics["image"] = KITTI_TOPICS["image"] + "/compressed"
    with BagWriter(out_path, bag_format) as bag:
        for i, frame in enumerate(sequence):
            if max_frames is not None and i >= max_frames:
                break
            if i == 0:
                bag.write_transforms(frame.stamp_ns, [(KITTI_LIDAR_FRAME, KITTI_CAMERA_FRAME, t_velo_cam)])
            if compressed:
                bag.write_compressed_image(topics["image"], frame.stamp_ns, KITTI_CAMERA_FRAME, frame.rgb, compressed)
            else:
                bag.write_image(topics["image"], frame.stamp_ns, KITTI_CAMERA_FRAME, frame.rgb, "rgb8")
            bag.write_camera_info(topics["camera_info"], frame.stamp_ns, KITTI_CAMERA_FRAME, frame.camera)
            points_velo = transform_points(t_velo_cam, backproject_depth(frame.depth, frame.camera))
            bag.write_point_cloud(topics["lidar"], frame.stamp_ns, KITTI_LIDAR_FRAME, points_velo.astype(np.float32))
    return topics


def _write_pose(bag: BagWriter, topics: dict[str, str], how: str, stamp_ns: int, world: str, camera_frame: str,
                pose: np.ndarray) -> None:
    if how == "odometry":
        bag.write_odometry(topics["odometry"], stamp_ns, world, camera_frame, pose)
    elif how == "tf":
        bag.write_transforms(stamp_ns, [(world, camera_frame, pose)], topic="/tf")


def _check_pose_output(how: str) -> None:
    if how not in POSE_OUTPUTS:
        raise ValueError(f"pose output '{how}' is unknown; choose one of {', '.join(POSE_OUTPUTS)}")


def write_kitti_odometry_bag(folder: str | Path, out_path: str | Path, bag_format: str | None = None, *,
                             poses: str = "odometry", frames: range | None = None) -> dict[str, str]:
    """KITTI odometry folder -> bag: image (mono8 for the grey cameras), CameraInfo (K from calib.txt's P0), and
    the ground-truth camera pose (``poses`` = 'odometry': nav_msgs/Odometry odom -> camera_gray_left; 'tf': /tf;
    'none'). Stamps from times.txt. ``frames``: the folder's frame numbers to write (default all).

    Returns the topic names written."""
    _check_pose_output(poses)
    sequence = KittiOdometryFolder(folder, frames)
    if poses != "none" and sequence.poses is None:
        raise ValueError(f"'{folder}' has no poses*.txt; pass poses='none' (--poses none)")
    topics = {k: v for k, v in KITTI_ODOMETRY_TOPICS.items() if k != "odometry" or poses == "odometry"}
    frame = KITTI_ODOMETRY_CAMERA_FRAME
    with BagWriter(out_path, bag_format) as bag:
        for number in sequence.numbers:
            stamp = sequence.stamp_ns(number)
            image = sequence.read_image(number)
            bag.write_image(topics["image"], stamp, frame, image, "mono8" if image.ndim == 2 else "rgb8")
            bag.write_camera_info(topics["camera_info"], stamp, frame, sequence.camera)
            if poses != "none":
                _write_pose(bag, topics, poses, stamp, KITTI_ODOMETRY_WORLD_FRAME, frame, sequence.poses[number])
    return topics


def write_seven_scenes_bag(folder: str | Path, out_path: str | Path, bag_format: str | None = None, *,
                           poses: str = "odometry", frames: range | None = None,
                           depth_encoding: str = "16UC1") -> dict[str, str]:
    """7-Scenes folder -> bag: every colour frame (rgb8) with CameraInfo, depth (16UC1 mm or 32FC1 m) and its
    CameraInfo for the frames that have depth, the camera pose (as in write_kitti_odometry_bag, world -> camera).
    Stamps: frame number / 30 Hz. ``frames``: 7-Scenes frame numbers to write (default all)."""
    _check_pose_output(poses)
    sequence = SevenScenesSequence(folder, frames, with_depth_only=False)
    topics = {k: v for k, v in SEVEN_SCENES_TOPICS.items() if k != "odometry" or poses == "odometry"}
    frame_id = SEVEN_SCENES_CAMERA_FRAME
    with BagWriter(out_path, bag_format) as bag:
        for frame in sequence:
            bag.write_image(topics["image"], frame.stamp_ns, frame_id, frame.rgb, "rgb8")
            bag.write_camera_info(topics["camera_info"], frame.stamp_ns, frame_id, frame.camera)
            if frame.depth is not None:
                bag.write_depth(topics["depth"], frame.stamp_ns, frame_id, frame.depth, depth_encoding)
                bag.write_camera_info(topics["depth_camera_info"], frame.stamp_ns, frame_id, frame.camera)
            if poses != "none":
                _write_pose(bag, topics, poses, frame.stamp_ns, SEVEN_SCENES_WORLD_FRAME, frame_id,
                            sequence.pose(frame.number))
    return topics


def main(argv: list[str] | None = None) -> int:
    """``python -m depth_estimation_ros.data.dataset_bags {tum,kitti-lidar,kitti-odometry,7scenes} SOURCE OUT ...``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m depth_estimation_ros.data.dataset_bags",
                                     description="Build a rosbag from a TUM RGB-D, KITTI raw, KITTI odometry or "
                                                 "7-Scenes folder.")
    parser.add_argument("kind", choices=["tum", "kitti-lidar", "kitti-odometry", "7scenes"])
    parser.add_argument("source", help="TUM folder, KITTI raw drive folder (..._sync), KITTI odometry sequence "
                                       "folder (image_0/, calib.txt) or 7-Scenes folder")
    parser.add_argument("out", help="output bag (a .bag path writes ROS 1, else a ROS 2 folder)")
    parser.add_argument("--format", choices=["sqlite3", "mcap", "ros1"], help="default: ros1 for .bag, else mcap")
    parser.add_argument("--compressed", choices=["jpeg", "png", "original"],
                        help="write CompressedImage instead of raw rgb8 (original: the dataset's files as-is, TUM)")
    parser.add_argument("--depth-encoding", choices=["16UC1", "32FC1"], default="16UC1", help="TUM depth topic")
    parser.add_argument("--max-frames", type=int)
    parser.add_argument("--first-frame", type=int, default=0, help="TUM: index of the first frame written")
    parser.add_argument("--frames", metavar="START:STOP[:STEP]",
                        help="kitti-odometry / 7scenes: the folder's frame numbers to write (default all)")
    parser.add_argument("--poses", choices=POSE_OUTPUTS, default="odometry",
                        help="kitti-odometry / 7scenes: ground-truth camera poses as nav_msgs/Odometry (default), "
                             "/tf, or not at all")
    args = parser.parse_args(argv)
    fmt = args.format or ("ros1" if args.out.endswith(".bag") else "mcap")
    try:
        topics = _write_bag(args, fmt)
    except EXPECTED_ERRORS as exc:
        return report_error("dataset_bags", exc)
    print(f"wrote {args.out} ({fmt}): " + ", ".join(f"{k}={v}" for k, v in topics.items()))
    return 0


def _write_bag(args, fmt: str) -> dict[str, str]:
    if args.kind == "tum":
        topics = write_tum_bag(args.source, args.out, fmt, compressed=args.compressed,
                               depth_encoding=args.depth_encoding, max_frames=args.max_frames,
                               first_frame=args.first_frame)
    elif args.kind == "kitti-lidar":
        topics = write_kitti_lidar_bag(args.source, args.out, fmt, compressed=args.compressed,
                                       max_frames=args.max_frames)
    else:
        frames = range(*(int(v) for v in args.frames.split(":"))) if args.frames else None
        if args.kind == "kitti-odometry":
            topics = write_kitti_odometry_bag(args.source, args.out, fmt, poses=args.poses, frames=frames)
        else:
            topics = write_seven_scenes_bag(args.source, args.out, fmt, poses=args.poses, frames=frames,
                                            depth_encoding=args.depth_encoding)
    return topics


if __name__ == "__main__":
    raise SystemExit(main())
