"""Validation during training: depth-eval's protocol (caps, crop, median scaling, scene-blind references) on held-out
frames with ground truth, run on the network being trained.

A validation set is named "<dataset folder>[@START:STOP[:STEP]]": a folder depth-eval reads (KITTI raw, KITTI
frames, TUM, 7-Scenes) and optionally the range of the dataset's own frame numbers to use; or
"sfm:<sequence folder>[,<sequence folder>...]": held-out sequence folders that went through depth-poses, scored
against their metric SfM depth (for frames without sensor depth, such as KITTI odometry), all frames resampled to
the first sequence's image size so that they form one set. Frames are read once and kept in memory. Each call
scores (a) the network, (b) its mean prediction over the set and (c) the leave-one-out ground-truth median
(evaluation/scene_blind.py), so the log says whether the depth follows the image.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from depth_estimation_training.dataset import rasterize_points, scale_intrinsics
from depth_estimation_training.sequence import load_sequence

from depth_estimation_ros.errors import InputError
from depth_estimation_ros.evaluation import metrics
from depth_estimation_ros.evaluation.cli import PRESETS, choose_preset
from depth_estimation_ros.evaluation.frame_sources import EvaluationFrame, folder_frames
from depth_estimation_ros.evaluation.scene_blind import SceneBlindAccumulator
from depth_estimation_ros.evaluation.uncertainty_calibration import CalibrationAccumulator, CalibrationResult
from depth_estimation_ros.frame.camera_model import PinholeCamera
from depth_estimation_ros.frame.preprocessing import resize_depth, to_network_input


class ValidationError(InputError):
    """A validation set cannot be read; the message names it and the fix."""


def parse_validation_spec(spec: str) -> tuple[Path, range | None]:
    """"folder@START:STOP[:STEP]" -> (folder, range of frame numbers) ; "folder" -> (folder, None)."""
    folder, _, frames = spec.partition("@")
    if not frames:
        return Path(folder), None
    try:
        numbers = [int(x) for x in frames.split(":")]
        return Path(folder), range(*numbers)
    except (TypeError, ValueError):
        raise ValidationError(f"validation set '{spec}': frames must be START:STOP[:STEP], got '{frames}'") from None


@dataclass
class ValidationSet:
    name: str
    frames: list[EvaluationFrame]
    min_depth: float
    max_depth: float
    crop: tuple[float, float, float, float] | None


def sfm_frames(root: Path, size: tuple[int, int] | None = None) -> list[EvaluationFrame]:
    """The frames of a sequence folder that lie in a metric chunk, with their SfM depth as sparse ground truth (NaN =
    none), resampled to size (height, width) when given."""
    seq = load_sequence(root)
    if not (root / "poses.json").is_file():
        raise ValidationError(f"{root} has no poses.json: run depth-poses on it to get its SfM depth")
    doc = json.loads((root / "poses.json").read_text())
    frames = []
    for chunk in doc["chunks"]:
        if not chunk.get("sfm_depth_metric") or not chunk.get("sfm_depth"):
            continue
        for index, rel in zip(chunk["frames"], chunk["sfm_depth"], strict=True):
            rgb = seq.read_rgb(index)
            h, w = size or rgb.shape[:2]
            with np.load(root / rel) as data:
                depth = rasterize_points(data["xy"], data["depth"], rgb.shape[:2], h, w)
            if (h, w) != rgb.shape[:2]:
                rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
            camera = PinholeCamera.from_camera_info_fields(w, h, scale_intrinsics(seq.intrinsics, w / seq.width,
                                                                                  h / seq.height).reshape(-1))
            frames.append(EvaluationFrame(len(frames), f"{seq.name}/{index:06d}", 0, "camera", rgb,
                                          np.where(depth > 0, depth, np.nan).astype(np.float32), camera,
                                          number=index))
    return frames


def load_validation_set(spec: str) -> ValidationSet:
    """The frames of a validation set that have ground truth, with depth-eval's automatic preset for the folder."""
    if spec.startswith("sfm:"):
        roots = [Path(p) for p in spec[len("sfm:"):].split(",")]
        first = load_sequence(roots[0])
        frames = [f for root in roots for f in sfm_frames(root, (first.height, first.width))]
        if len(frames) < 2:
            raise ValidationError(f"validation set '{spec}' has {len(frames)} frame(s) with metric SfM depth")
        min_depth, max_depth, crop = PRESETS["kitti"] if "kitti" in roots[0].name.lower() else PRESETS["outdoor"]
        return ValidationSet("sfm_" + "+".join(r.name for r in roots), frames, min_depth, max_depth,
                             metrics.CROPS[crop])
    folder, numbers = parse_validation_spec(spec)
    if not folder.is_dir():
        raise ValidationError(f"validation set '{spec}': {folder} is not a folder")
    frames = [f for f in folder_frames(folder) if f.ground_truth is not None
              and (numbers is None or (f.number if f.number is not None else f.index) in numbers)]
    if len(frames) < 2:
        raise ValidationError(f"validation set '{spec}' has {len(frames)} frame(s) with ground truth; need >= 2")
    min_depth, max_depth, crop = choose_preset("auto", folder)
    name = folder.name + (f"@{numbers.start}:{numbers.stop}:{numbers.step}" if numbers else "")
    return ValidationSet(name, frames, min_depth, max_depth, metrics.CROPS[crop])


