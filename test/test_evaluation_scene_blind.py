"""Scene-blind references of depth-eval: mean prediction, leave-one-out ground-truth median, structure gain."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from contract_models import export_contract_model

from depth_estimation_ros.data.datasets import SevenScenesSequence
from depth_estimation_ros.evaluation import metrics
from depth_estimation_ros.evaluation.scene_blind import (
    STRUCTURE_GAIN_WARNING,
    WARNING_TEXT,
    SceneBlindAccumulator,
    leave_one_out_median,
    mean_prediction,
    structure_gain,
)


def _brute_force_loo(stack: np.ndarray) -> np.ndarray:
    out = np.full(stack.shape, np.nan, np.float32)
    for i in range(len(stack)):
        others = np.delete(stack, i, axis=0)
        has = np.isfinite(others).any(axis=0)
        with np.errstate(all="ignore"):
            out[i][has] = np.nanmedian(others[:, has], axis=0)
    return out


@pytest.mark.parametrize("frames", [2, 3, 4, 7])
def test_leave_one_out_median_matches_brute_force_on_sparse_ground_truth(frames):
    rng = np.random.default_rng(frames)
    stack = rng.uniform(1, 50, (frames, 9, 11)).astype(np.float32)
    stack[rng.random(stack.shape) < 0.5] = np.nan  # sparse, like lidar: different counts per pixel
    stack[:, 0, 0] = 3.0  # ties
    stack[:, 0, 1] = np.nan  # never valid
    stack[1:, 0, 2] = np.nan  # valid in frame 0 only: no value left for frame 0
    np.testing.assert_allclose(leave_one_out_median(stack), _brute_force_loo(stack), rtol=1e-6, equal_nan=True)


def test_leave_one_out_median_excludes_the_frame_itself():
    stack = np.array([1.0, 2.0, 3.0, 10.0], np.float32).reshape(4, 1, 1)
    # frame 0: median(2, 3, 10) = 3; frame 1: median(1, 3, 10) = 3; frame 2: median(1, 2, 10) = 2;
    # frame 3: median(1, 2, 3) = 2
    assert leave_one_out_median(stack).ravel().tolist() == [3.0, 3.0, 2.0, 2.0]
    even = np.array([1.0, 2.0, 4.0], np.float32).reshape(3, 1, 1)  # two others: their mean
    assert leave_one_out_median(even).ravel().tolist() == [3.0, 2.5, 1.5]


def test_mean_prediction_ignores_non_finite_pixels():
    total = np.array([[6.0, 0.0], [3.0, 0.0]])
    count = np.array([[3, 0], [2, 0]])
    out = mean_prediction(total, count)
    assert out[0, 0] == 2.0 and out[1, 0] == 1.5 and np.isnan(out[0, 1])


def test_structure_gain_is_mean_prediction_minus_model():
    assert structure_gain(0.30, 0.25) == pytest.approx(0.05)
    assert structure_gain(0.25, 0.25) == 0.0


def _run(frames: list[tuple[np.ndarray, np.ndarray]], crop=None, lo=1e-3, hi=10.0):
    acc = SceneBlindAccumulator(lo, hi, crop)
    for i, (gt, pred) in enumerate(frames):
        acc.add(i, f"{i:04d}", gt, pred, metrics.evaluate_frame(gt, pred, lo, hi, crop))
    return acc, acc.result()


def _seven_scenes_frames(shared_data, count: int) -> list[np.ndarray]:
    seq = SevenScenesSequence(shared_data / "7scenes_redkitchen_1000", frames=range(800, 1000, 25))
    return [f.depth for f in itertools.islice(seq, count)]


def test_a_constant_model_gets_no_structure_gain_and_the_warning(shared_data):
    truths = _seven_scenes_frames(shared_data, 6)
    constant = np.full(truths[0].shape, 2.0, np.float32)
    _, result = _run([(gt, constant) for gt in truths])
    assert result.structure_gain["median_scaled"] == pytest.approx(0.0, abs=1e-12)
    assert result.structure_gain["metric"] == pytest.approx(0.0, abs=1e-12)
    assert result.warning is not None and WARNING_TEXT in result.warning
    assert result.mean_prediction.frames == 6


def test_ground_truth_as_prediction_has_a_large_structure_gain(shared_data):
    truths = _seven_scenes_frames(shared_data, 6)
    # the "model" predicts the ground truth (NaN where the sensor has none: clamped to the cap, outside the mask)
    _, result = _run([(gt, gt.copy()) for gt in truths])
    assert result.warning is None
    assert result.structure_gain["median_scaled"] > STRUCTURE_GAIN_WARNING
    assert result.structure_gain["median_scaled"] == pytest.approx(result.mean_prediction.median_scaled["abs_rel"])
    c = result.ground_truth_median
    assert c.frames == 6 and 0 < c.median_scaled["abs_rel"] < 1
    # pixels invalid in all five other frames are excluded from (c), counted, and (c) is scored on the rest
    assert c.excluded_pixels == sum(r["gt_median_excluded_pixels"] for r in result.per_frame)


def test_leave_one_out_reference_excluded_pixels_are_counted():
    gt = np.full((2, 3, 4), 5.0, np.float32)
    gt[0, 0, :] = np.nan  # row 0 valid only in frame 1 -> frame 1 has no other value there
    _, result = _run([(g, g.copy()) for g in gt])
    assert result.ground_truth_median.excluded_pixels == 4
    assert result.per_frame[1]["gt_median_excluded_pixels"] == 4
    assert result.ground_truth_median.median_scaled["abs_rel"] == 0.0


def test_scene_blind_needs_two_frames_of_one_size():
    acc, result = _run([(np.ones((3, 3), np.float32), np.ones((3, 3), np.float32))])
    assert result is None and "at least 2" in acc.note
    acc, result = _run([(np.ones((3, 3), np.float32), np.ones((3, 3), np.float32)),
                        (np.ones((4, 3), np.float32), np.ones((4, 3), np.float32))])
    assert result is None and "one image size" in acc.note


# ------------------------------------------------------------------------------------------------ depth-eval


SEVEN_SCENES = "7scenes_redkitchen_1000"


def _export_image_independent_model(path) -> None:
    """A real ONNX model honouring the model contract (image in, depth out, metadata) whose depth does not depend
    on the image: a fixed near-to-far ramp, as a model that only learned the average scene would output."""
    import torch

    class FixedDepth(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            ramp = torch.linspace(4.0, 1.0, 64).reshape(1, 1, 64, 1).expand(1, 1, 64, 96).contiguous()
            self.register_buffer("ramp", ramp)

        def forward(self, image):
            return self.ramp + 0.0 * image[:, :1]

    export_contract_model(FixedDepth(), path, "fixed_test", 10.0)


def _read_report(out_dir):
    import csv
    import json

    summary = json.loads((out_dir / "summary.json").read_text())
    with open(out_dir / "frames.csv") as f:
        rows = list(csv.DictReader(f))
    return summary, rows


def test_depth_eval_warns_for_a_model_that_ignores_the_image(shared_data, tmp_path, capsys):
    from depth_estimation_ros.evaluation.cli import main as depth_eval_main

    model = tmp_path / "fixed.onnx"
    _export_image_independent_model(model)
    out = tmp_path / "report"
    rc = depth_eval_main([str(shared_data / SEVEN_SCENES), "--model", str(model), "--backend", "onnxruntime",
                          "--frames", "800:1000:20", "--output-dir", str(out), "--no-progress",
                          "--contact-sheet-frames", "0"])
    assert rc == 0
    captured = capsys.readouterr()
    assert WARNING_TEXT in captured.err
    assert "structure gain = abs_rel(b) - abs_rel(a)" in captured.out and "(c) med-scaled" in captured.out
    summary, rows = _read_report(out)
    assert summary["summary"]["frames_evaluated"] == 10  # 800, 820, ..., 980: the 7-Scenes validation frames
    assert [r["name"] for r in rows] == [f"frame-{n:06d}" for n in range(800, 1000, 20)]
    blind = summary["summary"]["scene_blind"]
    assert abs(blind["structure_gain"]["median_scaled"]) < 1e-6 and abs(blind["structure_gain"]["metric"]) < 1e-6
    assert WARNING_TEXT in blind["warning"]
    for row in rows:  # (b) is the prediction itself, frame by frame
        assert float(row["mean_prediction_scaled_abs_rel"]) == pytest.approx(float(row["scaled_abs_rel"]), abs=1e-6)


def test_depth_eval_scene_blind_rows_with_a_bundled_model(shared_data, tmp_path, capsys):
    from depth_estimation_ros.evaluation.cli import main as depth_eval_main

    out = tmp_path / "report"
    rc = depth_eval_main([str(shared_data / SEVEN_SCENES), "--model", "lacdepth_indoor", "--backend", "onnxruntime",
                          "--threads", "1", "--frames", "800:1000:40", "--output-dir", str(out), "--no-progress",
                          "--contact-sheet-frames", "0"])
    assert rc == 0
    summary, rows = _read_report(out)
    s = summary["summary"]
    blind = s["scene_blind"]
    b = blind["mean_prediction"]
    c = blind["ground_truth_median_leave_one_out"]
    assert s["frames_evaluated"] == b["frames"] == 5
    assert summary["config"]["max_depth"] == 10.0  # auto preset: indoor for a 7-Scenes folder
    assert blind["structure_gain"]["median_scaled"] == pytest.approx(
        b["median_scaled"]["abs_rel"] - s["median_scaled"]["abs_rel"])
    assert blind["structure_gain"]["metric"] == pytest.approx(b["metric"]["abs_rel"] - s["metric"]["abs_rel"])
    assert 0 < c["median_scaled"]["abs_rel"] < 1 and c["excluded_pixels"] >= 0
    assert (blind["warning"] is None) == (blind["structure_gain"]["median_scaled"] >= STRUCTURE_GAIN_WARNING)
    assert len(summary["scene_blind_frames"]) == 5
    assert all(r["gt_median_scaled_abs_rel"] != "" for r in rows)
    assert f"{blind['structure_gain']['median_scaled']:.4f}" in capsys.readouterr().out


def test_depth_eval_frames_option_rejects_an_empty_range(capsys):
    from depth_estimation_ros.evaluation.cli import main as depth_eval_main

    with pytest.raises(SystemExit):
        depth_eval_main(["unused", "--frames", "900:800"])
    assert "selects no frame" in capsys.readouterr().err
