"""fp16 and INT8 (Q/DQ) variants of an exported depth ONNX, for strongly typed TensorRT builds.

TensorRT 11 takes precision from the ONNX itself (no FP16/INT8 builder flags), and TensorRT 10 accepts the same
files. So:

* fp16: the graph is converted to float16 except the numerically sensitive parts, which stay float32: the tail
  after the last learned layer, i.e. every node with no learned layer (Conv, ConvTranspose, Gemm, MatMul with
  learned weights) downstream of it — for LacDepth the log-binomial scores, their normalisation (softmax or its
  max/exp/sum form), the depth accumulation d = sum_k p(k) c(k), the bin centres and the final resampling; for the
  disparity networks the sigmoid-to-depth conversion — and individually every exp/log/pow/sqrt/division/reduction
  anywhere (LayerNorm statistics, attention scaling), and every sum or copy written as a layer with one repeated
  weight, with the nodes that read it. Inputs and outputs stay float32 (``image`` in, ``depth`` out).
* int8: explicit QuantizeLinear/DequantizeLinear pairs, symmetric (zero point 0, what TensorRT requires), weights per
  output channel, activation scales calibrated on real frames; the sensitive nodes above are not quantized. Scope
  ``decoder`` (default) also leaves the image encoder unquantized: on the trained bundled models, quantizing the
  EfficientNet-Lite encoder is what costs accuracy (abs_rel vs fp32 3.0-6.7 % with it, 0.1-0.8 % without (0.3-0.9 %
  with the float part fp16), against the 1 % gate; docs/engines.md), while the decoder and heads hold two thirds
  of the FLOPs. Scope ``all`` quantizes the encoder too. What INT8 leaves unquantized (the encoder in scope
  ``decoder``, the glue between quantized layers) is then made float16 like the fp16 variant, sensitive nodes
  excepted, so that a strongly typed build does not run it in fp32 (``float_precision``; ModelOpt only: ONNX
  Runtime's float16 converter would put a Cast between every DequantizeLinear and its layer).

NVIDIA ModelOpt (``modelopt.onnx.autocast``, ``modelopt.onnx.quantization``) is used when it imports; otherwise
ONNX Runtime's float16 converter and static quantization (QDQ format) do the same job. ``tool`` picks explicitly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from depth_estimation_ros.data.atomic_files import temporary_directory, write_bytes_atomically
from depth_estimation_ros.errors import ModelError
from depth_estimation_ros.onnx_contract.depth_onnx import (
    DEPTH_OUTPUT,
    INPUT_NAME,
    PRECISION_KEY,
    load_onnx,
    model_metadata,
    replace_metadata,
)

TOOLS = ("auto", "modelopt", "onnxruntime")
PRECISIONS = ("fp32", "fp16", "int8")  # what an engine can run; the ONNX variants are the last two
INT8_SCOPES = ("decoder", "all")
INT8_FLOAT_PRECISIONS = ("fp16", "fp32")
ENCODER_PREFIX = "/encoder/"  # torch.onnx names nodes after the module path; every depth network has `encoder`

# Kept in float32 wherever they occur: fp16 range/precision is not enough for them (exp overflow past 11,
# log/pow/sqrt/div amplify rounding, reductions accumulate it).
ALWAYS_FP32_OPS = frozenset(
    {
        "Softmax",
        "LogSoftmax",
        "Log",
        "Exp",
        "Pow",
        "Sqrt",
        "Reciprocal",
        "Div",
        "CumSum",
        "ReduceSum",
        "ReduceMean",
        "ReduceProd",
        "ReduceLogSumExp",
        "ReduceSumSquare",
        "ReduceL2",
    }
)


class PrecisionConversionError(ModelError):
    """The fp16 / INT8 variant cannot be produced; the message names the model and the fix."""


def modelopt_available() -> bool:
    try:
        import modelopt.onnx.autocast
        import modelopt.onnx.quantization  # noqa: F401
    except Exception:
        return False
    return True


def _resolve_tool(tool: str) -> str:
    if tool not in TOOLS:
        raise ValueError(f"tool '{tool}' is unknown; choose one of {', '.join(TOOLS)}")
    if tool == "auto":
        return "modelopt" if modelopt_available() else "onnxruntime"
    if tool == "modelopt" and not modelopt_available():
        raise PrecisionConversionError(
            "nvidia-modelopt (with onnx-graphsurgeon, onnxconverter-common, polygraphy, lief) is not importable; "
            "install it or use tool='onnxruntime'"
        )
    return tool


def name_unnamed_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give every node a unique name (tools select nodes by name); named nodes keep theirs."""
    used = {n.name for n in model.graph.node if n.name}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            candidate = f"{node.op_type}_{index}"
            while candidate in used:
                candidate += "_"
            node.name = candidate
            used.add(candidate)
    return model


