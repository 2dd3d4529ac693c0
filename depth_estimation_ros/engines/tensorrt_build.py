"""TensorRT build: the probe (import, supported versions 10 and 11, CUDA device index) and the builder.

``build_serialized_engine``: network from ``OnnxParser.parse_from_file`` with every parser error surfaced,
workspace memory-pool limit, a timing-cache file reused across builds, one optimisation profile pinned to the input
shape. Precision:

* TensorRT 11 has only strongly typed networks: precision comes from the ONNX (fp16 variant from
  onnx_precision.convert_to_fp16, INT8 Q/DQ variant from onnx_precision.quantize_int8). The STRONGLY_TYPED flag is
  still set (accepted and ignored by 11, required by 10 for the same behaviour).
* TensorRT 10 builds the same fp16 / Q/DQ ONNX strongly typed. With ``legacy_precision_flags=True`` it may instead
  take the fp32 ONNX weakly typed with BuilderFlag.FP16 (the JetPack 6 habit); INT8 always goes through Q/DQ.

``PreparedEngine`` is what tensorrt_prepare hands to the runtime (tensorrt_engine).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from depth_estimation_ros.data.atomic_files import write_bytes_atomically
from depth_estimation_ros.engines import engine_cache, onnx_precision
from depth_estimation_ros.engines.accuracy_gate import GateResult
from depth_estimation_ros.engines.base import EngineError
from depth_estimation_ros.onnx_contract.depth_onnx import INPUT_NAME

LOG = logging.getLogger(__name__)
DEFAULT_WORKSPACE_BYTES = 1 << 30
SUPPORTED_MAJOR_VERSIONS = (10, 11)
NOT_INSTALLED = "TensorRT is not installed (no NVIDIA GPU / TensorRT wheels on this machine)"


def import_tensorrt():
    try:
        import tensorrt
    except ImportError as exc:
        raise EngineError(f"{NOT_INSTALLED}; use backend:=torch or backend:=onnxruntime") from exc
    return tensorrt


def tensorrt_major_version(version: str) -> int:
    """'10.3.0.30' -> 10; raise for versions this code does not support."""
    try:
        major = int(str(version).split(".")[0])
    except ValueError as exc:
        raise EngineError(f"cannot read the TensorRT version '{version}'") from exc
    if major not in SUPPORTED_MAJOR_VERSIONS:
        raise EngineError(
            f"TensorRT {version} is not supported; this package builds with TensorRT 10.x (JetPack 6) or 11.x"
        )
    return major


def device_index(device: str) -> int:
    """'cuda:1' -> 1, 'cuda' -> 0; anything else is an error (TensorRT runs on a GPU)."""
    if device in ("cuda", "gpu"):
        return 0
    if device.startswith("cuda:") and device[5:].isdigit():
        return int(device[5:])
    raise EngineError(f"TensorRT runs on a CUDA device; device '{device}' is not one (use cuda:0)")


def collecting_logger(trt, min_severity):
    """A trt.ILogger that forwards to Python logging and keeps errors for the exception message."""

    class CollectingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg):  # TensorRT callback
            level = int(severity)  # INTERNAL_ERROR 0, ERROR 1, WARNING 2, INFO 3, VERBOSE 4
            if level <= int(trt.ILogger.Severity.ERROR):
                self.errors.append(str(msg))
                LOG.error("TensorRT: %s", msg)
            elif level <= int(min_severity):
                LOG.log(logging.WARNING if level == int(trt.ILogger.Severity.WARNING) else logging.DEBUG,
                        "TensorRT: %s", msg)

    return CollectingLogger()


def _describe_parser_error(error) -> str:
    """'node 12 (/decoder/Resize_3, Resize): <description>' from a TensorRT ParserError."""
    where = [str(getattr(error, attr)()) for attr in ("node", "node_name", "node_operator") if hasattr(error, attr)]
    return f"node {' / '.join(where)}: {error.desc()} [{error.code()}]"


def build_serialized_engine(
    onnx_path: str | os.PathLike,
    precision: str,
    input_shape: tuple[int, int, int, int],
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
    timing_cache_path: str | os.PathLike | None = None,
    legacy_precision_flags: bool = False,
) -> bytes:
    """Build a serialized engine for ``onnx_path`` (already in the wanted precision unless legacy flags are used)."""
    trt = import_tensorrt()
    major = tensorrt_major_version(trt.__version__)
    declared = onnx_precision.onnx_declared_precision(onnx_path)
    weak_fp16 = legacy_precision_flags and major == 10 and precision == "fp16" and declared == "fp32"
    if declared != precision and not weak_fp16:
        raise EngineError(
            f"'{onnx_path}' is a {declared} ONNX but a {precision} engine was requested; TensorRT {trt.__version__} "
            "builds strongly typed networks, so convert the ONNX first (depth-build-engine does it)"
            + (" or allow the legacy FP16 builder flag (TensorRT 10 only)" if major == 10 else "")
        )
    logger = collecting_logger(trt, trt.ILogger.Severity.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if not weak_fp16:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [_describe_parser_error(parser.get_error(index)) for index in range(parser.num_errors)]
        raise EngineError(f"TensorRT's ONNX parser rejected '{onnx_path}':\n  " + "\n  ".join(errors or logger.errors))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if weak_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    timing_cache = None
    if timing_cache_path is not None:
        cached = Path(timing_cache_path).read_bytes() if Path(timing_cache_path).is_file() else b""
        timing_cache = config.create_timing_cache(cached)
        config.set_timing_cache(timing_cache, ignore_mismatch=False)
    profile = builder.create_optimization_profile()
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        shape = tuple(input_shape) if tensor.name == INPUT_NAME else tuple(max(d, 1) for d in tensor.shape)
        profile.set_shape(tensor.name, shape, shape, shape)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(
            f"TensorRT {trt.__version__} failed to build '{onnx_path}' ({precision}): "
            + ("; ".join(logger.errors) or "see the TensorRT log above")
        )
    if timing_cache_path is not None:
        write_bytes_atomically(timing_cache_path, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


@dataclass
class PreparedEngine:
    """A serialized engine valid for this GPU and TensorRT, with what it was built from; ``TensorRTEngine`` runs it."""

    engine_path: Path
    engine_bytes: bytes
    key: engine_cache.EngineCacheKey
    source_onnx: Path  # the model the user gave (its metadata describes the network)
    onnx_path: Path  # the ONNX actually built (source_onnx, or its fp16 / INT8 variant)
    precision: str
    device: str
    built: bool
    gate: GateResult | None = None
    notes: list[str] = field(default_factory=list)
