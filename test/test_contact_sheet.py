"""The shared contact-sheet pieces (frame/contact_sheet.py) used by depth-eval's report, the comparison sheet and
the demo."""

import numpy as np

from depth_estimation_ros.frame.contact_sheet import (
    depth_colour_range,
    ground_truth_tile,
    labelled,
    stack_rows,
    valid_depths,
)


def test_colour_range_from_valid_depths_with_a_fallback():
    depth = np.array([[np.nan, 0.0, -1.0], [1.0, 2.0, np.inf]], np.float32)
    assert valid_depths(depth).tolist() == [1.0, 2.0]
    low, high = depth_colour_range(np.linspace(1.0, 11.0, 101), (10, 90), (0.1, 80.0))
    assert (low, high) == (2.0, 10.0)
    assert depth_colour_range(np.zeros(0), (2, 98), (0.1, 80.0)) == (0.1, 80.0)
    low, high = depth_colour_range(np.full(5, 3.0), (2, 98), (0.1, 80.0))
    assert low == 3.0 and high > low  # a flat image still gets a usable range


def test_sparse_ground_truth_is_thickened_and_invalid_pixels_are_black():
    dense = np.full((20, 20), 5.0, np.float32)
    dense[0, 0] = 0.0
    tile = ground_truth_tile(dense, 1.0, 10.0)
    assert tile.shape == (20, 20, 3) and tile.dtype == np.uint8
    assert not tile[0, 0].any() and tile[10, 10].any()
    sparse = np.full((20, 20), np.nan, np.float32)
    sparse[10, 10] = 5.0
    assert (ground_truth_tile(sparse, 1.0, 10.0, dilate=3).any(axis=2)).sum() == 9


def test_labels_do_not_touch_the_input_and_rows_are_padded_to_the_widest():
    tile = np.zeros((30, 80, 3), np.uint8)
    out = labelled(tile, "input")
    assert out.any() and not tile.any()
    sheet = stack_rows([np.ones((10, 40, 3), np.uint8), np.ones((12, 60, 3), np.uint8)])
    assert sheet.shape == (22, 60, 3) and not sheet[:10, 40:].any() and sheet[10:, 40:].all()
