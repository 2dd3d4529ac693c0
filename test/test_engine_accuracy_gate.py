"""Accuracy gate: abs_rel between a candidate engine and the fp32 reference, refuse / fall back."""

from __future__ import annotations

import numpy as np
import pytest

from depth_estimation_ros.engines.accuracy_gate import (
    AccuracyGateError,
    GateResult,
    abs_rel,
    enforce_gate,
    evaluate_gate,
)
from depth_estimation_ros.engines.base import EngineError


def test_abs_rel_is_the_mean_relative_difference_over_valid_reference_pixels():
    reference = np.array([[1.0, 2.0], [4.0, 0.0]])
    candidate = np.array([[1.1, 2.0], [3.0, 7.0]])  # the last pixel has no valid reference
    assert abs_rel(candidate, reference) == pytest.approx((0.1 + 0.0 + 0.25) / 3)


def test_non_finite_candidate_counts_as_a_full_error():
    reference = np.array([2.0, 2.0, np.nan, np.inf])
    candidate = np.array([np.nan, 2.0, 1.0, 1.0])
    assert abs_rel(candidate, reference) == pytest.approx(0.5)


def test_abs_rel_rejects_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        abs_rel(np.ones((2, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="no finite positive"):
        abs_rel(np.ones(3), np.zeros(3))


def _reference(batch: np.ndarray) -> np.ndarray:
    return 1.0 + 10.0 * batch[:, :1]


def test_evaluate_gate_passes_and_fails_around_the_bound():
    frames = np.random.default_rng(0).random((4, 3, 8, 12), dtype=np.float32)
    close = evaluate_gate(lambda b: _reference(b) * 1.005, _reference, frames, "fp16")
    assert close.passed and close.abs_rel == pytest.approx(0.005, rel=1e-6) and close.frames == 4
    far = evaluate_gate(lambda b: _reference(b) * 1.02, _reference, frames, "int8", bound=0.01)
    assert not far.passed and far.worst_frame_abs_rel == pytest.approx(0.02, rel=1e-6)
    assert "FAILS" in far.describe() and "2.000 %" in far.describe()


def test_enforce_gate_refuses_with_a_clear_message_or_falls_back():
    failed = GateResult("int8", 0.03, 0.05, 0.01, 16)
    with pytest.raises(AccuracyGateError) as info:
        enforce_gate(failed, "refuse", "the int8 engine for model.onnx")
    message = str(info.value)
    assert isinstance(info.value, EngineError)
    for needle in ("model.onnx", "3.000 %", "1.00 %", "16 calibration frames", "fallback", "precision:=fp32"):
        assert needle in message
    assert enforce_gate(failed, "fallback") is False
    assert enforce_gate(GateResult("fp16", 0.002, 0.003, 0.01, 16), "refuse") is True
    with pytest.raises(ValueError, match="on_fail"):
        enforce_gate(failed, "ignore")


def test_gate_needs_frames_and_a_positive_bound():
    with pytest.raises(ValueError, match="at least one"):
        evaluate_gate(_reference, _reference, np.zeros((0, 3, 4, 4), np.float32), "fp16")
    with pytest.raises(ValueError, match="bound"):
        evaluate_gate(_reference, _reference, np.ones((1, 3, 4, 4), np.float32), "fp16", bound=0.0)
