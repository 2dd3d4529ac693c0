"""depth-eval's calibration of depth_std (coverage at 1 / 2 sigma, abs_rel of the pixels kept per threshold) and
the fitted scale stamped into the model, on real TUM frames with a LacDepth export."""

from __future__ import annotations

import csv
import json
import math

import cv2
import numpy as np
import onnx
import pytest
import torch
from shared_data import DATA

from depth_estimation_ros.evaluation.cli import main as depth_eval_main
from depth_estimation_ros.evaluation.uncertainty_calibration import (
    CalibrationAccumulator,
    abs_rel_of_most_certain,
    coverage,
    fitted_scale,
    normalised_errors,
    rank_correlation,
)

TUM = DATA / "tum_fr3_cabinet_keyframes"
pytestmark = pytest.mark.skipif(not (TUM / "rgb").is_dir(), reason=f"TUM keyframes missing under {DATA}")


def test_calibration_functions_on_hand_made_pixels():
    g = np.array([1.0, 2.0, 4.0, 8.0])
    p = np.array([1.1, 2.5, 4.0, 6.0])
    sigma = np.array([0.2, 0.2, 0.5, 0.0])
    z = normalised_errors(g, p, sigma)
    assert z[:3] == pytest.approx([0.5, 2.5, 0.0]) and math.isinf(z[3])  # sigma 0: never covered
    assert coverage(z, 1.0) == 0.5 and coverage(z, 2.0) == 0.5 and coverage(z, 3.0) == 0.75
    rng = np.random.default_rng(0)
    sigma = rng.uniform(0.5, 2.0, 200_000)
    errors = rng.normal(0.0, 3.0 * sigma)  # sigma three times too small
    assert fitted_scale(np.abs(errors) / sigma) == pytest.approx(3.0, rel=0.02)
    acc = CalibrationAccumulator(thresholds=(0.1, math.inf), ranked_fractions=(0.5, 1.0))
    acc.add(np.full(4, 10.0), np.array([10.0, 11.0, 12.0, 14.0]), np.array([0.5, 0.9, 3.0, 5.0]))
    result = acc.result()
    assert result.kept_fraction == [0.5, 1.0] and result.abs_rel_kept == pytest.approx([0.05, 0.175])
    assert result.ranked_abs_rel == pytest.approx([0.05, 0.175])
    assert result.ranked_abs_rel_by_sigma == pytest.approx([0.05, 0.175])
    inverted = CalibrationAccumulator(thresholds=(math.inf,), ranked_fractions=(0.5,))
    inverted.add(np.full(4, 10.0), np.array([14.0, 12.0, 11.0, 10.0]), np.array([0.5, 0.9, 3.0, 5.0]))
    ranked = inverted.result()  # sigma ranks the worst pixels first here; the nearest-first baseline does not
    assert ranked.ranked_abs_rel_by_sigma == pytest.approx([0.3]) and ranked.ranked_abs_rel_by_depth == \
        pytest.approx([0.05])
    assert result.within_1_sigma == 0.75 and result.within_1_sigma_at(0.5) == 0.25
    assert ranked.sigma_depth_rank_correlation == pytest.approx(-1.0)  # sigma falls as the depth rises
    assert rank_correlation(np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 90.0])) == pytest.approx(1.0)
    assert abs_rel_of_most_certain(np.array([3.0, 1.0, 2.0]), np.array([0.3, 0.1, 0.2]), 1 / 3) == 0.1


@pytest.fixture(scope="module")
def lacdepth_onnx(tmp_path_factory):
    from depth_estimation_ros.networks.export import export_onnx
    from depth_estimation_ros.networks.factory import DepthNetworkConfig, build_depth_network

    torch.manual_seed(0)
    cfg = DepthNetworkConfig("lacdepth", "efficientnet_lite0", pretrained=True, num_bins=16, embed_channels=32,
                             min_depth=0.1, max_depth=10.0)
    return export_onnx(build_depth_network(cfg), cfg, tmp_path_factory.mktemp("m") / "lacdepth.onnx", 64, 96)


def _uncertainty(out_dir):
    return json.loads((out_dir / "summary.json").read_text())["summary"]["uncertainty"]


