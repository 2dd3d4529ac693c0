"""Fit LacDepth's depth_std to its errors with one scale factor and stamp it into a copy of the model.

``depth-eval TRAINING_FRAMES --model M --fit-uncertainty-scale OUT.onnx`` evaluates M on frames with ground truth
(training frames, never the ones it is evaluated on afterwards), takes the factor that puts 68.27 % of the pixels
within 1 sigma (evaluation/uncertainty_calibration.py) and writes OUT.onnx: M with the metadata
``uncertainty_scale`` (the factor times the scale M already had, so re-running on a stamped model refines it) and
``uncertainty_scale_fit`` (JSON: the frames it was fitted on, the coverage before and after on them). Every engine
multiplies depth_std by ``uncertainty_scale`` (engines/base.py).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from depth_estimation_ros.data.atomic_files import write_bytes_atomically
from depth_estimation_ros.errors import InputError
from depth_estimation_ros.evaluation.replay import EvaluationResult
from depth_estimation_ros.evaluation.uncertainty_calibration import CalibrationResult
from depth_estimation_ros.onnx_contract.depth_onnx import (
    STD_OUTPUT,
    UNCERTAINTY_SCALE_KEY,
    load_onnx,
    model_metadata,
    replace_metadata,
)

RECORD_KEY = "uncertainty_scale_fit"


class UncertaintyFitError(InputError):
    """The scale cannot be fitted or stamped; the message names the problem and the fix."""


def fitted_uncertainty_scale(result: EvaluationResult) -> tuple[float, dict]:
    """(new uncertainty_scale, record of the fit) from an evaluation of a model with depth_std."""
    if result.uncertainty is None:
        raise UncertaintyFitError(
            "the model has no depth_std output, so there is no uncertainty to calibrate; use a LacDepth export "
            "(depth-export writes depth_std) or add it to an old one (python -m "
            "depth_estimation_ros.networks.depth_std_graph IN OUT)")
    applied = float(result.engine.get(f"model.{UNCERTAINTY_SCALE_KEY}", "1.0"))
    return scale_from_calibration(result.uncertainty, applied, {
        "source": result.source.get("path"), "frames": [f.name for f in result.frames],
        "frame_range": result.config.get("frames")})


def scale_from_calibration(u: CalibrationResult, applied: float, provenance: dict) -> tuple[float, dict]:
    """(new uncertainty_scale, record of the fit): ``applied`` (the model's current scale) times the calibration's
    factor, refused when the factor is not a positive number; ``provenance`` (source, frames) leads the record."""
    if not (math.isfinite(u.fitted_scale) and u.fitted_scale > 0):
        raise UncertaintyFitError(
            f"no usable scale: the 68.27th percentile of |error| / sigma over {u.pixels} pixels is "
            f"{u.fitted_scale}; check that depth_std is positive on these frames")
    record = {
        **provenance, "pixels": u.pixels,
        "previous_scale": applied, "factor": u.fitted_scale, "scale": applied * u.fitted_scale,
        "within_1_sigma_before": u.within_1_sigma, "within_2_sigma_before": u.within_2_sigma,
        "within_1_sigma_after": u.within_1_sigma_at(u.fitted_scale),
        "within_2_sigma_after": u.within_2_sigma_at(u.fitted_scale),
    }
    return applied * u.fitted_scale, record


def stamp_uncertainty_scale(model_path: str | os.PathLike, output: str | os.PathLike, scale: float,
                            record: dict) -> Path:
    """Write ``model_path`` with the metadata uncertainty_scale / uncertainty_scale_fit set to ``output``
    (atomically; ``output`` may be ``model_path`` itself)."""
    model_path, output = Path(model_path), Path(output)
    if model_path.suffix != ".onnx" or not model_path.is_file():
        raise UncertaintyFitError(
            f"'{model_path}' is not an ONNX file; the scale is stamped into the exported .onnx (the torch backend "
            "reads it from the .onnx beside its checkpoint)")
    if output.suffix != ".onnx":
        raise UncertaintyFitError(f"--fit-uncertainty-scale '{output}' must name an .onnx file")
    model = load_onnx(model_path, load_external_data=True)
    if STD_OUTPUT not in [o.name for o in model.graph.output]:
        raise UncertaintyFitError(f"'{model_path}' has no depth_std output; nothing to scale")
    entries = model_metadata(model)
    entries[UNCERTAINTY_SCALE_KEY] = f"{scale:.6g}"
    entries[RECORD_KEY] = json.dumps(record, sort_keys=True, default=_json_number)
    replace_metadata(model, entries)
    write_bytes_atomically(output, model.SerializeToString())
    return output


def _json_number(value):
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
