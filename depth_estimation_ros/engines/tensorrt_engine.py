"""TensorRT engine: build from the exported ONNX (TensorRT 10 and 11), cache, accuracy gate, and run.

Build (``build_serialized_engine``): network from ``OnnxParser.parse_from_file`` with every parser error surfaced,
workspace memory-pool limit, a timing-cache file reused across builds, one optimisation profile pinned to the input
shape. Precision:

* TensorRT 11 has only strongly typed networks: precision comes from the ONNX (fp16 variant from
  onnx_precision.convert_to_fp16, INT8 Q/DQ variant from onnx_precision.quantize_int8). The STRONGLY_TYPED flag is
  still set (accepted and ignored by 11, required by 10 for the same behaviour).
* TensorRT 10 builds the same fp16 / Q/DQ ONNX strongly typed. With ``legacy_precision_flags=True`` it may instead
  take the fp32 ONNX weakly typed with BuilderFlag.FP16 (the JetPack 6 habit); INT8 always goes through Q/DQ.

``prepare_engine`` derives the ONNX variant if needed, looks the engine up in the cache (engine_cache: ONNX sha256 +
TensorRT version + GPU + compute capability + precision + input shape), builds and stores it on a miss, and runs the
accuracy gate against fp32 ONNX Runtime on the calibration frames after a reduced-precision build.

Runtime (``TensorRTEngine(prepare_engine(...))``): ``execute_async_v3`` with tensor addresses set by name once, on
preallocated device buffers: torch CUDA tensors when torch has CUDA (then pre/post-processing also run on the GPU),
else pycuda page-locked host buffers, device buffers and a stream in the device's primary context (the one TensorRT's
runtime API uses). The engine is loaded in one thread and run in another (the node's worker), so every call makes
the engine's device (torch) or context (pycuda) current in the calling thread first. Nothing is allocated per frame.
"""

from __future__ import annotations

import hashlib
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from depth_estimation_ros.engines import engine_cache, onnx_precision
from depth_estimation_ros.engines.accuracy_gate import (
    DEFAULT_ABS_REL_BOUND,
    GateResult,
    enforce_gate,
    evaluate_gate,
)
from depth_estimation_ros.engines.base import DepthEngine, EngineError, EngineInfo
from depth_estimation_ros.engines.cuda_device import gpu_identity, torch_cuda_available
from depth_estimation_ros.frame.stage_timer import StageTimer
from depth_estimation_ros.onnx_contract.depth_onnx import (
    DEPTH_OUTPUT,
    INPUT_NAME,
    STD_OUTPUT,
    check_tensor_names,
    input_size,
    load_onnx,
    model_metadata,
    read_metadata,
)

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


def onnx_input_shape(onnx_path: str | os.PathLike) -> tuple[int, int, int, int]:
    """(1, 3, H, W) of the ONNX input 'image' (batch pinned to 1; H, W static or from the metadata)."""
    model = load_onnx(onnx_path)
    inputs = {v.name: v for v in model.graph.input}
    check_tensor_names(list(inputs), [v.name for v in model.graph.output], onnx_path)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[INPUT_NAME].type.tensor_type.shape.dim]
    return (1, 3, *input_size(dims, model_metadata(model), onnx_path))


