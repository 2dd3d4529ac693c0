"""TensorRT engine preparation: ``prepare_engine`` derives the ONNX variant if needed (onnx_precision), looks the
engine up in the cache (engine_cache: ONNX sha256 + TensorRT version + GPU + compute capability + precision + input
shape), builds and stores it on a miss (tensorrt_build), and runs the accuracy gate against fp32 ONNX Runtime on the
calibration frames after a reduced-precision build, refusing it or falling back to fp32.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from depth_estimation_ros.engines import engine_cache, onnx_precision
from depth_estimation_ros.engines.accuracy_gate import (
    DEFAULT_ABS_REL_BOUND,
    enforce_gate,
    evaluate_gate,
)
from depth_estimation_ros.engines.base import EngineError
from depth_estimation_ros.engines.cuda_device import gpu_identity
from depth_estimation_ros.engines.tensorrt_build import (
    DEFAULT_WORKSPACE_BYTES,
    PreparedEngine,
    build_serialized_engine,
    device_index,
    import_tensorrt,
    tensorrt_major_version,
)
from depth_estimation_ros.engines.tensorrt_engine import TensorRTEngine
from depth_estimation_ros.onnx_contract.depth_onnx import (
    onnx_input_shape,
    read_metadata,
)

LOG = logging.getLogger(__name__)


def _variant_onnx(
    onnx_path: Path,
    precision: str,
    cache_dir: Path,
    calibration_frames: np.ndarray | None,
    tool: str,
    int8_scope: str = "decoder",
    int8_float_precision: str | None = None,
) -> Path:
    """The ONNX to build for ``precision``: the given file if it already is, else a derived variant, reused while its
    metadata records the same source sha256 (and, for INT8, the same scope, float precision and calibration
    frames)."""
    declared = onnx_precision.onnx_declared_precision(onnx_path)
    if declared == precision:
        return onnx_path
    if declared != "fp32":
        raise EngineError(
            f"'{onnx_path}' is a {declared} ONNX; a {precision} engine needs the fp32 export (or a {precision} one)"
        )
    stamp = {"source_onnx_sha256": engine_cache.file_sha256(onnx_path)}
    has_frames = calibration_frames is not None and len(calibration_frames) > 0
    if precision == "int8":
        stamp["int8_scope"] = int8_scope
        stamp["int8_float_precision"] = onnx_precision.resolve_int8_float_precision(int8_float_precision, tool)
        if has_frames:
            frames = np.ascontiguousarray(calibration_frames, dtype=np.float32)
            stamp["calibration_sha256"] = hashlib.sha256(frames.tobytes()).hexdigest()
    variant = onnx_precision.variant_path(onnx_path, precision, cache_dir)
    if variant.is_file():
        recorded = read_metadata(variant)
        if all(recorded.get(key) == value for key, value in stamp.items()):
            return variant
    if precision == "fp16":
        onnx_precision.convert_to_fp16(onnx_path, variant, tool=tool, metadata=stamp)
        return variant
    if not has_frames:
        raise EngineError(
            f"an INT8 engine for '{onnx_path}' needs calibration frames: pass calibration:=<image folder or "
            "rosbag> (with calibration_topic), or build ahead with depth-build-engine --precision int8 "
            "--calibration ..., or pass an INT8 Q/DQ ONNX"
        )
    onnx_precision.quantize_int8(onnx_path, variant, calibration_frames, tool=tool, metadata=stamp, scope=int8_scope,
                                 float_precision=stamp["int8_float_precision"])
    return variant


def prepare_engine(
    onnx_path: str | os.PathLike,
    precision: str = "fp32",
    device: str = "cuda:0",
    cache_dir: str | os.PathLike | None = None,
    calibration_frames: np.ndarray | None = None,
    accuracy_bound: float = DEFAULT_ABS_REL_BOUND,
    on_gate_fail: str = "refuse",
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
    legacy_precision_flags: bool = False,
    force_rebuild: bool = False,
    conversion_tool: str = "auto",
    int8_scope: str = "decoder",
    int8_float_precision: str | None = None,
) -> PreparedEngine:
    """Return a valid engine for (ONNX, precision, this GPU, this TensorRT), building it if the cache has none.

    INT8 only (onnx_precision.quantize_int8): ``int8_scope`` 'decoder' leaves the image encoder unquantized, 'all'
    quantizes it too; ``int8_float_precision`` fp16 / fp32 is what the unquantized layers run in (None: fp16 with
    ModelOpt, fp32 with the ONNX Runtime tool).
    """
    trt = import_tensorrt()
    tensorrt_major_version(trt.__version__)
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"model file '{onnx_path}' does not exist; pass an exported .onnx (depth-export)")
    if precision not in onnx_precision.PRECISIONS:
        raise EngineError(f"precision '{precision}' is unknown; choose one of {', '.join(onnx_precision.PRECISIONS)}")
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    input_shape = onnx_input_shape(onnx_path)
    weak_fp16 = legacy_precision_flags and precision == "fp16" and tensorrt_major_version(trt.__version__) == 10
    build_onnx = onnx_path if weak_fp16 else _variant_onnx(onnx_path, precision, cache_dir, calibration_frames,
                                                            conversion_tool, int8_scope, int8_float_precision)
    key = _cache_key(trt, build_onnx, device, precision, input_shape)
    engine_path = engine_cache.default_engine_path(cache_dir, onnx_path, key)
    if not force_rebuild:
        lookup = engine_cache.lookup_engine(engine_path, key)
        if lookup.hit:
            return PreparedEngine(engine_path, lookup.engine_bytes, key, onnx_path, build_onnx, precision, device,
                                  False, notes=[lookup.reason])
        LOG.info("building a TensorRT engine: %s", lookup.reason)
    engine_bytes = build_serialized_engine(
        build_onnx, precision, input_shape, workspace_bytes, cache_dir / "timing.cache", legacy_precision_flags
    )
    prepared = PreparedEngine(engine_path, engine_bytes, key, onnx_path, build_onnx, precision, device, True)
    if precision != "fp32":
        _run_accuracy_gate(prepared, onnx_path, precision, calibration_frames, accuracy_bound)
        if prepared.gate is not None and not enforce_gate(
                prepared.gate, on_gate_fail, f"the {precision} TensorRT engine for '{onnx_path}'"):
            LOG.warning("%s; falling back to fp32", prepared.gate.describe())
            fallback = prepare_engine(onnx_path, "fp32", device=device, cache_dir=cache_dir,
                                      accuracy_bound=accuracy_bound, on_gate_fail=on_gate_fail,
                                      workspace_bytes=workspace_bytes, force_rebuild=force_rebuild,
                                      conversion_tool=conversion_tool)
            fallback.notes.append(f"fell back to fp32: {prepared.gate.describe()}")
            fallback.gate = prepared.gate
            return fallback
    extra = {"source_onnx": str(onnx_path), "notes": prepared.notes}
    if prepared.gate is not None:
        extra["accuracy_gate"] = {"abs_rel": prepared.gate.abs_rel, "bound": prepared.gate.bound,
                                  "frames": prepared.gate.frames}
    engine_cache.store_engine(engine_path, key, engine_bytes, extra)
    return prepared


def _cache_key(trt, build_onnx: Path, device: str, precision: str,
               input_shape: tuple[int, int, int, int]) -> engine_cache.EngineCacheKey:
    """What a cached engine must match: the ONNX built from, TensorRT, the GPU, the precision, the input shape."""
    gpu_name, capability = gpu_identity(device_index(device))
    return engine_cache.EngineCacheKey(
        onnx_sha256=engine_cache.file_sha256(build_onnx),
        tensorrt_version=str(trt.__version__),
        gpu_name=gpu_name,
        compute_capability=capability,
        precision=precision,
        input_shape=input_shape,
    )


def _run_accuracy_gate(prepared: PreparedEngine, onnx_path: Path, precision: str,
                       calibration_frames: np.ndarray | None, accuracy_bound: float) -> None:
    """Set ``prepared.gate``: the built reduced-precision engine against fp32 ONNX Runtime on the calibration
    frames; without frames, a note and a warning instead."""
    if calibration_frames is None or len(calibration_frames) == 0:
        prepared.notes.append("accuracy gate skipped: no calibration frames were given")
        LOG.warning("%s engine built without an accuracy check: pass calibration frames to gate it", precision)
        return
    from depth_estimation_ros.engines.onnxruntime_engine import OnnxRuntimeEngine

    candidate = TensorRTEngine(prepared)
    reference = OnnxRuntimeEngine(str(onnx_path))
    prepared.gate = evaluate_gate(candidate.infer, reference.infer, calibration_frames, precision, accuracy_bound)
    candidate.close()
    LOG.info(prepared.gate.describe())


def default_cache_dir() -> Path:
    """$DEPTH_ENGINE_CACHE, else $XDG_CACHE_HOME/depth_estimation_ros/engines (~/.cache/...)."""
    if os.environ.get("DEPTH_ENGINE_CACHE"):
        return Path(os.environ["DEPTH_ENGINE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "depth_estimation_ros" / "engines"
