"""Start-up self-test of an engine: run the model's reference frame and compare with its stored fp32 depth.

Catches what no build step reports: a TensorRT update or an fp16 layer that overflows, a checkpoint that does not
belong to the ONNX, a broken provider. Any backend and precision is compared with the fp32 ONNX Runtime depth stored
in the model (engines/self_test_reference.py), on the block means of the depth, by the accuracy gate's abs_rel and
default bound (1 %); a NaN or Inf anywhere in the output fails it. ``checked_engine`` refuses a failing engine or
falls back to fp32 ONNX Runtime.
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from depth_estimation_ros.data.reference_frame import ReferenceFrame, load_reference_frame
from depth_estimation_ros.engines.accuracy_gate import DEFAULT_ABS_REL_BOUND, ON_FAIL_CHOICES, abs_rel
from depth_estimation_ros.engines.base import DepthEngine, EngineError
from depth_estimation_ros.engines.self_test_reference import block_means, depth_sha256, read_reference
from depth_estimation_ros.errors import AccuracyError, ConfigurationError

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
_VERSIONED = {"onnxruntime": ("onnxruntime",), "torch": ("torch", "onnxruntime"),
              "tensorrt": ("tensorrt", "onnxruntime", "pycuda")}


class SelfTestError(EngineError, AccuracyError):
    """The engine's depth on the reference frame differs from the stored fp32 reference (or is not finite)."""


@dataclass(frozen=True)
class SelfTestResult:
    status: str  # PASSED | FAILED | SKIPPED
    message: str
    backend: str = ""
    precision: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    abs_rel: float | None = None
    bound: float = DEFAULT_ABS_REL_BOUND
    nonfinite: int = 0

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    def diagnostics(self) -> dict[str, str]:
        """Flat key/values for the node's diagnostics."""
        out = {"self_test": self.status, "self_test.engine": f"{self.backend} {self.precision}".strip()}
        if self.abs_rel is not None:
            out["self_test.abs_rel"] = f"{self.abs_rel:.6f}"
            out["self_test.bound"] = f"{self.bound:.6f}"
        if self.status == FAILED:
            out["self_test.nonfinite_pixels"] = str(self.nonfinite)
            out["self_test.versions"] = describe_versions(self.versions)
        return out


def runtime_versions(backend: str) -> dict[str, str]:
    """Versions of this package and of the libraries the backend runs on (those installed)."""
    versions = {"depth_estimation_ros": _version("depth_estimation_ros")}
    for name in _VERSIONED.get(backend, ()):
        version = _version(name)
        if version:
            versions[name] = version
    if backend == "torch":
        import torch

        versions["cuda"] = str(torch.version.cuda or "none")
    return versions


def _version(distribution: str) -> str:
    for name in (distribution, f"{distribution}-gpu", f"{distribution}-cu12"):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    module = sys.modules.get(distribution)  # e.g. JetPack's TensorRT comes from apt, without pip metadata
    return str(getattr(module, "__version__", "")) if module is not None else ""