def _children(nodes: list[onnx.NodeProto]) -> list[set[int]]:
    """For each node, the indices of the nodes that consume one of its outputs."""
    producer = {out: i for i, n in enumerate(nodes) for out in n.output if out}
    children: list[set[int]] = [set() for _ in nodes]
    for i, node in enumerate(nodes):
        for tensor in node.input:
            if tensor in producer:
                children[producer[tensor]].add(i)
    return children


def _is_arithmetic(node: onnx.NodeProto, initializers: dict[str, onnx.TensorProto]) -> bool:
    """A MatMul or Conv whose constant weights are one repeated value: a sum or a copy written as a layer (LacDepth's
    head sums bins by a MatMul; the shared-gate attention copies a one-channel map to every channel by a 1x1 Conv)."""
    if node.op_type not in ("MatMul", "Conv"):
        return False
    operands = node.input[1:2] if node.op_type == "Conv" else node.input  # a Conv's weights, not its bias
    weights = [initializers[name] for name in operands if name in initializers]
    return bool(weights) and all(np.unique(numpy_helper.to_array(w)).size == 1 for w in weights)


LAYER_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")  # learned layers, unless arithmetic (_is_arithmetic)


def numerically_sensitive_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of nodes that must stay float32 (see module docstring). Unnamed nodes are named first."""
    nodes = list(name_unnamed_nodes(model).graph.node)
    initializers = {i.name: i for i in model.graph.initializer}
    children = _children(nodes)
    arithmetic = {i for i, n in enumerate(nodes) if _is_arithmetic(n, initializers)}
    learned = {i for i, n in enumerate(nodes) if n.op_type in LAYER_OPS and i not in arithmetic}
    # arithmetic layers and the nodes that read them too: what they copy can span more than INT8 holds (the
    # reciprocal of a window's mean gate, up to 1e4)
    keep = {i for i, n in enumerate(nodes) if n.op_type in ALWAYS_FP32_OPS}
    keep |= arithmetic | {c for i in arithmetic for c in children[i]}
    # nodes are topologically sorted in ONNX: walk backwards, marking whether a learned layer lies downstream
    learned_downstream = [False] * len(nodes)
    for i in range(len(nodes) - 1, -1, -1):
        learned_downstream[i] = any(c in learned or learned_downstream[c] for c in children[i])
    keep |= {i for i in range(len(nodes)) if not learned_downstream[i] and i not in learned}
    return [nodes[i].name for i in sorted(keep)]


def encoder_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the image encoder's nodes (those under the exported module path ``/encoder/``)."""
    return [n.name for n in model.graph.node if n.name.startswith(ENCODER_PREFIX)]


def _exact_name_patterns(names: Iterable[str]) -> list[str]:
    return [f"^{re.escape(name)}$" for name in names]


@dataclass(frozen=True)
class PrecisionSummary:
    """What is inside an ONNX, precision-wise (shown by depth-build-engine, asserted in tests)."""

    nodes: int
    fp16_nodes: int  # nodes producing at least one float16 tensor (or Cast to float16)
    fp16_initializers: int
    quantize_nodes: int
    dequantize_nodes: int
    input_type: str
    output_type: str

    @property
    def has_qdq(self) -> bool:
        return self.quantize_nodes > 0 and self.dequantize_nodes > 0


def _elem_name(elem_type: int) -> str:
    return onnx.TensorProto.DataType.Name(elem_type).lower()


def tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type (onnx.TensorProto.DataType) of every tensor: inputs, outputs, initializers and, by shape
    inference, the intermediate ones."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    types.update({v.name: v.type.tensor_type.elem_type for v in inferred.graph.output})
    types.update({v.name: v.type.tensor_type.elem_type for v in inferred.graph.input})
    types.update({i.name: i.data_type for i in inferred.graph.initializer})
    return types


def precision_summary(model: onnx.ModelProto) -> PrecisionSummary:
    types = tensor_types(model)
    fp16 = onnx.TensorProto.FLOAT16
    fp16_nodes = sum(1 for n in model.graph.node if any(types.get(o) == fp16 for o in n.output))
    inputs = {v.name: v for v in model.graph.input}
    outputs = {v.name: v for v in model.graph.output}
    return PrecisionSummary(
        nodes=len(model.graph.node),
        fp16_nodes=fp16_nodes,
        fp16_initializers=sum(1 for i in model.graph.initializer if i.data_type == fp16),
        quantize_nodes=sum(1 for n in model.graph.node if n.op_type == "QuantizeLinear"),
        dequantize_nodes=sum(1 for n in model.graph.node if n.op_type == "DequantizeLinear"),
        input_type=_elem_name(inputs[INPUT_NAME].type.tensor_type.elem_type) if INPUT_NAME in inputs else "missing",
        output_type=(
            _elem_name(outputs[DEPTH_OUTPUT].type.tensor_type.elem_type) if DEPTH_OUTPUT in outputs else "missing"
        ),
    )


def _load_depth_onnx(path: str | os.PathLike) -> onnx.ModelProto:
    if not os.path.isfile(path):
        raise PrecisionConversionError(f"ONNX model '{path}' does not exist; export one with depth-export")
    model = load_onnx(path, load_external_data=True)
    inputs = [v.name for v in model.graph.input]
    outputs = [v.name for v in model.graph.output]
    if INPUT_NAME not in inputs or DEPTH_OUTPUT not in outputs:
        raise PrecisionConversionError(
            f"'{path}' has inputs {inputs} and outputs {outputs}; expected input '{INPUT_NAME}' and output "
            f"'{DEPTH_OUTPUT}'. Re-export it with depth-export."
        )
    elem = model.graph.input[inputs.index(INPUT_NAME)].type.tensor_type.elem_type
    if elem != onnx.TensorProto.FLOAT:
        raise PrecisionConversionError(
            f"'{path}' input '{INPUT_NAME}' is {_elem_name(elem)}; convert from the fp32 export, not from a variant"
        )
    if declared_precision(model) != "fp32":
        raise PrecisionConversionError(
            f"'{path}' is already a {declared_precision(model)} variant; convert from the fp32 export"
        )
    return name_unnamed_nodes(model)


def sort_topologically(model: onnx.ModelProto) -> onnx.ModelProto:
    """Reorder graph nodes so every input is produced before use (ONNX requires it; ORT's float16 converter
    appends its input casts at the end)."""
    nodes = list(model.graph.node)
    available = {v.name for v in model.graph.input} | {i.name for i in model.graph.initializer} | {""}
    ordered: list[onnx.NodeProto] = []
    pending = nodes
    while pending:
        ready = [n for n in pending if all(t in available for t in n.input)]
        if not ready:
            missing = sorted({t for n in pending for t in n.input if t not in available})[:5]
            raise PrecisionConversionError(f"the converted graph has a cycle or dangling inputs {missing}")
        for node in ready:
            available.update(node.output)
        ordered.extend(ready)
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
    del model.graph.node[:]
    model.graph.node.extend(ordered)
    return model


def _finish(model: onnx.ModelProto, source: onnx.ModelProto, dst: str | os.PathLike, extra: dict[str, str]) -> None:
    """Carry the source metadata over, add ``extra``, check and write atomically."""
    sort_topologically(model)
    metadata = {**model_metadata(source), **extra}
    replace_metadata(model, dict(sorted(metadata.items())))
    onnx.checker.check_model(model)
    write_bytes_atomically(dst, model.SerializeToString())


