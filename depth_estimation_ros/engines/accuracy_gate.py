"""Accuracy gate for reduced-precision engines.

An fp16 or INT8 engine is accepted only if its depth on the calibration frames stays close to the fp32 ONNX Runtime
reference: the mean absolute relative difference (abs_rel, the standard monocular-depth error of Eigen et al.,
NeurIPS 2014, here with the fp32 output as the reference) must not exceed a bound, 1 % by default. Otherwise the
engine is refused with a message naming the numbers and the choices, or the caller falls back to fp32 (by parameter).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from depth_estimation_ros.engines.base import EngineError
from depth_estimation_ros.errors import AccuracyError, ConfigurationError

DEFAULT_ABS_REL_BOUND = 0.01
ON_FAIL_CHOICES = ("refuse", "fallback")


class AccuracyGateError(EngineError, AccuracyError):
    """A reduced-precision engine differs too much from the fp32 reference."""


def abs_rel(candidate: np.ndarray, reference: np.ndarray) -> float:
    """mean(|candidate - reference| / reference) over pixels where the reference is finite and > 0.

    A non-finite candidate value on a valid reference pixel counts as an error of 1 (100 %), so NaN output cannot
    pass the gate by being ignored.
    """
    candidate = np.asarray(candidate, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if candidate.shape != reference.shape:
        raise ValueError(f"candidate shape {candidate.shape} differs from reference shape {reference.shape}")
    valid = np.isfinite(reference) & (reference > 0)
    if not np.any(valid):
        raise ValueError("the reference depth has no finite positive pixel; cannot compute abs_rel")
    rel = np.abs(candidate[valid] - reference[valid]) / reference[valid]
    rel = np.where(np.isfinite(rel), rel, 1.0)
    return float(np.mean(rel))


@dataclass(frozen=True)
class GateResult:
    precision: str
    abs_rel: float  # mean over frames
    worst_frame_abs_rel: float
    bound: float
    frames: int

    @property
    def passed(self) -> bool:
        return self.abs_rel <= self.bound

    def describe(self) -> str:
        verdict = "passes" if self.passed else "FAILS"
        return (
            f"{self.precision} engine {verdict} the accuracy gate: abs_rel vs fp32 ONNX Runtime = "
            f"{100 * self.abs_rel:.3f} % (worst frame {100 * self.worst_frame_abs_rel:.3f} %) on {self.frames} "
            f"calibration frames, bound {100 * self.bound:.2f} %"
        )


def evaluate_gate(
    candidate: Callable[[np.ndarray], np.ndarray],
    reference: Callable[[np.ndarray], np.ndarray],
    frames: Sequence[np.ndarray] | np.ndarray,
    precision: str,
    bound: float = DEFAULT_ABS_REL_BOUND,
) -> GateResult:
    """Run both engines' ``infer`` on each (3, H, W) frame (batch 1) and compare the depths."""
    if bound <= 0:
        raise ConfigurationError(f"accuracy bound must be > 0 (a fraction, 0.01 = 1 %), got {bound}")
    if len(frames) == 0:
        raise ValueError("the accuracy gate needs at least one calibration frame")
    errors = []
    for frame in frames:
        batch = np.ascontiguousarray(frame[None], dtype=np.float32)
        errors.append(abs_rel(candidate(batch), reference(batch)))
    return GateResult(precision, float(np.mean(errors)), float(np.max(errors)), float(bound), len(errors))


def enforce_gate(result: GateResult, on_fail: str = "refuse", engine_name: str = "engine") -> bool:
    """True if the engine may be used; False if it failed and ``on_fail == 'fallback'``; raise if 'refuse'."""
    if on_fail not in ON_FAIL_CHOICES:
        raise ConfigurationError(f"on_fail '{on_fail}' is unknown; choose one of {', '.join(ON_FAIL_CHOICES)}")
    if result.passed:
        return True
    if on_fail == "fallback":
        return False
    raise AccuracyGateError(
        f"refusing {engine_name}: {result.describe()}. Use fp32 (precision:=fp32), raise the bound "
        "(accuracy_bound), calibrate on frames closer to the deployment scenes, or set on_gate_fail:=fallback "
        "to fall back to fp32 automatically."
    )
