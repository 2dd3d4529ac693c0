"""sensor_msgs messages <-> numpy for the node.

On a ROS install cv_bridge (Image) and sensor_msgs_py (PointCloud2) do the work; in a plain pip environment,
where neither is installable, the package's own image_codec / point_cloud packing take over. Both paths build
byte-identical messages (test/test_message_conversion.py checks it wherever cv_bridge / sensor_msgs_py import).

CompressedImage is always decoded by image_codec: cv_bridge's Python compressed_imgmsg_to_cv2 assumes a 3-channel
bgr8 payload and fails on mono, 16-bit and alpha PNGs.
"""

from __future__ import annotations

import array
import inspect
import sys

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField, RegionOfInterest

from depth_estimation_ros.frame.camera_model import camera_from_camera_info
from depth_estimation_ros.frame.point_cloud import pack_points, points_dtype
from depth_estimation_ros.messages import image_codec

try:
    from cv_bridge import CvBridge, CvBridgeError
except ImportError:  # plain pip environment: cv_bridge is not on the package index
    CvBridge = None
    CvBridgeError = None

try:
    from sensor_msgs_py.point_cloud2 import create_cloud
except ImportError:  # plain pip environment: sensor_msgs_py is not on the package index
    create_cloud = None

HAVE_CV_BRIDGE = CvBridge is not None
_bridge = CvBridge() if HAVE_CV_BRIDGE else None
# create_cloud gained `point_step` in ros2/common_interfaces#223; in older versions a structured array must have
# itemsize == last field end (12 / 20 bytes), which is not the padded 16 / 32-byte PCL layout we publish.
# Its bytes are the host's native order (it sets is_bigendian = host is big-endian); our layout is little-endian.
HAVE_SENSOR_MSGS_PY = (
    create_cloud is not None
    and "point_step" in inspect.signature(create_cloud).parameters
    and sys.byteorder == "little"
)

_ENCODING_DTYPES = {"32FC1": np.float32, "rgb8": np.uint8, "bgr8": np.uint8, "mono8": np.uint8,
                    "mono16": np.uint16, "16UC1": np.uint16, "rgba8": np.uint8, "bgra8": np.uint8}


def _byte_array(buffer) -> array.array:
    """array.array('B') (what rclpy keeps for uint8[] fields) from any C-contiguous buffer, one copy."""
    out = array.array("B")
    out.frombytes(memoryview(np.ascontiguousarray(buffer)).cast("B"))
    return out


def _native_array(array_: np.ndarray, encoding: str) -> np.ndarray:
    expected = _ENCODING_DTYPES.get(encoding)
    if expected is None:
        raise ValueError(f"cannot publish encoding '{encoding}'; use one of {', '.join(_ENCODING_DTYPES)}")
    arr = np.asarray(array_)
    if arr.dtype.newbyteorder("=") != np.dtype(expected):
        raise ValueError(
            f"array of dtype {arr.dtype} does not fit encoding '{encoding}' ({np.dtype(expected)}); convert it first"
        )
    return arr.astype(np.dtype(expected), copy=False)  # native byte order


def image_msg_with_codec(array_: np.ndarray, encoding: str, header) -> Image:
    """Image built by the package's own encoder (the fallback path of to_image_msg)."""
    encoded = image_codec.encode_image(_native_array(array_, encoding), encoding)
    msg = Image(header=header, height=encoded.height, width=encoded.width, encoding=encoded.encoding,
                is_bigendian=encoded.is_bigendian, step=encoded.step)
    msg.data = _byte_array(np.frombuffer(encoded.data, dtype=np.uint8))
    return msg


def image_msg_with_cv_bridge(array_: np.ndarray, encoding: str, header) -> Image:
    """Image built by cv_bridge (ROS installs only)."""
    if not HAVE_CV_BRIDGE:
        raise RuntimeError("cv_bridge is not importable here")
    return _bridge.cv2_to_imgmsg(np.ascontiguousarray(_native_array(array_, encoding)), encoding=encoding,
                                 header=header)


def to_image_msg(array_: np.ndarray, encoding: str, header) -> Image:
    """HxW / HxWxC numpy array -> sensor_msgs/Image with ``header`` (32FC1 depth, rgb8 colour, mono...)."""
    if HAVE_CV_BRIDGE:
        return image_msg_with_cv_bridge(array_, encoding, header)
    return image_msg_with_codec(array_, encoding, header)


def rgb_with_codec(msg: Image) -> np.ndarray:
    """HxWx3 uint8 RGB decoded by image_codec (the fallback path of rgb_from_image_msg)."""
    return image_codec.decode_to_rgb8(msg.encoding, msg.width, msg.height, msg.step, msg.data, bool(msg.is_bigendian))