def _modelopt_fp16(model: onnx.ModelProto, keep_fp32: Iterable[str]) -> onnx.ModelProto:
    """ModelOpt's autocast to float16 with the named nodes kept float32 and float32 I/O. On a Q/DQ graph it also
    makes the Q/DQ scales float16 (opset 19), so each DequantizeLinear feeds its float16 layer directly."""
    from modelopt.onnx.autocast import convert_to_mixed_precision

    present = {node.name for node in model.graph.node}
    with temporary_directory() as tmp:
        named = os.path.join(tmp, "named.onnx")
        onnx.save(model, named)
        return convert_to_mixed_precision(
            onnx_path=named,
            low_precision_type="fp16",
            nodes_to_exclude=_exact_name_patterns(name for name in keep_fp32 if name in present),
            keep_io_types=True,
            providers=["cpu"],
        )


def drop_cast_round_trips(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove float32 -> float16 -> float32 Cast pairs, in place: ONNX Runtime's float16 converter puts one between
    every two nodes it keeps float32, which rounds the kept nodes' values to fp16 (and overflows a sum past 65504)
    although neither node runs in fp16. The consumers of such a pair read the float32 tensor directly."""
    nodes = list(model.graph.node)
    types = tensor_types(model)
    producer = {out: node for node in nodes for out in node.output}
    graph_outputs = {o.name for o in model.graph.output}

    def cast_to(node: onnx.NodeProto | None) -> int | None:
        if node is None or node.op_type != "Cast":
            return None
        return next((a.i for a in node.attribute if a.name == "to"), None)

    replaced: dict[str, str] = {}  # output of a down-cast -> the float32 tensor before the up-cast
    for node in nodes:
        up = producer.get(node.input[0]) if node.input else None
        if not (cast_to(node) == onnx.TensorProto.FLOAT and cast_to(up) == onnx.TensorProto.FLOAT16
                and types.get(up.input[0]) == onnx.TensorProto.FLOAT):
            continue
        if node.output[0] in graph_outputs:  # keep the output's name: an Identity of the float32 tensor
            node.op_type, node.input[0] = "Identity", up.input[0]
            del node.attribute[:]
        else:
            replaced[node.output[0]] = up.input[0]
    kept = [n for n in nodes if not (n.output and n.output[0] in replaced)]
    for node in kept:
        for index, name in enumerate(node.input):
            if name in replaced:
                node.input[index] = replaced[name]
    read = {name for node in kept for name in node.input} | graph_outputs
    kept = [n for n in kept if not (cast_to(n) == onnx.TensorProto.FLOAT16 and n.output[0] not in read)]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model


def convert_to_fp16(
    src: str | os.PathLike, dst: str | os.PathLike, tool: str = "auto", metadata: dict[str, str] | None = None
) -> PrecisionSummary:
    """Write the fp16 variant of ``src`` to ``dst`` (float32 I/O, sensitive nodes float32); ``metadata`` is added."""
    tool = _resolve_tool(tool)
    source = _load_depth_onnx(src)
    keep_fp32 = numerically_sensitive_nodes(source)
    if tool == "modelopt":
        converted = _modelopt_fp16(source, keep_fp32)
    else:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        converted = drop_cast_round_trips(convert_float_to_float16(
            onnx.ModelProto.FromString(source.SerializeToString()), keep_io_types=True, node_block_list=keep_fp32
        ))
    extra = {PRECISION_KEY: "fp16", "precision_tool": tool, "fp32_nodes": str(len(keep_fp32)), **(metadata or {})}
    _finish(converted, source, dst, extra)
    return precision_summary(onnx.load(str(dst)))


class _FrameReader:
    """onnxruntime.quantization CalibrationDataReader over (N, 3, H, W) frames, one frame per batch."""

    def __init__(self, frames: np.ndarray) -> None:
        self._frames = frames
        self._index = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._index >= len(self._frames):
            return None
        batch = np.ascontiguousarray(self._frames[self._index : self._index + 1], dtype=np.float32)
        self._index += 1
        return {INPUT_NAME: batch}

    def rewind(self) -> None:
        self._index = 0


def _check_frames(frames: np.ndarray, model: onnx.ModelProto, src: str | os.PathLike) -> None:
    dims = model.graph.input[[v.name for v in model.graph.input].index(INPUT_NAME)].type.tensor_type.shape.dim
    expected = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)[1:]
    if frames.ndim != 4 or frames.shape[1] != 3 or len(frames) == 0:
        raise PrecisionConversionError(f"calibration frames have shape {frames.shape}; expected (N>0, 3, H, W)")
    if any(e is not None and e != f for e, f in zip(expected, frames.shape[1:])):
        raise PrecisionConversionError(
            f"calibration frames are {frames.shape[1:]} but '{src}' expects {expected}; load them at the model's "
            "input size (calibration_frames.load_calibration_frames(source, H, W))"
        )


@contextmanager
def _onnxruntime_quantization_restored() -> Iterator[None]:
    """ModelOpt's quantize() monkey-patches ONNX Runtime's calibrators process-wide (and leaves them patched), which
    breaks a later onnxruntime.quantization.quantize_static in the same process. Undo that on exit."""
    from onnxruntime.quantization import base_quantizer, calibrate, qdq_quantizer

    classes = [
        calibrate.CalibraterBase,
        calibrate.MinMaxCalibrater,
        calibrate.HistogramCalibrater,
        calibrate.HistogramCollector,
        qdq_quantizer.QDQQuantizer,
        base_quantizer.BaseQuantizer,
    ]
    saved = [(cls, dict(vars(cls))) for cls in classes]
    create_calibrator = calibrate.create_calibrator
    try:
        yield
    finally:
        calibrate.create_calibrator = create_calibrator
        for cls, attributes in saved:
            for name in set(vars(cls)) - set(attributes):
                delattr(cls, name)
            for name, value in attributes.items():
                if name not in ("__dict__", "__weakref__") and vars(cls).get(name) is not value:
                    setattr(cls, name, value)


def resolve_int8_float_precision(float_precision: str | None, tool: str) -> str:
    """What the layers an INT8 variant leaves unquantized run in: float16 when ModelOpt converts the graph (the
    default; a strongly typed TensorRT build would otherwise run them in float32 kernels where the fp16 engine runs
    float16 ones), float32 with the ONNX Runtime tool, whose float16 converter cannot keep Q/DQ fusable."""
    tool = _resolve_tool(tool)
    if float_precision is None:
        return "fp16" if tool == "modelopt" else "fp32"
    if float_precision not in INT8_FLOAT_PRECISIONS:
        raise ValueError(
            f"INT8 float precision '{float_precision}' is unknown; choose one of {', '.join(INT8_FLOAT_PRECISIONS)}"
        )
    if float_precision == "fp16" and tool != "modelopt":
        raise PrecisionConversionError(
            "an INT8 variant with float16 unquantized layers needs ModelOpt (nvidia-modelopt): ONNX Runtime's float16 "
            "converter puts a Cast between every DequantizeLinear and its layer; install ModelOpt or keep that part "
            "fp32 (depth-build-engine --int8-float fp32, float_precision='fp32')"
        )
    return float_precision


def quantize_int8(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    frames: np.ndarray,
    tool: str = "auto",
    metadata: dict[str, str] | None = None,
    scope: str = "decoder",
    float_precision: str | None = None,
) -> PrecisionSummary:
    """Write the INT8 Q/DQ variant of ``src`` to ``dst``, calibrated on ``frames`` (N, 3, H, W float32 in [0, 1]);
    ``scope`` 'decoder' keeps the encoder unquantized, 'all' quantizes it too; ``float_precision`` is what the
    unquantized layers run in (None: resolve_int8_float_precision); ``metadata`` is added."""
    if scope not in INT8_SCOPES:
        raise ValueError(f"INT8 scope '{scope}' is unknown; choose one of {', '.join(INT8_SCOPES)}")
    tool = _resolve_tool(tool)
    float_precision = resolve_int8_float_precision(float_precision, tool)
    source = _load_depth_onnx(src)
    frames = np.asarray(frames, dtype=np.float32)
    _check_frames(frames, source, src)
    sensitive = numerically_sensitive_nodes(source)
    unquantized = _unquantized_nodes(source, sensitive, scope, src)
    quantized = _quantize_qdq(source, frames, tool, unquantized)
    if not any(n.op_type == "QuantizeLinear" for n in quantized.graph.node):
        raise PrecisionConversionError(f"quantizing '{src}' with {tool} produced no Q/DQ nodes (nothing to quantize?)")
    if float_precision == "fp16":
        quantized = _modelopt_fp16(name_unnamed_nodes(quantized), sensitive)
    extra = {
        PRECISION_KEY: "int8",
        "precision_tool": tool,
        "calibration_frames": str(len(frames)),
        "int8_scope": scope,
        "int8_float_precision": float_precision,
        "unquantized_nodes": str(len(unquantized)),
        **({"fp32_nodes": str(len(sensitive))} if float_precision == "fp16" else {}),  # fp32 part: every node
        **(metadata or {}),
    }
    _finish(quantized, source, dst, extra)
    return precision_summary(onnx.load(str(dst)))


def _unquantized_nodes(source: onnx.ModelProto, sensitive: list[str], scope: str,
                       src: str | os.PathLike) -> list[str]:
    """The nodes INT8 leaves in float, in graph order: the numerically sensitive ones, plus the encoder for scope
    'decoder'."""
    if scope != "decoder":
        return list(sensitive)
    encoder = encoder_nodes(source)
    if not encoder:
        raise PrecisionConversionError(
            f"'{src}' has no encoder nodes (no node name starts with '{ENCODER_PREFIX}'), so INT8 scope "
            "'decoder' cannot leave the encoder unquantized; export the model with depth-export, or use scope 'all'"
        )
    order = {n.name: i for i, n in enumerate(source.graph.node)}
    return sorted(set(sensitive) | set(encoder), key=order.__getitem__)


def _quantize_qdq(source: onnx.ModelProto, frames: np.ndarray, tool: str, unquantized: list[str]) -> onnx.ModelProto:
    """Q/DQ-quantized copy of ``source`` (entropy calibration on ``frames``) by ModelOpt or ONNX Runtime's tool."""
    with temporary_directory() as tmp:
        named = os.path.join(tmp, "named.onnx")
        out = os.path.join(tmp, "int8.onnx")
        onnx.save(source, named)
        if tool == "modelopt":
            from modelopt.onnx.quantization import quantize

            with _onnxruntime_quantization_restored():
                quantize(
                    named,
                    quantize_mode="int8",
                    calibration_data={INPUT_NAME: frames},
                    calibration_method="entropy",
                    calibration_eps=["cpu"],
                    nodes_to_exclude=_exact_name_patterns(unquantized),
                    high_precision_dtype="fp32",
                    output_path=out,
                    log_level="WARNING",
                )
        else:
            from onnxruntime.quantization import (
                CalibrationMethod,
                QuantFormat,
                QuantType,
                quantize_static,
            )

            quantize_static(
                named,
                out,
                _FrameReader(frames),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.Entropy,
                nodes_to_exclude=unquantized,
                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
            )
        return onnx.load(out)


def variant_path(fp32_path: str | os.PathLike, precision: str, directory: str | os.PathLike | None = None) -> Path:
    """``model.onnx`` -> ``model.fp16.onnx`` / ``model.int8.onnx`` (beside it, or in ``directory``)."""
    fp32_path = Path(fp32_path)
    return Path(directory or fp32_path.parent) / f"{fp32_path.stem}.{precision}.onnx"


def declared_precision(model: onnx.ModelProto) -> str:
    """Metadata 'precision' if set, else int8 if the graph has Q/DQ nodes, fp16 if it has float16 initializers,
    else fp32."""
    metadata = model_metadata(model)
    if metadata.get(PRECISION_KEY) in PRECISIONS:
        return metadata[PRECISION_KEY]
    ops = {node.op_type for node in model.graph.node}
    if {"QuantizeLinear", "DequantizeLinear"} <= ops:
        return "int8"
    if any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer):
        return "fp16"
    return "fp32"


def onnx_declared_precision(path: str | os.PathLike) -> str:
    """declared_precision of an ONNX file."""
    return declared_precision(load_onnx(path))
