"""Depth metrics against hand-computed values; median scaling, caps, crops; lidar projection geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depth_estimation_ros.evaluation import metrics
from depth_estimation_ros.frame.camera_model import PinholeCamera
from depth_estimation_ros.frame.projection import lidar_depth_image

G = np.array([1.0, 2.0, 4.0, 10.0])
P = np.array([2.0, 2.0, 3.0, 12.0])


def test_metrics_match_hand_computed_values():
    m = metrics.depth_metrics(G, P)
    # |g-p|/g = 1, 0, 0.25, 0.2
    assert m["abs_rel"] == pytest.approx((1 + 0 + 0.25 + 0.2) / 4)
    # (g-p)^2/g = 1, 0, 0.25, 0.4
    assert m["sq_rel"] == pytest.approx((1 + 0 + 0.25 + 0.4) / 4)
    # (g-p)^2 = 1, 0, 1, 4
    assert m["rmse"] == pytest.approx(math.sqrt(6 / 4))
    logs = [math.log(1 / 2), 0, math.log(4 / 3), math.log(10 / 12)]
    assert m["rmse_log"] == pytest.approx(math.sqrt(sum(v * v for v in logs) / 4))
    assert m["log10"] == pytest.approx(sum(abs(math.log10(g / p)) for g, p in zip(G, P, strict=True)) / 4)
    # max(g/p, p/g) = 2, 1, 1.333, 1.2 -> < 1.25: 2 of 4; < 1.5625: 3; < 1.953125: 3
    assert (m["d1"], m["d2"], m["d3"]) == (0.5, 0.75, 0.75)


def test_ground_truth_against_itself_is_perfect():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.5, 70, (20, 30)).astype(np.float32)
    gt[rng.random(gt.shape) < 0.3] = np.nan
    result = metrics.evaluate_frame(gt, gt.copy(), 1e-3, 80.0)
    for scored in (result.metric, result.scaled):
        assert scored["abs_rel"] == 0 and scored["sq_rel"] == 0 and scored["rmse"] == 0
        assert scored["rmse_log"] == 0 and scored["log10"] == 0
        assert scored["d1"] == scored["d2"] == scored["d3"] == 1.0
    assert result.scale_ratio == 1.0
    assert result.valid_pixels == int(np.isfinite(gt).sum())


def test_median_scaling_recovers_a_known_scale():
    rng = np.random.default_rng(1)
    gt = rng.uniform(1.0, 20.0, (16, 16))
    result = metrics.evaluate_frame(gt, gt / 3.7, 1e-3, 80.0)
    assert result.scale_ratio == pytest.approx(3.7)
    assert result.scaled["abs_rel"] == pytest.approx(0.0, abs=1e-12)
    assert result.scaled["d1"] == 1.0
    assert result.metric["abs_rel"] == pytest.approx(1 - 1 / 3.7)
    assert result.metric["d1"] == 0.0


def test_median_scale_is_ratio_of_medians():
    assert metrics.median_scale(np.array([1.0, 2.0, 9.0]), np.array([4.0, 1.0, 0.5])) == pytest.approx(2.0)


def test_caps_mask_ground_truth_and_clamp_predictions():
    gt = np.array([[0.5, 2.0, 5.0, 12.0, np.nan]])
    pred = np.array([[1.0, 20.0, 0.01, 3.0, 1.0]])
    r = metrics.evaluate_frame(gt, pred, min_depth=1.0, max_depth=10.0)
    # valid GT: 2.0 and 5.0 (0.5 below the min cap, 12 above the max cap, NaN none)
    assert r.valid_pixels == 2
    # predictions clamped to [1, 10]: 20 -> 10, 0.01 -> 1
    assert r.metric["abs_rel"] == pytest.approx((abs(2 - 10) / 2 + abs(5 - 1) / 5) / 2)
    # median scaling on the raw predictions: median(g) 3.5 / median(p) 10.005, then clamped
    ratio = 3.5 / 10.005
    p_scaled = np.clip(np.array([20.0, 0.01]) * ratio, 1.0, 10.0)
    assert r.scale_ratio == pytest.approx(ratio)
    assert r.scaled["abs_rel"] == pytest.approx(np.mean(np.abs(np.array([2.0, 5.0]) - p_scaled) / [2.0, 5.0]))


def test_clamp_prediction_handles_non_finite():
    out = metrics.clamp_prediction(np.array([np.nan, np.inf, -np.inf, 0.0, 5.0]), 0.1, 10.0)
    np.testing.assert_array_equal(out, [10.0, 10.0, 0.1, 0.1, 5.0])


def test_garg_crop_region():
    mask = metrics.crop_mask(375, 1242, metrics.GARG_CROP)
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max() + 1) == (int(0.40810811 * 375), int(0.99189189 * 375))
    assert (cols.min(), cols.max() + 1) == (int(0.03594771 * 1242), int(0.96405229 * 1242))
    assert metrics.crop_mask(4, 5, None).all()


def test_empty_ground_truth_is_a_clear_error():
    with pytest.raises(ValueError, match="no ground-truth pixel"):
        metrics.evaluate_frame(np.full((4, 4), np.nan), np.ones((4, 4)), 1e-3, 80.0)
    with pytest.raises(ValueError, match="no valid ground-truth"):
        metrics.depth_metrics(np.zeros(0), np.zeros(0))


def test_scale_ratio_summary_and_mean():
    s = metrics.scale_ratio_summary([1.0, 2.0, 3.0, float("nan")])
    assert s["median"] == 2.0 and s["std"] == pytest.approx(np.std([1.0, 2.0, 3.0]))
    mean = metrics.mean_metrics([{k: 1.0 for k in metrics.METRIC_NAMES}, {k: 3.0 for k in metrics.METRIC_NAMES}])
    assert all(v == 2.0 for v in mean.values())


def test_error_by_distance_bins():
    means, counts = metrics.error_by_distance(np.array([1.0, 1.5, 5.0, 50.0]), np.array([2.0, 1.5, 4.0, 1.0]),
                                              np.array([0.0, 2.0, 10.0]))
    np.testing.assert_array_equal(counts, [2, 1])
    np.testing.assert_allclose(means, [0.5, 0.2])


def test_lidar_projection_keeps_nearest_return_and_drops_points_behind():
    camera = PinholeCamera.from_camera_info_fields(4, 3, [2.0, 0, 1.4, 0, 2.0, 1.0, 0, 0, 1])
    # lidar frame = camera frame shifted 1 m back along z (p_cam = p_lidar + [0, 0, -1])
    t_cam_lidar = np.eye(4)
    t_cam_lidar[2, 3] = -1.0
    points = np.array([
        [0.0, 0.0, 5.0],  # z_cam 4 -> pixel (1.4, 1.0) -> col 1, row 1
        [0.0, 0.0, 3.0],  # same ray, nearer: z 2 wins
        [-2.0, 0.9, 4.0],  # z_cam 3: u = 2 * -2/3 + 1.4 = 0.07 -> col 0, v = 2 * 0.9/3 + 1 = 1.6 -> row 2
        [0.0, 0.0, 0.5],  # behind the camera
        [100.0, 0.0, 2.0],  # outside the image
    ])
    depth = lidar_depth_image(points, t_cam_lidar, camera)
    assert depth.shape == (3, 4)
    assert depth[1, 1] == 2.0
    assert depth[2, 0] == 3.0
    assert np.isfinite(depth).sum() == 2


def test_lidar_projection_with_distortion_uses_k_and_d():
    camera = PinholeCamera.from_camera_info_fields(100, 80, [50.0, 0, 50, 0, 50, 40, 0, 0, 1], d=(0.2, 0, 0, 0, 0))
    # a point at normalised (0.6, 0): radial distortion moves it to x_d = 0.6 (1 + 0.2 * 0.36) = 0.6432
    depth = lidar_depth_image(np.array([[0.6 * 10, 0.0, 10.0]]), np.eye(4), camera)
    v, u = np.nonzero(np.isfinite(depth))
    assert (v[0], u[0]) == (40, round(50 + 50 * 0.6432))
    # the same calibration on an image_rect topic: the image is rectified, P (= [K | 0] here) projects it
    depth = lidar_depth_image(np.array([[0.6 * 10, 0.0, 10.0]]), np.eye(4), camera, rectified=True)
    v, u = np.nonzero(np.isfinite(depth))
    assert (v[0], u[0]) == (40, 80)