@torch.no_grad()
def predict(network: torch.nn.Module, rgb: np.ndarray, height: int, width: int, device: torch.device) -> np.ndarray:
    """The network's depth (metres) for one RGB uint8 frame, resized to the frame's size."""
    x = torch.from_numpy(to_network_input(rgb, height, width)).to(device)
    depth = network.predict_depth(x)[0, 0].float().cpu().numpy()
    return resize_depth(depth, rgb.shape[0], rgb.shape[1])


def validate(network: torch.nn.Module, sets: list[ValidationSet], height: int, width: int,
             device: torch.device) -> dict[str, float]:
    """Flat record per set: abs_rel (median-scaled and metric) of (a), (b), (c), structure gain, scale ratio."""
    was_training = network.training
    network.eval()
    try:
        return score_sets(lambda rgb: predict(network, rgb, height, width, device), sets)
    finally:
        network.train(was_training)


def score_sets(predict_depth: Callable[[np.ndarray], np.ndarray], sets: list[ValidationSet]) -> dict[str, float]:
    """validate's record for any predictor: RGB uint8 frame -> depth (metres) at the frame's size (a network in
    training, or an engine's ``estimate`` for an exported model)."""
    record: dict[str, float] = {}
    for vset in sets:
        acc = SceneBlindAccumulator(vset.min_depth, vset.max_depth, vset.crop)
        scores = []
        for frame in vset.frames:
            pred = predict_depth(frame.rgb)
            score = metrics.evaluate_frame(frame.ground_truth, pred, vset.min_depth, vset.max_depth, vset.crop)
            scores.append(score)
            acc.add(frame.index, frame.name, frame.ground_truth, pred, score)
        blind = acc.result()
        prefix = f"val/{vset.name}/"
        record[prefix + "abs_rel_scaled"] = float(np.mean([s.scaled["abs_rel"] for s in scores]))
        record[prefix + "abs_rel_metric"] = float(np.mean([s.metric["abs_rel"] for s in scores]))
        record[prefix + "scale_ratio_median"] = metrics.scale_ratio_summary([s.scale_ratio for s in scores])[
            "median"]
        if blind is not None:
            record[prefix + "mean_prediction_abs_rel_scaled"] = blind.mean_prediction.median_scaled["abs_rel"]
            record[prefix + "gt_median_abs_rel_scaled"] = blind.ground_truth_median.median_scaled["abs_rel"]
            record[prefix + "structure_gain"] = blind.structure_gain["median_scaled"]
    return record


def calibrate_uncertainty(estimate_with_std: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]],
                          sets: list[ValidationSet]) -> CalibrationResult:
    """depth-eval's depth_std calibration (evaluation/uncertainty_calibration.py) pooled over every set's valid
    ground-truth pixels; ``estimate_with_std``: RGB uint8 frame -> (depth, depth_std) at the frame's size."""
    accumulator = CalibrationAccumulator()
    for vset in sets:
        for frame in vset.frames:
            depth, std = estimate_with_std(frame.rgb)
            if std is None:
                raise ValidationError("the model has no depth_std output, so there is no uncertainty to calibrate; "
                                      "use a LacDepth export (depth-export writes depth_std)")
            mask = metrics.valid_ground_truth_mask(frame.ground_truth, vset.min_depth, vset.max_depth, vset.crop)
            accumulator.add(frame.ground_truth[mask], np.clip(depth[mask], vset.min_depth, vset.max_depth),
                            std[mask])
    return accumulator.result()


