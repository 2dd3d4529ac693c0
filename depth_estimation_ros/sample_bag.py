"""Build the README demo's sample bag from TUM RGB-D keyframes (CC BY 4.0).

The colour frames are stored as sensor_msgs/CompressedImage with the original JPEG bytes (no re-encoding),
with CameraInfo (TUM freiburg3 factory intrinsics) and the registered depth as 16UC1 millimetres, stamped with
the original capture times. Run once by the maintainers; the result ships in depth_estimation_ros/sample/.

    python -m depth_estimation_ros.sample_bag ../shared/data/tum_fr3_cabinet_keyframes \
        depth_estimation_ros/sample/tum_fr3_cabinet --frames 48-57
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from depth_estimation_ros.bag_writing import BagWriter
from depth_estimation_ros.datasets import TUM_DEPTH_SCALE, TumRgbdSequence, read_uint16_depth

IMAGE_TOPIC = "/camera/color/image_raw/compressed"
CAMERA_INFO_TOPIC = "/camera/color/camera_info"
DEPTH_TOPIC = "/camera/depth/image_raw"
OPTICAL_FRAME = "camera_color_optical_frame"


def build_tum_sample_bag(tum_dir: str | Path, out_path: str | Path, frames: range, bag_format: str = "mcap") -> int:
    sequence = TumRgbdSequence(tum_dir)
    written = 0
    with BagWriter(out_path, bag_format) as bag:
        compressed_type = bag.typestore.types["sensor_msgs/msg/CompressedImage"]
        for index, (stamp, _name, rgb_path, depth_path) in enumerate(sequence.pairs):
            if index not in frames:
                continue
            jpeg = np.frombuffer(Path(rgb_path).read_bytes(), dtype=np.uint8)
            message = compressed_type(header=bag.header(IMAGE_TOPIC, stamp, OPTICAL_FRAME),
                                      format="rgb8; jpeg compressed bgr8", data=jpeg)
            bag.write_message(IMAGE_TOPIC, message, stamp)
            bag.write_camera_info(CAMERA_INFO_TOPIC, stamp, OPTICAL_FRAME, sequence.camera)
            bag.write_depth(DEPTH_TOPIC, stamp, OPTICAL_FRAME, read_uint16_depth(depth_path, TUM_DEPTH_SCALE),
                            encoding="16UC1")
            written += 1
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tum_dir")
    parser.add_argument("output")
    parser.add_argument("--frames", default="48-57", help="inclusive keyframe index range, e.g. 48-57")
    parser.add_argument("--format", default="mcap", choices=("mcap", "sqlite3"))
    args = parser.parse_args(argv)
    first, last = (int(x) for x in args.frames.split("-"))
    count = build_tum_sample_bag(args.tum_dir, args.output, range(first, last + 1), args.format)
    print(f"wrote {count} frames to {args.output}")


if __name__ == "__main__":
    main()
