"""The before/after contact sheet: one row per frame, input | each model | ground truth, tiles of one width."""

import cv2
import numpy as np
import pytest
from shared_data import DATA

from depth_estimation_ros.evaluation.comparison_sheet import comparison_row, main


def test_row_has_one_tile_per_model_and_colours_from_the_ground_truth():
    rgb = np.zeros((48, 64, 3), np.uint8)
    gt = np.full((48, 64), np.nan, np.float32)
    gt[20:, :] = np.linspace(1.0, 5.0, 64)[None]
    near, far = np.full((48, 64), 1.0, np.float32), np.full((48, 64), 5.0, np.float32)
    row = comparison_row(rgb, [("near", near), ("far", far)], gt, tile_width=64)
    assert row.shape == (48, 4 * 64, 3)
    # one colour range for the row: the near and the far prediction are coloured differently
    assert not np.array_equal(row[30:, 64:128], row[30:, 128:192])


def test_cli_writes_the_sheet_and_refuses_a_bad_model_spec(tmp_path):
    out = tmp_path / "sheet.png"
    assert main([str(DATA / "tum_fr3_cabinet_keyframes"), "--frames", "40:43", "--max-frames", "2", "--tile-width",
                 "96", "--model", "a=lacdepth_indoor", "--model", "b=lacdepth_indoor", "--out", str(out)]) == 0
    sheet = cv2.imread(str(out))
    assert sheet.shape == (2 * 72, 4 * 96, 3)
    with pytest.raises(SystemExit):
        main([str(DATA / "tum_fr3_cabinet_keyframes"), "--model", "lacdepth_indoor", "--out", str(out)])
