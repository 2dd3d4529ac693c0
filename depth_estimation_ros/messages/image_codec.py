"""sensor_msgs/Image and CompressedImage payloads <-> numpy, without ROS.

This is the package's own conversion, used where cv_bridge is not importable (plain pip environments) and by
the bag readers (rosbags messages carry the same fields). Input images of any common encoding become RGB uint8;
output images (32FC1 depth, rgb8 colour) become (encoding, step, bytes).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from depth_estimation_ros.errors import InputError


class ImageDecodeError(InputError):
    """An image message cannot be decoded; the message names the problem and the fix."""


# encoding -> (channels, numpy dtype)
_LAYOUTS = {
    "rgb8": (3, np.uint8),
    "bgr8": (3, np.uint8),
    "rgba8": (4, np.uint8),
    "bgra8": (4, np.uint8),
    "mono8": (1, np.uint8),
    "8UC1": (1, np.uint8),
    "8UC3": (3, np.uint8),
    "mono16": (1, np.uint16),
    "16UC1": (1, np.uint16),
    "32FC1": (1, np.float32),
    "yuv422": (2, np.uint8),  # UYVY
    "uyvy": (2, np.uint8),
    "yuv422_yuy2": (2, np.uint8),  # YUYV
    "yuyv": (2, np.uint8),
}
# 4:2:2 encodings: two pixels share one U and one V byte
_PAIRED_PIXEL_ENCODINGS = ("yuv422", "uyvy", "yuv422_yuy2", "yuyv")
SUPPORTED_COLOR_ENCODINGS = (
    "rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "yuv422", "yuv422_yuy2", "yuyv", "uyvy"
)


@dataclass(frozen=True)
class EncodedImage:
    """The payload fields of a sensor_msgs/Image."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: bytes


def image_array(
    encoding: str, width: int, height: int, step: int, data, is_bigendian: bool = False
) -> np.ndarray:
    """View an Image payload as an (H, W[, C]) array of the encoding's dtype (no colour conversion).

    Checks size and step against the payload and raises ImageDecodeError naming the mismatch.
    """
    if encoding not in _LAYOUTS:
        raise ImageDecodeError(
            f"image encoding '{encoding}' is not supported; publish one of {', '.join(SUPPORTED_COLOR_ENCODINGS)} "
            "(or use image/compressed with jpeg/png)"
        )
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"image is empty ({width}x{height}); check the camera driver")
    if encoding in _PAIRED_PIXEL_ENCODINGS and width % 2:
        raise ImageDecodeError(
            f"image is {width}x{height} {encoding}, but {encoding} stores two pixels per 4-byte group and needs an "
            "even width; fix the camera driver's width (or publish rgb8 / bgr8)"
        )
    channels, dtype = _LAYOUTS[encoding]
    row_bytes = width * channels * np.dtype(dtype).itemsize
    if step < row_bytes:
        raise ImageDecodeError(
            f"image step {step} is smaller than width*bytes_per_pixel = {row_bytes} for {width}x{height} "
            f"{encoding}; fix the publisher's step"
        )
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).ravel()
    needed = step * height  # sensor_msgs/Image: data is step * height bytes (cv_bridge needs all of them too)
    if buf.size < needed:
        raise ImageDecodeError(
            f"image data is truncated: {buf.size} bytes for {width}x{height} {encoding} with step {step} "
            f"(needs step*height = {needed}); the message is corrupt or the step is wrong"
        )
    rows = np.lib.stride_tricks.as_strided(buf, shape=(height, row_bytes), strides=(step, 1))
    pixels = np.ascontiguousarray(rows).view(np.dtype(dtype).newbyteorder(">" if is_bigendian else "<"))
    pixels = pixels.astype(dtype, copy=False)
    return pixels.reshape(height, width, channels) if channels > 1 else pixels.reshape(height, width)


