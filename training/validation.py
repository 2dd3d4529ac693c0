"""Validation during training: depth-eval's protocol (caps, crop, median scaling, scene-blind references) on held-out
frames with ground truth, run on the network being trained.

A validation set is named "<dataset folder>[@START:STOP[:STEP]]": a folder depth-eval reads (KITTI raw, KITTI
frames, TUM, 7-Scenes) and optionally the range of the dataset's own frame numbers to use. Frames are read once and
kept in memory. Each call scores (a) the network, (b) its mean prediction over the set and (c) the leave-one-out
ground-truth median (evaluation/scene_blind.py), so the log says whether the depth follows the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from depth_estimation_ros.evaluation import metrics
from depth_estimation_ros.evaluation.cli import PRESETS, choose_preset
from depth_estimation_ros.evaluation.frame_sources import EvaluationFrame, folder_frames
from depth_estimation_ros.evaluation.scene_blind import SceneBlindAccumulator
from depth_estimation_ros.preprocessing import resize_depth, to_network_input


class ValidationError(ValueError):
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


def load_validation_set(spec: str) -> ValidationSet:
    """The frames of a validation set that have ground truth, with depth-eval's automatic preset for the folder."""
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
    record: dict[str, float] = {}
    try:
        for vset in sets:
            acc = SceneBlindAccumulator(vset.min_depth, vset.max_depth, vset.crop)
            scores = []
            for frame in vset.frames:
                pred = predict(network, frame.rgb, height, width, device)
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
    finally:
        network.train(was_training)
    return record


__all__ = ["PRESETS", "ValidationError", "ValidationSet", "load_validation_set", "parse_validation_spec", "predict",
           "validate"]
