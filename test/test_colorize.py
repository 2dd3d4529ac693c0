"""colorize: turbo colour map of depth, inverse / log scaling, invalid pixels black."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from shared_data import DATA

from depth_estimation_ros.frame.colorize import colorize_depth, turbo_lut


def test_lut_is_opencv_turbo_in_rgb_order():
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    bgr = cv2.applyColorMap(ramp, cv2.COLORMAP_TURBO)
    np.testing.assert_array_equal(turbo_lut()[ramp], bgr[..., ::-1])
    assert turbo_lut()[255, 0] > turbo_lut()[255, 2]  # index 255 (near) is red
    assert turbo_lut()[0, 2] > turbo_lut()[0, 0]  # index 0 (far) is blue


def test_inverse_scaling_formula():
    depth = np.array([[0.5, 1.0, 2.0, 4.0, 10.0, 20.0]], np.float32)
    rgb = colorize_depth(depth, 1.0, 10.0, "inverse")
    clipped = np.clip(depth[0].astype(np.float64), 1.0, 10.0)
    index = np.rint(255 * (1 / clipped - 0.1) / (1.0 - 0.1)).astype(int)
    np.testing.assert_array_equal(rgb[0], turbo_lut()[index])
    assert index.tolist()[:2] == [255, 255] and index.tolist()[-2:] == [0, 0]  # clipped to the range ends


def test_log_scaling_formula():
    depth = np.array([[1.0, 2.0, 5.0, 10.0]], np.float32)
    rgb = colorize_depth(depth, 1.0, 10.0, "log")
    index = np.rint(255 * (np.log(10.0) - np.log(depth[0].astype(np.float64))) / np.log(10.0)).astype(int)
    np.testing.assert_array_equal(rgb[0], turbo_lut()[index])


def test_invalid_pixels_are_black_and_valid_are_not():
    depth = np.array([[np.nan, np.inf, -np.inf, 0.0, -2.0, 3.0]], np.float32)
    rgb = colorize_depth(depth, 0.5, 10.0)
    assert not rgb[0, :5].any()
    assert rgb[0, 5].any()
    assert not colorize_depth(np.full((3, 4), np.nan, np.float32)).any()


def test_auto_range_uses_the_frame_extremes_on_real_depth():
    raw = cv2.imread(str(DATA / "tum_fr3_cabinet_keyframes" / "depth" / "0000_depth_raw.png"), cv2.IMREAD_UNCHANGED)
    depth = raw.astype(np.float32) / 5000.0
    depth[raw == 0] = np.nan
    rgb = colorize_depth(depth)
    assert rgb.shape == (480, 640, 3) and rgb.dtype == np.uint8
    assert not rgb[raw == 0].any()
    nearest = np.unravel_index(np.nanargmin(depth), depth.shape)
    farthest = np.unravel_index(np.nanargmax(depth), depth.shape)
    np.testing.assert_array_equal(rgb[nearest], turbo_lut()[255])
    np.testing.assert_array_equal(rgb[farthest], turbo_lut()[0])
    # nearer is redder: mean red over the near half of valid depths exceeds that of the far half
    median = np.nanmedian(depth)
    assert rgb[depth < median][:, 0].mean() > rgb[depth > median][:, 0].mean()


def test_bad_arguments():
    with pytest.raises(ValueError, match="scaling 'linear' is unknown"):
        colorize_depth(np.ones((2, 2), np.float32), scaling="linear")
    with pytest.raises(ValueError, match="single-channel"):
        colorize_depth(np.ones((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="finite and positive"):
        colorize_depth(np.ones((2, 2), np.float32), 0.0, 10.0)
