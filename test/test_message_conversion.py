"""ros.message_conversion with real sensor_msgs messages: the fallback paths against independent decoders
(rosbags-image, a numpy PointCloud2 reader), byte-identity with cv_bridge / sensor_msgs_py where they import."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.image import message_to_cvimage
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, RegionOfInterest
from shared_data import DATA
from std_msgs.msg import Header

from depth_estimation_ros.frame.camera_model import CameraModelError, PinholeCamera, camera_from_camera_info
from depth_estimation_ros.frame.point_cloud import CloudProjector
from depth_estimation_ros.messages.image_codec import ImageDecodeError
from depth_estimation_ros.ros import message_conversion as conv

TUM = DATA / "tum_fr3_cabinet_keyframes"
K_TUM = [535.4, 0.0, 320.1, 0.0, 539.2, 247.6, 0.0, 0.0, 1.0]
TYPES = get_typestore(Stores.LATEST).types

needs_cv_bridge = pytest.mark.skipif(
    not conv.HAVE_CV_BRIDGE, reason="cv_bridge is not installed: it is not on the package index; runs on a ROS install"
)
needs_sensor_msgs_py = pytest.mark.skipif(
    not conv.HAVE_SENSOR_MSGS_PY,
    reason="sensor_msgs_py (with create_cloud point_step, ros2/common_interfaces#223) is not installed: it is not "
    "on the package index; runs on a ROS install",
)


def header() -> Header:
    h = Header(frame_id="camera_optical_frame")
    h.stamp.sec = 1341841278
    h.stamp.nanosec = 123456789
    return h


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    bgr = cv2.imread(str(TUM / "rgb" / "0005_rgb_raw.jpg"), cv2.IMREAD_COLOR)
    assert bgr is not None, f"missing test data {TUM}"
    return np.ascontiguousarray(bgr[::4, ::4, ::-1])  # 120x160


@pytest.fixture(scope="module")
def depth() -> np.ndarray:
    raw = cv2.imread(str(TUM / "depth" / "0005_depth_raw.png"), cv2.IMREAD_UNCHANGED)
    metres = raw.astype(np.float32) / 5000.0
    metres[raw == 0] = np.nan
    metres[:5, :5] = np.inf
    return metres


def as_rosbags(msg: Image):
    """The same message's fields as a rosbags-typestore Image (decoded there independently of this package)."""
    h = TYPES["std_msgs/msg/Header"](
        stamp=TYPES["builtin_interfaces/msg/Time"](sec=msg.header.stamp.sec, nanosec=msg.header.stamp.nanosec),
        frame_id=msg.header.frame_id)
    return TYPES["sensor_msgs/msg/Image"](header=h, height=msg.height, width=msg.width, encoding=msg.encoding,
                                          is_bigendian=msg.is_bigendian, step=msg.step,
                                          data=np.frombuffer(bytes(msg.data), np.uint8))


def test_depth_image_msg_fields_and_round_trip(depth):
    msg = conv.to_image_msg(depth, "32FC1", header())
    assert isinstance(msg, Image)
    assert (msg.height, msg.width, msg.encoding, msg.step, msg.is_bigendian) == (480, 640, "32FC1", 2560, 0)
    assert msg.header == header()
    again = deserialize_message(serialize_message(msg), Image)
    decoded = message_to_cvimage(as_rosbags(again))
    assert decoded.dtype == np.float32 and decoded.tobytes() == depth.tobytes()  # NaN and +Inf bits kept


def test_fallback_image_msg_decodes_with_rosbags(rgb):
    msg = conv.image_msg_with_codec(rgb, "rgb8", header())
    assert (msg.height, msg.width, msg.step) == (120, 160, 480)
    np.testing.assert_array_equal(message_to_cvimage(as_rosbags(msg), "rgb8"), rgb)
    mono16 = (np.arange(120 * 160, dtype=np.uint16) * 3).reshape(120, 160)
    msg16 = conv.image_msg_with_codec(mono16, "mono16", header())
    np.testing.assert_array_equal(message_to_cvimage(as_rosbags(msg16)), mono16)


