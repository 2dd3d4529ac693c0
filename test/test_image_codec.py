"""image_codec against an independent decoder (rosbags-image) on a real TUM RGB-D frame, every encoding."""

from __future__ import annotations

import time
import zlib

import cv2
import numpy as np
import pytest
from rosbags.image import message_to_cvimage
from rosbags.typesys import Stores, get_typestore
from shared_data import DATA

from depth_estimation_ros.messages import image_codec
from depth_estimation_ros.messages.image_codec import ImageDecodeError

TUM = DATA / "tum_fr3_cabinet_keyframes"
TYPES = get_typestore(Stores.LATEST).types


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    """A 60x80 RGB crop of a real camera frame (even width for the 4:2:2 encodings)."""
    bgr = cv2.imread(str(TUM / "rgb" / "0000_rgb_raw.jpg"), cv2.IMREAD_COLOR)
    assert bgr is not None, f"missing test data {TUM}"
    return np.ascontiguousarray(bgr[200:260, 300:380, ::-1])


def _pack_422(rgb: np.ndarray, order: str) -> np.ndarray:
    """HxWx2 4:2:2 payload, BT.601 studio range (Y 16..235, what camera drivers send and OpenCV's UYVY/YUYV
    decoders expect), chroma of each horizontal pixel pair averaged; order 'uyvy' or 'yuyv'."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = np.rint(16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255)
    cb = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    cr = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    u = np.rint((cb[:, 0::2] + cb[:, 1::2]) / 2)
    v = np.rint((cr[:, 0::2] + cr[:, 1::2]) / 2)
    out = np.empty((rgb.shape[0], rgb.shape[1] // 2, 4), np.uint8)
    parts = {"y0": y[:, 0::2], "y1": y[:, 1::2], "u": u, "v": v}
    names = ("u", "y0", "v", "y1") if order == "uyvy" else ("y0", "u", "y1", "v")
    for i, name in enumerate(names):
        out[..., i] = parts[name]
    return out.reshape(rgb.shape[0], rgb.shape[1], 2)


def payload(rgb: np.ndarray, encoding: str) -> tuple[np.ndarray, bool]:
    """(pixel array in the encoding's layout, is_bigendian) built from an RGB image."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    alpha = np.full(rgb.shape[:2] + (1,), 200, np.uint8)
    if encoding == "rgb8":
        return rgb, False
    if encoding == "bgr8":
        return np.ascontiguousarray(rgb[..., ::-1]), False
    if encoding == "rgba8":
        return np.concatenate([rgb, alpha], axis=2), False
    if encoding == "bgra8":
        return np.concatenate([rgb[..., ::-1], alpha], axis=2), False
    if encoding == "mono8":
        return gray, False
    if encoding in ("mono16", "mono16_be"):
        value = gray.astype(np.uint16) * 257 + np.arange(gray.size, dtype=np.uint16).reshape(gray.shape) % 200
        if encoding == "mono16_be":
            return value.astype(">u2"), True
        return value.astype("<u2"), False
    if encoding in ("yuv422", "uyvy"):
        return _pack_422(rgb, "uyvy"), False
    if encoding in ("yuv422_yuy2", "yuyv"):
        return _pack_422(rgb, "yuyv"), False
    raise AssertionError(encoding)


def rosbags_image(pixels: np.ndarray, encoding: str, big_endian: bool):
    """The same payload as a rosbags-typestore sensor_msgs/Image (independent of the package)."""
    header = TYPES["std_msgs/msg/Header"](stamp=TYPES["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id="cam")
    height, width = pixels.shape[:2]
    data = np.frombuffer(np.ascontiguousarray(pixels).tobytes(), np.uint8)
    return TYPES["sensor_msgs/msg/Image"](header=header, height=height, width=width, encoding=encoding,
                                          is_bigendian=int(big_endian), step=data.size // height, data=data)


ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "mono16_be", "yuv422", "uyvy", "yuv422_yuy2",
             "yuyv"]


@pytest.mark.parametrize("name", ENCODINGS)
def test_decode_matches_rosbags_image(rgb, name):
    encoding = name.removesuffix("_be")
    pixels, big = payload(rgb, name)
    msg = rosbags_image(pixels, encoding, big)
    ours = image_codec.decode_to_rgb8(encoding, msg.width, msg.height, msg.step, msg.data, big)
    theirs = message_to_cvimage(msg, "rgb8")
    assert ours.shape == (rgb.shape[0], rgb.shape[1], 3) and ours.dtype == np.uint8
    if encoding == "mono16":
        # rosbags truncates v*255/65535; cv_bridge (and we) round it: round(v / 257)
        native = pixels.astype(np.uint16)
        expected = np.rint(native.astype(np.float64) * 255.0 / 65535.0).astype(np.uint8)
        np.testing.assert_array_equal(ours, np.repeat(expected[..., None], 3, axis=2))
        assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1
    else:
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("name", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_colour_encodings_recover_the_pixels(rgb, name):
    pixels, big = payload(rgb, name)
    decoded = image_codec.decode_to_rgb8(name, rgb.shape[1], rgb.shape[0], pixels.strides[0], pixels.tobytes())
    np.testing.assert_array_equal(decoded, rgb)


@pytest.mark.parametrize("name", ["yuv422", "yuv422_yuy2"])
def test_422_is_close_to_the_source(rgb, name):
    pixels, _ = payload(rgb, name)
    decoded = image_codec.decode_to_rgb8(name, rgb.shape[1], rgb.shape[0], rgb.shape[1] * 2, pixels.tobytes())
    # chroma subsampling loses detail, but a swapped byte order would be far off
    assert np.abs(decoded.astype(int) - rgb.astype(int)).mean() < 2  # 0.34 measured; swapped order: 77


@pytest.mark.parametrize("name", ENCODINGS)
def test_padded_step_decodes_like_the_unpadded_image(rgb, name):
    encoding = name.removesuffix("_be")
    pixels, big = payload(rgb, name)
    height = pixels.shape[0]
    rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(height, -1)
    padded = np.concatenate([rows, np.full((height, 13), 0xAB, np.uint8)], axis=1)
    step = padded.shape[1]
    ours = image_codec.decode_to_rgb8(encoding, rgb.shape[1], height, step, padded.tobytes(), big)
    reference = message_to_cvimage(rosbags_image(pixels, encoding, big), "rgb8")
    if encoding == "mono16":
        reference = image_codec.decode_to_rgb8(encoding, rgb.shape[1], height, rows.shape[1], rows.tobytes(), big)
    np.testing.assert_array_equal(ours, reference)


def test_big_endian_mono16_values(rgb):
    pixels, _ = payload(rgb, "mono16_be")
    raw = image_codec.image_array("mono16", rgb.shape[1], rgb.shape[0], rgb.shape[1] * 2, pixels.tobytes(), True)
    np.testing.assert_array_equal(raw, pixels.astype(np.uint16))
    assert raw.dtype == np.dtype(np.uint16)


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_compressed_matches_rosbags_image(rgb, ext):
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(rgb[..., ::-1]))
    assert ok
    fmt = "rgb8; jpeg compressed bgr8" if ext == ".jpg" else "rgb8; png compressed bgr8"
    msg = TYPES["sensor_msgs/msg/CompressedImage"](
        header=TYPES["std_msgs/msg/Header"](stamp=TYPES["builtin_interfaces/msg/Time"](sec=0, nanosec=0),
                                            frame_id="cam"),
        format=fmt, data=buf.reshape(-1))
    ours = image_codec.decode_compressed_to_rgb8(msg.format, msg.data)
    np.testing.assert_array_equal(ours, message_to_cvimage(msg, "rgb8"))
    if ext == ".png":
        np.testing.assert_array_equal(ours, rgb)  # lossless


def test_real_jpeg_file_decodes_like_rosbags():
    data = np.fromfile(TUM / "rgb" / "0003_rgb_raw.jpg", dtype=np.uint8)
    msg = TYPES["sensor_msgs/msg/CompressedImage"](
        header=TYPES["std_msgs/msg/Header"](stamp=TYPES["builtin_interfaces/msg/Time"](sec=0, nanosec=0),
                                            frame_id="cam"),
        format="jpeg", data=data)
    ours = image_codec.decode_compressed_to_rgb8("jpeg", data.tobytes())
    assert ours.shape == (480, 640, 3)
    np.testing.assert_array_equal(ours, message_to_cvimage(msg, "rgb8"))


def test_compressed_mono16_and_alpha_png(rgb):
    value16 = payload(rgb, "mono16")[0].astype(np.uint16)
    ok, buf = cv2.imencode(".png", value16)
    assert ok
    decoded = image_codec.decode_compressed_to_rgb8("png", buf.tobytes())
    expected = np.rint(value16 / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(decoded, np.repeat(expected[..., None], 3, axis=2))
    bgra = np.concatenate([rgb[..., ::-1], np.full(rgb.shape[:2] + (1,), 7, np.uint8)], axis=2)
    ok, buf = cv2.imencode(".png", bgra)
    assert ok
    np.testing.assert_array_equal(image_codec.decode_compressed_to_rgb8("png", buf.tobytes()), rgb)


def test_encode_32fc1_keeps_nan_and_inf_bits():
    depth = np.array([[1.5, np.nan, np.inf], [-np.inf, 0.25, 80.0]], np.float32)
    encoded = image_codec.encode_image(depth, "32FC1")
    assert (encoded.height, encoded.width, encoded.step, encoded.is_bigendian) == (2, 3, 12, 0)
    back = image_codec.image_array("32FC1", 3, 2, encoded.step, encoded.data)
    assert back.tobytes() == depth.tobytes()
    theirs = message_to_cvimage(rosbags_image(depth, "32FC1", False))
    assert theirs.tobytes() == depth.tobytes()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(encoding="bayer_rggb8", width=4, height=2, step=4, data=bytes(8)), "'bayer_rggb8' is not supported"),
        (dict(encoding="rgb8", width=4, height=2, step=11, data=bytes(24)), "step 11 is smaller than"),
        (dict(encoding="rgb8", width=4, height=2, step=12, data=bytes(23)), "truncated: 23 bytes"),
        (dict(encoding="rgb8", width=4, height=2, step=16, data=bytes(28)), "truncated: 28 bytes"),
        (dict(encoding="mono16", width=4, height=2, step=8, data=bytes(15)), "truncated"),
        (dict(encoding="rgb8", width=0, height=0, step=0, data=b""), "image is empty"),
        (dict(encoding="mono8", width=4, height=0, step=4, data=b""), "image is empty"),
    ],
)
def test_bad_images_raise_a_named_error(kwargs, match):
    with pytest.raises(ImageDecodeError, match=match):
        image_codec.decode_to_rgb8(**kwargs)


def test_undecodable_compressed_raises():
    with pytest.raises(ImageDecodeError, match="not a decodable jpeg/png"):
        image_codec.decode_compressed_to_rgb8("jpeg", b"\xff\xd8 this is not a jpeg")
    with pytest.raises(ImageDecodeError, match="no data"):
        image_codec.decode_compressed_to_rgb8("jpeg", b"")


def test_encode_rejects_wrong_shape():
    with pytest.raises(ImageDecodeError, match="does not fit encoding 'rgb8'"):
        image_codec.encode_image(np.zeros((2, 3), np.uint8), "rgb8")


def png_bomb(width: int, height: int) -> bytes:
    """A valid grey PNG of width x height zeros: a few hundred kB that decode to width * height bytes."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    packer = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte + pixels
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("flags", [[], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]])
def test_compressed_image_size_is_read_from_the_header(flags):
    image = np.random.default_rng(0).integers(0, 255, (37, 53, 3), np.uint8)
    ok, jpeg = cv2.imencode(".jpg", image, flags)
    assert ok and image_codec.compressed_image_size(jpeg.tobytes()) == (53, 37)
    ok, png = cv2.imencode(".png", image)
    assert ok and image_codec.compressed_image_size(png.tobytes()) == (53, 37)
    assert image_codec.compressed_image_size(b"GIF89a....") is None


def test_decompression_bomb_is_refused_before_decoding():
    bomb = png_bomb(6000, 6000)  # 36 MP declared in ~35 kB
    assert len(bomb) < 100_000 and image_codec.compressed_image_size(bomb) == (6000, 6000)
    started = time.perf_counter()
    with pytest.raises(ImageDecodeError, match=r"declares 6000x6000 = 36000000 pixels, more than the limit of "
                                               r"1000000 \(max_image_pixels\); refused before decoding"):
        image_codec.decode_compressed_to_rgb8("png", bomb, max_pixels=1_000_000)
    # against the CameraInfo size, whatever the pixel limit
    with pytest.raises(ImageDecodeError, match="declares 6000x6000 but camera_info is 640x480"):
        image_codec.decode_compressed_to_rgb8("png", bomb, max_pixels=None, expected_size=(640, 480))
    assert time.perf_counter() - started < 0.5  # decoding would take seconds and 36 MB (108 MB as RGB)


def test_jpeg_declaring_a_huge_size_is_refused():
    ok, jpeg = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    data = bytearray(jpeg.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = (60000).to_bytes(2, "big") + (60000).to_bytes(2, "big")
    with pytest.raises(ImageDecodeError, match="declares 60000x60000"):
        image_codec.decode_compressed_to_rgb8("jpeg", bytes(data))