def rgb_with_cv_bridge(msg: Image) -> np.ndarray:
    """HxWx3 uint8 RGB decoded by cv_bridge, after image_codec's checks of size, step and encoding.

    image_codec decodes the cases cv_bridge's Python layer gets wrong or lacks: a step that is not
    width * bytes_per_pixel (it reshapes rows by step // pixel size, misaligning e.g. 4-byte-aligned rgb8 rows),
    byte order other than the host's (it calls ndarray.newbyteorder, gone in numpy 2), and encodings its distro
    does not know (CvBridgeError, e.g. 'yuyv' on older distros).
    """
    if not HAVE_CV_BRIDGE:
        raise RuntimeError("cv_bridge is not importable here")
    pixels = image_codec.image_array(msg.encoding, msg.width, msg.height, msg.step, msg.data, bool(msg.is_bigendian))
    tight = msg.step == pixels.nbytes // msg.height
    native = bool(msg.is_bigendian) == (sys.byteorder == "big") or pixels.itemsize == 1
    if msg.encoding not in image_codec.SUPPORTED_COLOR_ENCODINGS or not tight or not native:
        return rgb_with_codec(msg)
    try:
        return np.ascontiguousarray(_bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8"))
    except CvBridgeError:
        return rgb_with_codec(msg)


def rgb_from_image_msg(msg: Image) -> np.ndarray:
    """sensor_msgs/Image of any supported camera encoding -> HxWx3 uint8 RGB; ImageDecodeError names bad input."""
    if HAVE_CV_BRIDGE:
        return rgb_with_cv_bridge(msg)
    return rgb_with_codec(msg)


def rgb_from_compressed_msg(msg, max_pixels: int | None = image_codec.DEFAULT_MAX_IMAGE_PIXELS,
                            expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg / png) -> HxWx3 uint8 RGB; the size its header declares is checked
    against ``max_pixels`` and ``expected_size`` (width, height) before decoding (image_codec)."""
    return image_codec.decode_compressed_to_rgb8(msg.format, msg.data, max_pixels, expected_size)


def camera_info_scaled(msg: CameraInfo, width: int, height: int) -> CameraInfo:
    """CameraInfo for the same camera resampled to width x height (the depth image), same header.

    K and P are scaled as image_proc's resize does (PinholeCamera.scaled: row 0 by width ratio, row 1 by height
    ratio) after binning / ROI are folded in (camera_from_camera_info); binning is 0 and the ROI is the full
    image in the output because K and P already describe the published resolution. D, R and the distortion
    model are copied.
    """
    camera = camera_from_camera_info(msg).scaled(int(width), int(height))
    return CameraInfo(
        header=msg.header,
        height=int(height),
        width=int(width),
        distortion_model=msg.distortion_model,
        d=list(msg.d),
        k=camera.k.reshape(-1),
        r=np.asarray(msg.r, dtype=np.float64).reshape(-1),
        p=camera.p.reshape(-1),
        binning_x=0,
        binning_y=0,
        roi=RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )


def _grid_shape(xyz: np.ndarray) -> tuple[int, int]:
    if xyz.ndim == 3 and xyz.shape[2] == 3:
        return int(xyz.shape[0]), int(xyz.shape[1])
    if xyz.ndim == 2 and xyz.shape[1] == 3:
        return 1, int(xyz.shape[0])
    raise ValueError(f"points must be HxWx3 (organised) or Nx3, got shape {xyz.shape}")


def cloud_msg_with_packing(header, xyz: np.ndarray, rgb: np.ndarray | None = None) -> PointCloud2:
    """PointCloud2 from the package's own packing (the fallback path of cloud_msg)."""
    height, width = _grid_shape(np.asarray(xyz))
    packed = pack_points(xyz, rgb)
    fields = [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in packed.fields]
    msg = PointCloud2(header=header, height=height, width=width, fields=fields, is_bigendian=False,
                      point_step=packed.point_step, row_step=packed.point_step * width, is_dense=False)
    msg.data = _byte_array(packed.data)
    return msg


def cloud_msg_with_sensor_msgs_py(header, xyz: np.ndarray, rgb: np.ndarray | None = None) -> PointCloud2:
    """PointCloud2 from sensor_msgs_py.create_cloud (versions with its point_step argument).

    create_cloud is given the points as a 1-D structured array (its 2-D convention takes height from shape[1]
    and width from shape[0], the transpose of an image grid), then height, width and row_step are set for the
    organised grid; the bytes are the same because the points are in row-major order either way.
    """
    if not HAVE_SENSOR_MSGS_PY:
        raise RuntimeError("sensor_msgs_py.point_cloud2.create_cloud with point_step is not importable here")
    height, width = _grid_shape(np.asarray(xyz))
    packed = pack_points(xyz, rgb)
    fields = [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in packed.fields]
    points = packed.data.view(points_dtype(packed.fields, packed.point_step))
    msg = create_cloud(header, fields, points, point_step=packed.point_step)
    msg.height = height
    msg.width = width
    msg.row_step = packed.point_step * width
    msg.is_dense = False
    return msg


def cloud_msg(header, xyz: np.ndarray, rgb: np.ndarray | None = None) -> PointCloud2:
    """Organised PointCloud2 (height H, width W for HxWx3 xyz; 1 x N for Nx3), is_dense false, little-endian,
    x/y/z float32 (point_step 16) plus packed rgb (point_step 32) when ``rgb`` (same grid, uint8) is given."""
    if HAVE_SENSOR_MSGS_PY:
        return cloud_msg_with_sensor_msgs_py(header, xyz, rgb)
    return cloud_msg_with_packing(header, xyz, rgb)