def _to_uint8(image16: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 as cv_bridge does it (convertTo with scale 255/65535, rounded): round(v / 257)."""
    return ((image16.astype(np.uint32) * 2 + 257) // 514).astype(np.uint8)


def decode_to_rgb8(encoding: str, width: int, height: int, step: int, data, is_bigendian: bool = False) -> np.ndarray:
    """Decode any supported colour/mono Image payload to HxWx3 uint8 RGB."""
    arr = image_array(encoding, width, height, step, data, is_bigendian)
    if encoding == "rgb8" or encoding == "8UC3":
        return arr
    if encoding == "bgr8":
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    if encoding == "rgba8":
        return cv2.cvtColor(arr, cv2.COLOR_RGBA2RGB)
    if encoding == "bgra8":
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB)
    if encoding in ("mono8", "8UC1"):
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2RGB)
    if encoding in ("mono16", "16UC1"):
        return cv2.cvtColor(_to_uint8(arr), cv2.COLOR_GRAY2RGB)
    if encoding in ("yuv422", "uyvy"):
        return cv2.cvtColor(arr, cv2.COLOR_YUV2RGB_UYVY)
    if encoding in ("yuv422_yuy2", "yuyv"):
        return cv2.cvtColor(arr, cv2.COLOR_YUV2RGB_YUYV)
    raise ImageDecodeError(f"image encoding '{encoding}' is not a colour or mono camera encoding")


# default pixel limit of a compressed image: an 8K UHD frame (7680 x 4320 = 33.2 MP) fits
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); C4, C8 and CC are other segments
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def compressed_image_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """(width, height) a PNG or JPEG payload declares in its header, read without decoding; None when the
    payload has no PNG IHDR or JPEG start-of-frame header."""
    if data[:8] == _PNG_SIGNATURE:
        if len(data) < 24 or data[12:16] != b"IHDR":
            return None
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # segments without a length
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker in _JPEG_SOF:
            if pos + 9 > len(data):
                return None
            return int.from_bytes(data[pos + 7:pos + 9], "big"), int.from_bytes(data[pos + 5:pos + 7], "big")
        pos += 2 + length
    return None


def decode_compressed_to_rgb8(fmt: str, data, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
                              expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a CompressedImage payload (jpeg / png; format e.g. 'jpeg' or 'bgr8; jpeg compressed bgr8').

    The size the header declares is checked before anything is decoded, so a small payload declaring a huge
    image (a decompression bomb) is refused without the memory and time its decoding would take: it must be at
    most ``max_pixels`` (None = no limit) and, when given, equal ``expected_size`` (width, height: the CameraInfo's).
    """
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).ravel()
    if buf.size == 0:
        raise ImageDecodeError("compressed image has no data; check the image_transport publisher")
    size = compressed_image_size(memoryview(np.ascontiguousarray(buf)))
    if size is None:
        raise ImageDecodeError(
            f"compressed image (format '{fmt}', {buf.size} bytes) is not a decodable jpeg/png (no PNG or JPEG "
            "header declaring its size); use the 'compressed' image_transport with jpeg or png"
        )
    width, height = size
    if width == 0 or height == 0:
        raise ImageDecodeError(f"compressed image declares an empty {width}x{height} image; check the publisher")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageDecodeError(
            f"compressed image ({buf.size} bytes) declares {width}x{height} = {width * height} pixels, more than "
            f"the limit of {max_pixels} (max_image_pixels); refused before decoding. Raise max_image_pixels if "
            "the camera really is that large"
        )
    if expected_size is not None and (width, height) != tuple(expected_size):
        raise ImageDecodeError(
            f"compressed image declares {width}x{height} but camera_info is {expected_size[0]}x{expected_size[1]}; "
            "refused before decoding. Publish the CameraInfo of this image stream (same resolution / binning)"
        )
    image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageDecodeError(
            f"compressed image (format '{fmt}', {buf.size} bytes) is not a decodable jpeg/png; "
            "use the 'compressed' image_transport with jpeg or png"
        )
    if image.dtype == np.uint16:
        image = _to_uint8(image)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def encode_image(array: np.ndarray, encoding: str) -> EncodedImage:
    """numpy -> Image payload for 32FC1 (HxW float32), rgb8/bgr8 (HxWx3 uint8), mono8, mono16/16UC1."""
    if encoding not in _LAYOUTS:
        raise ImageDecodeError(f"cannot encode '{encoding}'")
    channels, dtype = _LAYOUTS[encoding]
    arr = np.ascontiguousarray(array, dtype=dtype)
    expected_ndim = 2 if channels == 1 else 3
    if arr.ndim != expected_ndim or (channels > 1 and arr.shape[2] != channels):
        raise ImageDecodeError(f"array of shape {array.shape} does not fit encoding '{encoding}'")
    height, width = arr.shape[:2]
    step = width * channels * arr.itemsize
    big = arr.dtype.byteorder == ">"
    return EncodedImage(height, width, encoding, int(big), step, arr.tobytes())