def test_depth_eval_reports_calibration_and_the_fitted_scale_is_stamped(lacdepth_onnx, tmp_path, capsys):
    """Raw sigma of an untrained LacDepth, a scale fitted on frames 0-3, the stamped model re-evaluated there."""
    common = [str(TUM), "--preset", "indoor", "--threads", "2", "--no-progress", "--no-scene-blind",
              "--contact-sheet-frames", "0"]
    stamped = tmp_path / "stamped.onnx"
    assert depth_eval_main([*common, "--model", str(lacdepth_onnx), "--frames", "0:4", "--output-dir",
                            str(tmp_path / "fit"), "--fit-uncertainty-scale", str(stamped)]) == 0
    out = capsys.readouterr().out
    assert "|error| <= 1 sigma" in out and "sigma/depth <=" in out and "uncertainty_scale" in out
    fit = _uncertainty(tmp_path / "fit")
    assert fit["pixels"] > 100_000 and 0 <= fit["within_1_sigma"] <= fit["within_2_sigma"] <= 1
    rows = fit["selective_abs_rel"]
    assert rows[-1]["max_relative_uncertainty"] is None and rows[-1]["kept_fraction"] == 1.0  # inf -> null
    assert [r["kept_fraction"] for r in rows] == sorted(r["kept_fraction"] for r in rows)
    assert (tmp_path / "fit" / "uncertainty_calibration.png").stat().st_size > 1000
    with open(tmp_path / "fit" / "uncertainty.csv") as handle:
        table = list(csv.reader(handle))
    assert table[0] == ["max_relative_uncertainty", "kept_fraction", "abs_rel"] and table[7][0] == "inf"

    meta = {p.key: p.value for p in onnx.load(stamped).metadata_props}
    scale = float(meta["uncertainty_scale"])
    record = json.loads(meta["uncertainty_scale_fit"])
    assert scale == pytest.approx(fit["fitted_scale"], rel=1e-4) and record["frame_range"] == [0, 4, 1]
    assert record["within_1_sigma_after"] == pytest.approx(0.6827, abs=0.005)
    assert meta["network"] == "lacdepth"  # the rest of the metadata is kept

    # the engines apply it: the same frames now show 68 % within 1 sigma
    assert depth_eval_main([*common, "--model", str(stamped), "--frames", "0:4", "--output-dir",
                            str(tmp_path / "again")]) == 0
    again = _uncertainty(tmp_path / "again")
    assert again["within_1_sigma"] == pytest.approx(0.6827, abs=0.005) and again["fitted_scale"] == pytest.approx(
        1.0, abs=0.01)
    assert again["uncertainty_scale_applied"] == meta["uncertainty_scale"]


def test_output_bag_carries_the_uncertainty_image(lacdepth_onnx, tmp_path):
    from depth_estimation_ros.data.bag_reading import BagReader
    from depth_estimation_ros.engines.onnxruntime_engine import OnnxRuntimeEngine
    from depth_estimation_ros.evaluation.replay import PREDICTION_TOPICS
    from depth_estimation_ros.messages.message_decoding import depth_from_image_message

    out_bag = tmp_path / "out_bag"
    assert depth_eval_main([str(TUM), "--model", str(lacdepth_onnx), "--frames", "0:2", "--no-progress",
                            "--no-scene-blind", "--output-dir", str(tmp_path / "report"), "--output-bag",
                            str(out_bag)]) == 0
    with BagReader(out_bag) as bag:
        assert bag.message_counts[PREDICTION_TOPICS["uncertainty"]] == 2
        depth_msg = next(bag.messages([PREDICTION_TOPICS["depth"]])).message
        unc_msg = next(bag.messages([PREDICTION_TOPICS["uncertainty"]])).message
    assert unc_msg.header.stamp == depth_msg.header.stamp and unc_msg.encoding == "32FC1"
    depth, unc = depth_from_image_message(depth_msg), depth_from_image_message(unc_msg)
    assert depth.shape == unc.shape and np.array_equal(np.isnan(unc), ~np.isfinite(depth))
    rgb = cv2.cvtColor(cv2.imread(str(sorted((TUM / "rgb").glob("*.jpg"))[0])), cv2.COLOR_BGR2RGB)
    _, std = OnnxRuntimeEngine(str(lacdepth_onnx)).estimate_with_std(rgb, depth.shape)
    finite = np.isfinite(depth)
    assert np.allclose(unc[finite], std[finite]) and np.all(unc[finite] > 0)  # the engine's std, as the node has it


def test_models_without_depth_std_are_reported_and_not_fitted(tmp_path, capsys):
    from depth_estimation_ros.networks.export import export_onnx
    from depth_estimation_ros.networks.factory import DepthNetworkConfig, build_depth_network

    cfg = DepthNetworkConfig("baseline", "resnet18", pretrained=False, max_depth=10.0)
    model = export_onnx(build_depth_network(cfg), cfg, tmp_path / "baseline.onnx", 64, 96)
    args = [str(TUM), "--model", str(model), "--preset", "indoor", "--frames", "0:1", "--no-progress",
            "--no-scene-blind", "--output-dir", str(tmp_path / "out")]
    assert depth_eval_main(args) == 0
    assert "uncertainty: none" in capsys.readouterr().out
    assert "no depth_std" in _uncertainty(tmp_path / "out")["note"]
    assert depth_eval_main([*args, "--fit-uncertainty-scale", str(tmp_path / "x.onnx")]) == 2
    assert "no depth_std output" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()