# -- build ---------------------------------------------------------------------------------------------------------
def _collecting_logger(trt, min_severity):
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
    logger = _collecting_logger(trt, trt.ILogger.Severity.WARNING)
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
        engine_cache.atomic_write_bytes(timing_cache_path, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


# -- cache + variants + gate ---------------------------------------------------------------------------------------
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
    if precision not in ("fp16", "int8"):
        raise EngineError(f"precision '{precision}' is unknown; choose fp32, fp16 or int8")
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
    if precision not in ("fp32", "fp16", "int8"):
        raise EngineError(f"precision '{precision}' is unknown; choose fp32, fp16 or int8")
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


# -- runtime -------------------------------------------------------------------------------------------------------
class TensorRTEngine(DepthEngine):
    """Runs a prepared (built or cached) TensorRT engine; batch 1 profile, larger batches run frame by frame."""

    def __init__(self, prepared: PreparedEngine) -> None:
        trt = import_tensorrt()
        model_path = str(prepared.source_onnx)
        metadata = read_metadata(model_path)
        metadata.update({"engine_path": str(prepared.engine_path), "tensorrt_version": prepared.key.tensorrt_version})
        if prepared.gate is not None:
            metadata["accuracy_gate_abs_rel"] = f"{prepared.gate.abs_rel:.5f}"
        if prepared.notes:
            metadata["engine_notes"] = "; ".join(prepared.notes)
        index = device_index(prepared.device)
        self._buffers = _TorchBuffers(index) if torch_cuda_available() else _PycudaBuffers(index)
        try:
            with self._buffers.active():
                self._logger = _collecting_logger(trt, trt.ILogger.Severity.WARNING)
                self._runtime = trt.Runtime(self._logger)
                self._engine = self._runtime.deserialize_cuda_engine(prepared.engine_bytes)
                if self._engine is None:
                    raise EngineError(
                        f"TensorRT {trt.__version__} cannot deserialize the engine '{prepared.engine_path}' for "
                        f"'{model_path}' ({'; '.join(self._logger.errors) or 'built by another TensorRT or GPU?'}); "
                        "delete it or run depth-build-engine --force"
                    )
                self._context = self._engine.create_execution_context()
                names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
                inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
                outputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
                if inputs != [INPUT_NAME] or DEPTH_OUTPUT not in outputs:
                    raise EngineError(
                        f"engine for '{model_path}' has inputs {inputs} and outputs {outputs}; expected '{INPUT_NAME}' "
                        f"-> '{DEPTH_OUTPUT}'"
                    )
                shape = tuple(self._engine.get_tensor_shape(INPUT_NAME))
                if -1 in shape:  # dynamic batch in the ONNX: the profile pins it to 1
                    shape = tuple(self._engine.get_tensor_profile_shape(INPUT_NAME, 0)[1])
                self._context.set_input_shape(INPUT_NAME, shape)
                shapes = {n: tuple(self._context.get_tensor_shape(n)) for n in names}
                dtypes = {n: np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))) for n in names}
                self._buffers.allocate(shapes, dtypes)
                for name in names:
                    self._context.set_tensor_address(name, self._buffers.address(name))
        except Exception:  # give the device memory and (pycuda) the retained context back
            self._context = self._engine = None
            self._buffers.release()
            raise
        self.info = EngineInfo("tensorrt", prepared.precision, f"cuda:{index}", int(shape[2]), int(shape[3]),
                               model_path, metadata, has_std=STD_OUTPUT in outputs)
        self._std_scale = self.info.uncertainty_scale

    def _execute(self) -> None:
        if not self._context.execute_async_v3(self._buffers.stream_handle):
            raise EngineError(f"TensorRT execution failed for '{self.info.model_path}'")

    def _run(self, batch: np.ndarray, names: tuple[str, ...]) -> list[np.ndarray]:
        expected = (3, self.info.input_height, self.info.input_width)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != expected:
            raise EngineError(
                f"input batch has shape {batch.shape}; this engine expects (N, {', '.join(map(str, expected))})"
            )
        frames: list[list[np.ndarray]] = [[] for _ in names]
        with self._buffers.active():
            for frame in batch:
                self._buffers.upload(INPUT_NAME, frame[None])
                self._execute()
                for out, name in zip(frames, names):
                    out.append(self._buffers.download(name))
        return [np.concatenate(out, axis=0).astype(np.float32, copy=False) for out in frames]

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch, (DEPTH_OUTPUT,))[0]

    def infer_with_std(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if not self.info.has_std:
            return self.infer(batch), None
        depth, std = self._run(batch, (DEPTH_OUTPUT, STD_OUTPUT))
        return depth, std * np.float32(self._std_scale)

    def estimate(
        self, rgb: np.ndarray, output_size: tuple[int, int] | None = None, timer: StageTimer | None = None
    ) -> np.ndarray:
        if not isinstance(self._buffers, _TorchBuffers):
            return super().estimate(rgb, output_size, timer)  # pycuda only: pre/post on the CPU
        import torch

        from depth_estimation_ros.engines import torch_preprocessing

        timer = timer or StageTimer()
        out_h, out_w = output_size or (self.info.input_height, self.info.input_width)
        stream = self._buffers.stream
        with self._buffers.active(), torch.cuda.stream(stream):
            with timer.stage("preprocess"):
                image = self._buffers.uploader(rgb)
                batch = torch_preprocessing.to_network_input(
                    image, self.info.input_height, self.info.input_width, self._buffers.resizer
                )
                self._buffers.tensors[INPUT_NAME].copy_(batch)
                stream.synchronize()
            with timer.stage("inference"):
                self._execute()
                stream.synchronize()
            with timer.stage("postprocess"):
                depth = self._buffers.tensors[DEPTH_OUTPUT].float()
                return torch_preprocessing.resize_depth(depth, out_h, out_w)[0, 0].cpu().numpy()

    def estimate_with_std(
        self, rgb: np.ndarray, output_size: tuple[int, int] | None = None, timer: StageTimer | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if not isinstance(self._buffers, _TorchBuffers) or not self.info.has_std:
            return super().estimate_with_std(rgb, output_size, timer)
        import torch

        timer = timer or StageTimer()
        out_h, out_w = output_size or (self.info.input_height, self.info.input_width)
        depth = self.estimate(rgb, output_size, timer)  # leaves this frame's depth_std in its device buffer
        with self._buffers.active(), torch.cuda.stream(self._buffers.stream), timer.stage("postprocess"):
            from depth_estimation_ros.engines import torch_preprocessing

            std = self._buffers.tensors[STD_OUTPUT].float()
            resized = torch_preprocessing.resize_depth(std, out_h, out_w)[0, 0].cpu().numpy()
        return depth, resized * np.float32(self._std_scale)

    def close(self) -> None:
        """Release the execution context and engine (in their device context), then the buffers."""
        if getattr(self, "_context", None) is None:
            return
        with self._buffers.active():
            self._context = None
            self._engine = None
        self._buffers.release()


class _TorchBuffers:
    """Preallocated torch CUDA tensors per I/O tensor and a torch CUDA stream, on one device."""

    def __init__(self, index: int) -> None:
        import torch

        from depth_estimation_ros.engines.torch_preprocessing import DeviceAreaResizer, FrameUploader

        self.device = torch.device(f"cuda:{index}")
        self.stream = torch.cuda.Stream(self.device)
        self.stream_handle = self.stream.cuda_stream
        self.resizer = DeviceAreaResizer()
        self.uploader = FrameUploader(self.device)
        self.tensors: dict = {}
        self._host: dict = {}

    def active(self):
        """Make this device current in the calling thread (TensorRT runs on the current device)."""
        import torch

        return torch.cuda.device(self.device)

    def allocate(self, shapes: dict[str, tuple], dtypes: dict[str, np.dtype]) -> None:
        import torch

        for name, shape in shapes.items():
            dtype = torch.from_numpy(np.empty(0, dtypes[name])).dtype
            self.tensors[name] = torch.empty(shape, dtype=dtype, device=self.device)
            self._host[name] = torch.empty(shape, dtype=dtype).pin_memory()

    def address(self, name: str) -> int:
        return int(self.tensors[name].data_ptr())

    def upload(self, name: str, array: np.ndarray) -> None:
        import torch

        self._host[name].copy_(torch.from_numpy(np.ascontiguousarray(array, dtype=self._host[name].numpy().dtype)))
        with torch.cuda.stream(self.stream):
            self.tensors[name].copy_(self._host[name], non_blocking=True)

    def download(self, name: str) -> np.ndarray:
        import torch

        with torch.cuda.stream(self.stream):
            self._host[name].copy_(self.tensors[name], non_blocking=True)
        self.stream.synchronize()
        return self._host[name].numpy().copy()

    def release(self) -> None:
        self.tensors.clear()
        self._host.clear()


class _PycudaBuffers:
    """Page-locked host buffers, device buffers and a stream from pycuda, in the device's primary context."""

    def __init__(self, index: int) -> None:
        try:
            import pycuda.driver as cuda
        except ImportError as exc:
            raise EngineError("the TensorRT runtime needs torch with CUDA or pycuda; pip install pycuda") from exc
        cuda.init()
        self._cuda = cuda
        self._context = cuda.Device(index).retain_primary_context()
        with self.active():
            self.stream = cuda.Stream()
        self.stream_handle = self.stream.handle
        self._host: dict = {}
        self._device: dict = {}

    @contextmanager
    def active(self):
        """Push the primary context on the calling thread for the duration (pycuda calls need a current context)."""
        self._context.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    def allocate(self, shapes: dict[str, tuple], dtypes: dict[str, np.dtype]) -> None:
        with self.active():
            for name, shape in shapes.items():
                self._host[name] = self._cuda.pagelocked_empty(shape, dtypes[name])
                self._device[name] = self._cuda.mem_alloc(self._host[name].nbytes)

    def address(self, name: str) -> int:
        return int(self._device[name])

    def upload(self, name: str, array: np.ndarray) -> None:
        np.copyto(self._host[name], array, casting="same_kind")
        self._cuda.memcpy_htod_async(self._device[name], self._host[name], self.stream)

    def download(self, name: str) -> np.ndarray:
        self._cuda.memcpy_dtoh_async(self._host[name], self._device[name], self.stream)
        self.stream.synchronize()
        return self._host[name].copy()

    def release(self) -> None:
        with self.active():
            for buffer in self._device.values():
                buffer.free()
            self._device.clear()
            self._host.clear()
            self.stream = None
        self._context.detach()