def describe_versions(versions: dict[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in versions.items())


def reference_model_path(model_path: str) -> Path | None:
    """The ONNX whose metadata holds the reference: the model itself, or the .onnx beside a .pt checkpoint."""
    path = Path(model_path)
    if path.suffix == ".onnx":
        return path
    sibling = path.with_suffix(".onnx")
    return sibling if sibling.is_file() else None


def compare_with_reference(depth: np.ndarray, reference: dict, bound: float) -> tuple[bool, float | None, int, str]:
    """(passed, abs_rel of the block means or None, non-finite pixel count, what differs)."""
    depth = np.asarray(depth, dtype=np.float32)
    expected = tuple(reference["output_size"])
    if depth.shape != expected:
        return False, None, 0, (f"the engine's depth is {depth.shape[0]}x{depth.shape[1]} but the reference is "
                                f"{expected[0]}x{expected[1]}: the reference belongs to another model")
    nonfinite = int(np.sum(~np.isfinite(depth)))
    grid = np.asarray(reference["depth_blocks"], dtype=np.float64).reshape(reference["grid"])
    error = abs_rel(block_means(depth, int(reference["block"])), grid)
    if nonfinite:
        return False, error, nonfinite, f"{nonfinite} NaN/Inf pixels of {depth.size}"
    if error > bound:
        return False, error, 0, f"abs_rel {100 * error:.3f} % > bound {100 * bound:.2f} %"
    same = "bit-identical to the reference" if depth_sha256(depth) == reference.get("depth_sha256") else \
        f"abs_rel {100 * error:.4f} % <= bound {100 * bound:.2f} %"
    return True, error, 0, same


def run_self_test(engine: DepthEngine, model_path: str, bound: float = DEFAULT_ABS_REL_BOUND,
                  frame: ReferenceFrame | None = None) -> SelfTestResult:
    """Run the reference frame through ``engine`` and compare with the reference stored for ``model_path``."""
    if bound <= 0:
        raise ConfigurationError(f"self-test bound must be > 0 (a fraction, 0.01 = 1 %), got {bound}")
    info = engine.info
    versions = runtime_versions(info.backend)
    what = f"{info.backend} {info.precision} engine on {info.device} ({describe_versions(versions)})"
    onnx_path = reference_model_path(model_path)
    try:
        reference = read_reference(onnx_path) if onnx_path is not None else None
    except ValueError as exc:
        return SelfTestResult(FAILED, f"self-test of the {what} cannot run: {exc}", info.backend, info.precision,
                              versions, bound=bound)
    if reference is None:
        return SelfTestResult(
            SKIPPED, f"model '{model_path}' carries no self-test reference, the {what} is unchecked; add one with "
            "depth-stamp-reference <model.onnx> (depth-export adds it to new exports)", info.backend, info.precision,
            versions, bound=bound)
    if frame is None:
        try:
            frame = load_reference_frame()
        except (FileNotFoundError, ValueError) as exc:  # the sample bag is missing or unreadable (BagError)
            return SelfTestResult(SKIPPED, f"the {what} is unchecked: {exc}", info.backend, info.precision, versions,
                                  bound=bound)
    depth = engine.estimate(frame.rgb)
    passed, error, nonfinite, detail = compare_with_reference(depth, reference, bound)
    stored_frame = reference.get("frame", {})
    if stored_frame.get("rgb_sha256") not in (None, frame.rgb_sha256):
        detail += " (the decoded reference frame differs from the stamped one: another JPEG decoder)"
    where = f"on {frame.source} against the fp32 ONNX Runtime reference in '{onnx_path}'"
    if passed:
        return SelfTestResult(PASSED, f"self-test passed: {what} {where}: {detail}", info.backend, info.precision,
                              versions, error, bound)
    return SelfTestResult(FAILED, f"self-test FAILED: {what} {where}: {detail}", info.backend, info.precision,
                          versions, error, bound, nonfinite)


def checked_engine(
    create: Callable[..., DepthEngine],
    model_path: str,
    bound: float = DEFAULT_ABS_REL_BOUND,
    on_fail: str = "refuse",
    **engine_args,
) -> tuple[DepthEngine, list[SelfTestResult]]:
    """``create(model_path, **engine_args)``, self-tested; on failure refuse (SelfTestError) or fall back.

    The fallback is fp32 ONNX Runtime on the ONNX holding the reference, itself self-tested; an fp32 ONNX Runtime
    engine that fails has nothing to fall back to (the model file disagrees with its own reference) and is refused.
    Returns the engine in use and the results (the failed one first when it fell back).
    """
    if on_fail not in ON_FAIL_CHOICES:
        raise ConfigurationError(f"on_fail '{on_fail}' is unknown; choose one of {', '.join(ON_FAIL_CHOICES)}")
    engine = create(model_path, **engine_args)
    try:
        result = run_self_test(engine, model_path, bound)
    except Exception:
        engine.close()
        raise
    if not result.failed:
        return engine, [result]
    engine.close()
    is_reference_engine = result.backend == "onnxruntime" and result.precision == "fp32"
    fallback_path = reference_model_path(model_path)
    if on_fail == "refuse" or is_reference_engine or fallback_path is None:
        hint = ("the model file does not reproduce its own reference: it is corrupt or its weights were changed "
                "after stamping; re-export it (depth-export) or re-stamp it (depth-stamp-reference) if the change "
                "is intended") if is_reference_engine else (
                "use precision:=fp32 or backend:=onnxruntime, raise self_test_bound, or set "
                "on_self_test_fail:=fallback to run fp32 ONNX Runtime instead")
        raise SelfTestError(f"refusing the engine: {result.message}. {hint}")
    fallback_args = {k: v for k, v in engine_args.items() if k in ("device", "threads")}
    fallback = create(str(fallback_path), backend="onnxruntime", precision="fp32", **fallback_args)
    try:
        second = run_self_test(fallback, str(fallback_path), bound)
    except Exception:
        fallback.close()
        raise
    if second.failed:
        fallback.close()
        raise SelfTestError(f"refusing the engine: {result.message}; the fp32 ONNX Runtime fallback fails too: "
                            f"{second.message}")
    return fallback, [result, second]