def test_to_image_msg_rejects_a_dtype_that_does_not_fit():
    with pytest.raises(ValueError, match="does not fit encoding '32FC1'"):
        conv.to_image_msg(np.zeros((2, 2), np.float64), "32FC1", header())
    with pytest.raises(ValueError, match="cannot publish encoding 'bayer_rggb8'"):
        conv.to_image_msg(np.zeros((2, 2), np.uint8), "bayer_rggb8", header())


def test_big_endian_input_array_is_published_little_endian(depth):
    msg = conv.to_image_msg(depth.astype(">f4"), "32FC1", header())
    assert msg.is_bigendian == 0 and bytes(msg.data) == depth.tobytes()


def camera_image(rgb: np.ndarray, encoding: str) -> Image:
    """A real sensor_msgs/Image of the RGB frame in a camera encoding, built here from the definition."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    pixels = {
        "rgb8": rgb, "bgr8": rgb[..., ::-1],
        "rgba8": np.dstack([rgb, np.full(gray.shape, 9, np.uint8)]),
        "bgra8": np.dstack([rgb[..., ::-1], np.full(gray.shape, 9, np.uint8)]),
        "mono8": gray, "mono16": gray.astype(np.uint16) * 257,
        "yuv422": np.dstack([np.full(gray.shape, 128, np.uint8), gray]),  # U/V = 128: grey levels
        "yuv422_yuy2": np.dstack([gray, np.full(gray.shape, 128, np.uint8)]),
    }[encoding]
    data = np.ascontiguousarray(pixels).tobytes()
    msg = Image(header=header(), height=rgb.shape[0], width=rgb.shape[1], encoding=encoding, is_bigendian=0,
                step=len(data) // rgb.shape[0])
    msg.data = data
    return msg


ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "yuv422", "yuv422_yuy2"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_rgb_from_image_msg_matches_rosbags(rgb, encoding):
    msg = camera_image(rgb, encoding)
    ours = conv.rgb_from_image_msg(msg)
    theirs = message_to_cvimage(as_rosbags(msg), "rgb8")
    assert ours.shape == (120, 160, 3) and ours.dtype == np.uint8
    np.testing.assert_array_equal(ours, theirs)
    if encoding in ("rgb8", "bgr8", "rgba8", "bgra8"):
        np.testing.assert_array_equal(ours, rgb)


def test_rgb_from_compressed_msg_real_jpeg():
    data = (TUM / "rgb" / "0005_rgb_raw.jpg").read_bytes()
    msg = CompressedImage(header=header(), format="jpeg")
    msg.data = data
    ours = conv.rgb_from_compressed_msg(msg)
    theirs = message_to_cvimage(TYPES["sensor_msgs/msg/CompressedImage"](
        header=as_rosbags(Image(header=header())).header, format="jpeg", data=np.frombuffer(data, np.uint8)), "rgb8")
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda m: setattr(m, "encoding", "bayer_rggb8"), "not supported"),
        (lambda m: setattr(m, "step", 10), "smaller than"),
        (lambda m: setattr(m, "data", bytes(m.data)[:-7]), "truncated"),
        (lambda m: (setattr(m, "width", 0), setattr(m, "height", 0)), "empty"),
        (lambda m: (setattr(m, "encoding", "yuv422"), setattr(m, "width", 9), setattr(m, "step", 18)),
         "needs an even width"),
        (lambda m: (setattr(m, "encoding", "yuv422_yuy2"), setattr(m, "width", 9), setattr(m, "step", 18)),
         "needs an even width"),
    ],
)
def test_malformed_image_msgs_raise_image_decode_error(rgb, mutate, match):
    msg = camera_image(rgb, "rgb8")
    mutate(msg)
    with pytest.raises(ImageDecodeError, match=match):
        conv.rgb_from_image_msg(msg)


def test_undecodable_compressed_msg():
    msg = CompressedImage(header=header(), format="jpeg")
    msg.data = b"\x89PNG but not really"
    with pytest.raises(ImageDecodeError, match="not a decodable"):
        conv.rgb_from_compressed_msg(msg)


def camera_info(**overrides) -> CameraInfo:
    info = CameraInfo(header=header(), width=640, height=480, distortion_model="plumb_bob",
                      d=[0.1, -0.2, 0.001, 0.002, 0.05], k=K_TUM, r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
                      p=[535.4, 0, 320.1, -10.0, 0, 539.2, 247.6, 0, 0, 0, 1.0, 0])
    for name, value in overrides.items():
        setattr(info, name, value)
    return info


def test_camera_info_scaled_like_image_proc_resize():
    out = conv.camera_info_scaled(camera_info(), 320, 192)
    sx, sy = 320 / 640, 192 / 480
    assert (out.width, out.height) == (320, 192) and out.header == header()
    np.testing.assert_allclose(out.k, [535.4 * sx, 0, 320.1 * sx, 0, 539.2 * sy, 247.6 * sy, 0, 0, 1])
    np.testing.assert_allclose(out.p, [535.4 * sx, 0, 320.1 * sx, -10.0 * sx, 0, 539.2 * sy, 247.6 * sy, 0, 0, 0, 1, 0])
    assert list(out.d) == [0.1, -0.2, 0.001, 0.002, 0.05] and out.distortion_model == "plumb_bob"
    np.testing.assert_array_equal(out.r, np.eye(3).reshape(-1))
    assert (out.binning_x, out.binning_y, out.roi.width, out.roi.height) == (0, 0, 0, 0)
    deserialize_message(serialize_message(out), CameraInfo)


@pytest.mark.parametrize(
    "overrides",
    [dict(binning_x=2, binning_y=2),
     dict(roi=RegionOfInterest(x_offset=100, y_offset=40, width=320, height=240)),
     dict(binning_x=2, binning_y=4, roi=RegionOfInterest(x_offset=64, y_offset=32, width=512, height=384))],
)
def test_camera_info_with_binning_and_roi_projects_consistently(overrides):
    """A 3-D point projected by the full-resolution calibration, mapped into the published (ROI, binned) image and
    then resized, lands where the scaled CameraInfo projects it."""
    info = camera_info(**overrides)
    bx, by = max(info.binning_x, 1), max(info.binning_y, 1)
    roi = info.roi
    ox, oy = (roi.x_offset, roi.y_offset) if roi.width else (0, 0)
    image_w = (roi.width or 640) // bx
    image_h = (roi.height or 480) // by
    out = conv.camera_info_scaled(info, 100, 80)
    point = np.array([0.3, -0.2, 2.5])
    k_full = np.array(K_TUM).reshape(3, 3)
    u, v, w = k_full @ point
    expected = [((u / w) - ox) / bx * 100 / image_w, ((v / w) - oy) / by * 80 / image_h]
    u2, v2, w2 = np.array(out.k).reshape(3, 3) @ point
    np.testing.assert_allclose([u2 / w2, v2 / w2], expected, rtol=1e-9)
    assert (out.binning_x, out.binning_y, out.roi.x_offset, out.roi.width) == (0, 0, 0, 0)


def test_camera_info_with_zero_k_is_rejected():
    with pytest.raises(CameraModelError, match="K is zero"):
        conv.camera_info_scaled(camera_info(k=[0.0] * 9), 320, 240)


P_TUM = [535.4, 0, 320.1, 0, 0, 539.2, 247.6, 0, 0, 0, 1.0, 0]


def _p_with(index: int, value: float) -> list[float]:
    p = list(P_TUM)
    p[index] = value
    return p


@pytest.mark.parametrize(
    ("overrides", "match"),
    [(dict(p=_p_with(0, float("nan"))), "P holds NaN or Inf"),
     (dict(p=_p_with(2, float("inf"))), "P holds NaN or Inf"),
     (dict(p=_p_with(5, 1e-300)), "P has fx=535.4 fy=1e-300, not plausible"),
     (dict(p=_p_with(0, 1e300), k=K_TUM), "not plausible"),
     (dict(p=_p_with(10, 0.0)), "bottom row"),
     (dict(p=_p_with(2, 1e300)), "cx=1e\\+300 cy=247.6 skew=0, not plausible"),
     (dict(k=[535.4, 0, 320.1, 0, float("nan"), 247.6, 0, 0, 1]), "K holds NaN or Inf"),
     (dict(k=[1e-300, 0, 320.1, 0, 539.2, 247.6, 0, 0, 1]), "K has fx=1e-300"),
     (dict(roi=RegionOfInterest(x_offset=10000, y_offset=10000, width=100, height=100)), "ROI 100x100 at"),
     (dict(roi=RegionOfInterest(x_offset=600, y_offset=0, width=100, height=100)), "outside the 640x480"),
     (dict(binning_x=1000), "binning 1000x1 leaves no pixel")],
)
def test_camera_info_with_absurd_intrinsics_or_roi_is_rejected(overrides, match):
    """Non-finite or implausible K / P, and an ROI outside the image, are named; nothing is published from them.
    The bag readers take the same path (camera_from_camera_info) and reject the same fields."""
    from depth_estimation_ros.frame.camera_model import camera_from_camera_info

    info = camera_info(**overrides)
    with pytest.raises(CameraModelError, match=match):
        conv.camera_info_scaled(info, 320, 240)
    with pytest.raises(CameraModelError, match=match):
        camera_from_camera_info(info)


def test_roi_and_binning_are_folded_in_once_for_the_node_and_the_bags():
    from depth_estimation_ros.frame.camera_model import camera_from_camera_info

    info = camera_info(binning_x=2, binning_y=2, roi=RegionOfInterest(x_offset=64, y_offset=32, width=512, height=384))
    camera = camera_from_camera_info(info)  # the one conversion: the node, depth-eval and extraction all call it
    assert (camera.width, camera.height) == (256, 192)
    published = conv.camera_info_scaled(info, 256, 192)  # the node's depth/camera_info at that size
    np.testing.assert_allclose(np.asarray(published.p).reshape(3, 4), camera.p)


def test_unset_p_falls_back_to_k():
    camera = camera_from_camera_info(camera_info(p=[0.0] * 12))
    np.testing.assert_allclose(camera.intrinsics, np.array(K_TUM).reshape(3, 3))


def read_cloud(msg: PointCloud2) -> dict[str, np.ndarray]:
    """Numpy reader from the PointCloud2 definition: field offsets within point_step, rows row_step apart."""
    assert not msg.is_bigendian
    buf = np.frombuffer(bytes(msg.data), np.uint8)
    assert buf.size == msg.row_step * msg.height
    grid = buf.reshape(msg.height, msg.row_step)[:, : msg.width * msg.point_step]
    grid = grid.reshape(msg.height, msg.width, msg.point_step)
    assert all(f.datatype == 7 and f.count == 1 for f in msg.fields)
    return {f.name: grid[..., f.offset:f.offset + 4].copy().view("<f4")[..., 0] for f in msg.fields}


@pytest.mark.parametrize("with_colour", [False, True])
def test_fallback_cloud_msg_reads_back(depth, rgb, with_colour):
    camera = PinholeCamera(640, 480, K_TUM)
    xyz = CloudProjector(camera, 4).points(depth)
    colours = rgb if with_colour else None
    msg = conv.cloud_msg_with_packing(header(), xyz, colours)
    msg = deserialize_message(serialize_message(msg), PointCloud2)
    assert (msg.height, msg.width, msg.is_dense, msg.is_bigendian) == (120, 160, False, False)
    assert msg.point_step == (32 if with_colour else 16) and msg.row_step == msg.point_step * 160
    assert [(f.name, f.offset) for f in msg.fields] == [("x", 0), ("y", 4), ("z", 8)] + (
        [("rgb", 16)] if with_colour else [])
    assert msg.header == header()
    values = read_cloud(msg)
    for i, name in enumerate("xyz"):
        assert values[name].tobytes() == xyz[..., i].tobytes()
    assert np.isnan(values["z"][:2, :2]).all()  # the +Inf corner is a NaN point
    if with_colour:
        bits = values["rgb"].view("<u4")
        assert np.array_equal(bits >> 16, rgb[..., 0]) and np.array_equal((bits >> 8) & 255, rgb[..., 1])
        assert np.array_equal(bits & 255, rgb[..., 2]) and not (bits >> 24).any()


def test_unorganised_cloud_msg():
    msg = conv.cloud_msg(header(), np.array([[1, 2, 3], [4, 5, 6]], np.float32))
    assert (msg.height, msg.width, msg.row_step) == (1, 2, 32)
    with pytest.raises(ValueError, match="HxWx3"):
        conv.cloud_msg(header(), np.zeros((2, 4), np.float32))


@needs_cv_bridge
@pytest.mark.parametrize(("encoding", "dtype"), [("32FC1", np.float32), ("rgb8", np.uint8), ("mono16", np.uint16)])
def test_cv_bridge_and_codec_images_are_byte_identical(depth, rgb, encoding, dtype):
    mono16 = (np.arange(120 * 160, dtype=np.uint16) * 3).reshape(120, 160)
    array_ = {"32FC1": depth, "rgb8": rgb, "mono16": mono16}[encoding]
    a = conv.image_msg_with_cv_bridge(array_, encoding, header())
    b = conv.image_msg_with_codec(array_, encoding, header())
    assert a == b and serialize_message(a) == serialize_message(b)


@needs_cv_bridge
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_cv_bridge_and_codec_decode_identically(rgb, encoding):
    msg = camera_image(rgb, encoding)
    np.testing.assert_array_equal(conv.rgb_with_cv_bridge(msg), conv.rgb_with_codec(msg))


@needs_sensor_msgs_py
@pytest.mark.parametrize("with_colour", [False, True])
def test_sensor_msgs_py_and_packing_clouds_are_byte_identical(depth, rgb, with_colour):
    xyz = CloudProjector(PinholeCamera(640, 480, K_TUM), 4).points(depth)
    colours = rgb if with_colour else None
    a = conv.cloud_msg_with_sensor_msgs_py(header(), xyz, colours)
    b = conv.cloud_msg_with_packing(header(), xyz, colours)
    assert serialize_message(a) == serialize_message(b)


@pytest.mark.parametrize("with_rgb", [True, False])
def test_organised_cloud_decodes_back_to_what_the_node_packed(with_rgb):
    """The demo's reader of the node's clouds (message_decoding) inverts the node's packing, NaN points kept."""
    from depth_estimation_ros.messages.message_decoding import organised_points_from_point_cloud_message

    rng = np.random.default_rng(5)
    xyz = rng.normal(size=(4, 6, 3)).astype(np.float32)
    xyz[1, 2] = np.nan
    rgb = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8) if with_rgb else None
    msg = deserialize_message(serialize_message(conv.cloud_msg(Header(frame_id="cam"), xyz, rgb)), PointCloud2)
    got_xyz, got_rgb = organised_points_from_point_cloud_message(msg)
    np.testing.assert_array_equal(got_xyz, xyz)
    if with_rgb:
        np.testing.assert_array_equal(got_rgb, rgb)
    else:
        assert got_rgb is None
