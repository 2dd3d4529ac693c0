"""ROS message objects -> numpy and package types, for rclpy messages and rosbags' deserialised ones alike
(the fields are read by name; ROS 1 upper-case field names are accepted where they differ).

The one decoder of images, depth images, point clouds, transforms and header stamps for every reader of messages:
bag reading, evaluation, extraction, INT8 calibration, the demo and the bag player. Pixel payloads go through
image_codec.
"""

from __future__ import annotations

import numpy as np

from depth_estimation_ros.errors import InputError
from depth_estimation_ros.frame.point_cloud import FieldSpec, points_dtype
from depth_estimation_ros.frame.projection import quaternion_to_matrix
from depth_estimation_ros.messages.image_codec import (
    ImageDecodeError,
    decode_compressed_to_rgb8,
    decode_to_rgb8,
    image_array,
)


class PointCloudDecodeError(InputError):
    """A PointCloud2 cannot be read as x, y, z points; the message names the field or size at fault."""


def stamp_to_ns(stamp) -> int:
    """builtin_interfaces/Time (sec, nanosec) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def header_stamp_ns(message) -> int:
    return stamp_to_ns(message.header.stamp)


def rgb_from_image_message(message) -> np.ndarray:
    """sensor_msgs/Image (any colour/mono encoding) or CompressedImage (jpeg/png) -> HxWx3 uint8 RGB."""
    if hasattr(message, "format") and not hasattr(message, "encoding"):
        return decode_compressed_to_rgb8(message.format, message.data)
    return decode_to_rgb8(
        message.encoding, int(message.width), int(message.height), int(message.step), message.data,
        bool(message.is_bigendian),
    )


def depth_from_image_message(message) -> np.ndarray:
    """Depth Image -> HxW float32 metres, NaN where there is no valid measurement.

    16UC1 / mono16: millimetres, 0 = no return. 32FC1: metres (REP 118); NaN, +-Inf and values <= 0 carry no
    metric measurement and become NaN.
    """
    encoding = message.encoding
    if hasattr(message, "format") and not hasattr(message, "encoding"):
        raise ImageDecodeError(
            f"depth topic carries CompressedImage (format '{message.format}'); record the raw depth Image "
            "(16UC1 millimetres or 32FC1 metres)"
        )
    if encoding not in ("16UC1", "mono16", "32FC1"):
        raise ImageDecodeError(
            f"depth image encoding '{encoding}' is not a depth encoding; expected 16UC1 (millimetres) or "
            "32FC1 (metres). Is --depth-topic pointing at a colour image?"
        )
    arr = image_array(
        encoding, int(message.width), int(message.height), int(message.step), message.data, bool(message.is_bigendian)
    )
    if encoding == "32FC1":
        depth = arr.astype(np.float32, copy=True)
    else:
        depth = arr.astype(np.float32) * np.float32(1e-3)
    depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    return depth


# PointField datatype -> numpy dtype (sensor_msgs/PointField constants)
_POINT_FIELD_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}


def xyz_from_point_cloud_message(message) -> np.ndarray:
    """sensor_msgs/PointCloud2 -> Nx3 float32 of its x, y, z fields; points with a non-finite coordinate dropped.

    Reads the fields' offsets and datatypes, any point_step and row_step padding, either byte order.
    """
    fields = {f.name: f for f in message.fields}
    missing = [n for n in ("x", "y", "z") if n not in fields]
    if missing:
        raise PointCloudDecodeError(
            f"PointCloud2 has fields {sorted(fields)} but no {', '.join(missing)}; a lidar cloud needs x, y, z"
        )
    order = ">" if message.is_bigendian else "<"
    names, formats, offsets = [], [], []
    for n in ("x", "y", "z"):
        f = fields[n]
        if f.datatype not in _POINT_FIELD_DTYPES:
            raise PointCloudDecodeError(f"PointCloud2 field '{n}' has unknown datatype {f.datatype}")
        names.append(n)
        formats.append(order + _POINT_FIELD_DTYPES[f.datatype])
        offsets.append(int(f.offset))
    point_step = int(message.point_step)
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step})
    height, width = int(message.height), int(message.width)
    count = height * width
    if count == 0:
        return np.zeros((0, 3), np.float32)
    data = np.frombuffer(bytes(message.data) if not isinstance(message.data, np.ndarray) else message.data,
                         dtype=np.uint8)
    row_step = int(message.row_step) or width * point_step
    if data.size < row_step * (height - 1) + width * point_step:
        raise PointCloudDecodeError(
            f"PointCloud2 data is truncated: {data.size} bytes for {height}x{width} points with point_step "
            f"{point_step} and row_step {row_step}"
        )
    rows = [data[r * row_step: r * row_step + width * point_step] for r in range(height)]
    packed = np.concatenate(rows) if height > 1 else rows[0]
    points = np.frombuffer(packed.tobytes(), dtype=dtype, count=count)
    xyz = np.stack([points["x"], points["y"], points["z"]], axis=1).astype(np.float32)
    return xyz[np.all(np.isfinite(xyz), axis=1)]


def organised_points_from_point_cloud_message(message) -> tuple[np.ndarray, np.ndarray | None]:
    """An organised PointCloud2 as the node packs it (frame/point_cloud.py) -> (H, W, 3) float32 xyz with NaN
    kept, and (H, W, 3) uint8 rgb or None (the layout's own fields and offsets, not a generic reader)."""
    fields = tuple(FieldSpec(f.name, f.offset, f.datatype, f.count) for f in message.fields)
    points = np.frombuffer(bytes(message.data), dtype=points_dtype(fields, message.point_step))
    points = points.reshape(message.height, message.width)
    xyz = np.stack([points["x"], points["y"], points["z"]], axis=-1)
    if "rgb" not in points.dtype.names:
        return xyz, None
    packed = points["rgb"].view("<u4")
    rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=-1).astype(np.uint8)
    return xyz, rgb


def transform_message_to_matrix(transform) -> np.ndarray:
    """geometry_msgs/Transform -> 4x4 homogeneous matrix."""
    t, q = transform.translation, transform.rotation
    out = np.eye(4)
    out[:3, :3] = quaternion_to_matrix(q.x, q.y, q.z, q.w)
    out[:3, 3] = (t.x, t.y, t.z)
    return out