__all__ = ["ValidationError", "ValidationSet", "calibrate_uncertainty", "load_validation_set", "parse_validation_spec",
           "predict", "score_sets", "sfm_frames", "validate"]


def main(argv: list[str] | None = None) -> int:
    """Score exported models (ONNX Runtime, the engines' ``estimate``) on validation sets; prints one table row per
    model and set: python -m depth_estimation_training.validation --model M [--model M2] SET [SET ...]."""
    import argparse

    from depth_estimation_ros.engines.factory import create_engine
    from depth_estimation_ros.errors import EXPECTED_ERRORS, report_error
    from depth_estimation_ros.resources.model_registry import resolve_model

    parser = argparse.ArgumentParser(prog="validation", description=main.__doc__.split(";")[0])
    parser.add_argument("sets", nargs="+", help="validation sets (module docstring)")
    parser.add_argument("--model", action="append", required=True, help="bundled model name or .onnx; repeatable")
    parser.add_argument("--fit-uncertainty-scale", metavar="OUT.onnx", default=None,
                        help="one model: fit its depth_std scale on these sets, which must be TRAINING frames (e.g. "
                             "sfm: of the training sequences), and write the model with it to OUT.onnx")
    args = parser.parse_args(argv)
    if args.fit_uncertainty_scale and len(args.model) != 1:
        parser.error("--fit-uncertainty-scale fits one model; give exactly one --model")
    try:
        sets = [load_validation_set(spec) for spec in args.sets]
        engines = {model: create_engine(resolve_model(model), backend="onnxruntime") for model in args.model}
    except EXPECTED_ERRORS as exc:
        return report_error("validation", exc)
    if args.fit_uncertainty_scale:
        model = args.model[0]
        return _fit_uncertainty_scale(model, engines[model], sets, args.sets, args.fit_uncertainty_scale)
    print("| model | set | frames | abs_rel (a) | (b) mean prediction | (c) GT median | structure gain | "
          "median scale ratio | abs_rel metric |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model, engine in engines.items():
        record = score_sets(lambda rgb, e=engine: e.estimate(rgb, rgb.shape[:2]), sets)
        for vset in sets:
            p = f"val/{vset.name}/"
            print(f"| {model} | {vset.name} | {len(vset.frames)} | {record[p + 'abs_rel_scaled']:.3f} | "
                  f"{record.get(p + 'mean_prediction_abs_rel_scaled', float('nan')):.3f} | "
                  f"{record.get(p + 'gt_median_abs_rel_scaled', float('nan')):.3f} | "
                  f"{record.get(p + 'structure_gain', float('nan')):+.3f} | {record[p + 'scale_ratio_median']:.3f} | "
                  f"{record[p + 'abs_rel_metric']:.3f} |")
    return 0


def _fit_uncertainty_scale(model: str, engine, sets: list[ValidationSet], specs: list[str], output: str) -> int:
    from depth_estimation_ros.errors import EXPECTED_ERRORS, report_error
    from depth_estimation_ros.evaluation.uncertainty_fit import scale_from_calibration, stamp_uncertainty_scale
    from depth_estimation_ros.onnx_contract.depth_onnx import UNCERTAINTY_SCALE_KEY
    from depth_estimation_ros.resources.model_registry import resolve_model

    try:
        u = calibrate_uncertainty(lambda rgb: engine.estimate_with_std(rgb, rgb.shape[:2]), sets)
        scale, record = scale_from_calibration(u, engine.info.uncertainty_scale, {
            "source": specs, "frames": [f.name for vset in sets for f in vset.frames]})
        stamp_uncertainty_scale(resolve_model(model), output, scale, record)
    except EXPECTED_ERRORS as exc:
        return report_error("validation", exc)
    print(f"{UNCERTAINTY_SCALE_KEY} {scale:.4g} (x{u.fitted_scale:.4g}) fitted on {u.pixels} pixels of "
          f"{len(record['frames'])} frames: within 1 sigma {u.within_1_sigma:.4f} -> "
          f"{record['within_1_sigma_after']:.4f}, within 2 sigma {u.within_2_sigma:.4f} -> "
          f"{record['within_2_sigma_after']:.4f}; wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
