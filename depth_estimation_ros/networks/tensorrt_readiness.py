"""Static check that an ONNX graph is something TensorRT 10 can build, without TensorRT.

Rules (each problem is returned as one line naming the node and the fix):
- every operator is in the ONNX-TensorRT support matrix for TensorRT 10 (``tensorrt10_onnx_operators.json`` beside
  this module; its ``source`` field says where the list comes from), in the default ONNX domain (no custom ops);
- the default-domain opset is within [17 (our export floor), the list's maximum];
- no data-dependent output shapes (NonZero, NonMaxSuppression, Unique, Compress) and no dynamic dimension other than
  the batch axis on graph inputs and outputs;
- the attributes that matter are in TensorRT's supported range: Resize (modes, coordinate transformation,
  no antialiasing), pooling dilations, Reduce* axes and TopK K constant, TopK sorted;
- project policy: Pad in "reflect" or "wrap" mode is rejected (poorly supported by older TensorRT and avoided by
  our networks; use zero or replicate ("edge") padding);
- no DOUBLE tensors;
- a ``depth`` output is (N, 1, H, W) float32 and a ``depth_std`` output, when present, has the same shape and type
  (the engines bind both by name).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import onnx

OPERATOR_LIST_FILE = Path(__file__).with_name("tensorrt10_onnx_operators.json")
MIN_OPSET = 17
DATA_DEPENDENT_SHAPE_OPS = frozenset({"NonZero", "NonMaxSuppression", "Unique", "Compress"})
RESIZE_COORDINATE_MODES = frozenset(
    {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
)
RESIZE_MODES = frozenset({"nearest", "linear"})
RESIZE_NEAREST_MODES = frozenset({"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"})
REJECTED_PAD_MODES = frozenset({"reflect", "wrap"})
TOPK_MAX_K = 3840


@lru_cache(maxsize=1)
def tensorrt_operator_list() -> dict:
    """The parsed operator list (supported, unsupported, restrictions, opset range, source)."""
    with open(OPERATOR_LIST_FILE, encoding="utf-8") as handle:
        return json.load(handle)


def _attributes(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _as_str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _constant_names(graph: onnx.GraphProto) -> set[str]:
    names = {init.name for init in graph.initializer}
    names.update(out for node in graph.node if node.op_type == "Constant" for out in node.output)
    return names


def _constant_value(graph: onnx.GraphProto, name: str):
    for init in graph.initializer:
        if init.name == name:
            return onnx.numpy_helper.to_array(init)
    for node in graph.node:
        if node.op_type == "Constant" and name in node.output:
            attr = _attributes(node)
            if "value" in attr:
                return onnx.numpy_helper.to_array(attr["value"])
    return None


def _node_label(node: onnx.NodeProto) -> str:
    return f"{node.op_type} node '{node.name or (node.output[0] if node.output else '?')}'"


def _check_node(node: onnx.NodeProto, graph: onnx.GraphProto, constants: set[str], supported: set[str]) -> list[str]:
    problems: list[str] = []
    label = _node_label(node)
    if node.domain not in ("", "ai.onnx"):
        return [f"{label}: custom domain '{node.domain}' is not parsed by TensorRT's ONNX parser without a plugin"]
    if node.op_type not in supported:
        return [f"{label}: operator {node.op_type} is not supported by TensorRT 10 (see {OPERATOR_LIST_FILE.name})"]
    if node.op_type in DATA_DEPENDENT_SHAPE_OPS:
        problems.append(f"{label}: {node.op_type} has a data-dependent output shape; keep the graph static")
    attr = _attributes(node)
    if node.op_type == "Pad":
        mode = _as_str(attr.get("mode", "constant"))
        if mode in REJECTED_PAD_MODES:
            problems.append(f"{label}: pad mode '{mode}' is rejected; use zero ('constant') or replicate ('edge')")
    elif node.op_type == "Resize":
        mode = _as_str(attr.get("mode", "nearest"))
        coord = _as_str(attr.get("coordinate_transformation_mode", "half_pixel"))
        if mode not in RESIZE_MODES:
            problems.append(f"{label}: Resize mode '{mode}' unsupported (only nearest, linear)")
        if coord not in RESIZE_COORDINATE_MODES:
            problems.append(f"{label}: Resize coordinate_transformation_mode '{coord}' unsupported")
        if mode == "nearest" and _as_str(attr.get("nearest_mode", "round_prefer_floor")) not in RESIZE_NEAREST_MODES:
            problems.append(f"{label}: Resize nearest_mode '{_as_str(attr['nearest_mode'])}' unsupported")
        if int(attr.get("antialias", 0)):
            problems.append(f"{label}: Resize antialiasing is not supported by TensorRT")
        if _as_str(attr.get("keep_aspect_ratio_policy", "stretch")) != "stretch":
            problems.append(f"{label}: Resize keep_aspect_ratio_policy must be 'stretch'")
    elif node.op_type in ("AveragePool", "MaxPool", "LpPool"):
        if any(d != 1 for d in attr.get("dilations", [])):
            problems.append(f"{label}: pooling dilations must be all ones")
        if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
            problems.append(f"{label}: the MaxPool Indices output is unsupported")
    elif node.op_type.startswith("Reduce") and len(node.input) > 1 and node.input[1]:
        if node.input[1] not in constants:
            problems.append(f"{label}: Reduce axes must be an initializer or constant")
    elif node.op_type == "TopK":
        if int(attr.get("sorted", 1)) != 1:
            problems.append(f"{label}: TopK must be sorted")
        k = _constant_value(graph, node.input[1]) if len(node.input) > 1 else None
        if k is None:
            problems.append(f"{label}: TopK K must be a constant")
        elif int(k.reshape(-1)[0]) >= TOPK_MAX_K:
            problems.append(f"{label}: TopK K must be < {TOPK_MAX_K}")
    elif node.op_type == "Dropout" and len(node.input) > 2 and node.input[2]:
        value = _constant_value(graph, node.input[2])
        if value is None or bool(value):
            problems.append(f"{label}: Dropout training_mode must be a constant False")
    for value in attr.values():  # control-flow bodies
        subgraphs = value if isinstance(value, list) else [value]
        for sub in subgraphs:
            if isinstance(sub, onnx.GraphProto):
                problems.extend(_check_graph(sub, supported))
    return problems


def _check_graph(graph: onnx.GraphProto, supported: set[str]) -> list[str]:
    constants = _constant_names(graph)
    problems: list[str] = []
    for node in graph.node:
        problems.extend(_check_node(node, graph, constants, supported))
    for init in graph.initializer:
        if init.data_type == onnx.TensorProto.DOUBLE:
            problems.append(f"initializer '{init.name}' is DOUBLE; export in float32")
    return problems


def _check_io_shapes(graph: onnx.GraphProto) -> list[str]:
    problems = []
    for kind, values in (("input", graph.input), ("output", graph.output)):
        for value in values:
            if not value.type.HasField("tensor_type"):
                problems.append(f"graph {kind} '{value.name}' is not a tensor")
                continue
            tensor_type = value.type.tensor_type
            if tensor_type.elem_type == onnx.TensorProto.DOUBLE:
                problems.append(f"graph {kind} '{value.name}' is DOUBLE; use float32")
            for axis, dim in enumerate(tensor_type.shape.dim):
                if axis > 0 and not dim.HasField("dim_value"):
                    problems.append(
                        f"graph {kind} '{value.name}' axis {axis} is dynamic ('{dim.dim_param}'); only the batch "
                        "axis may be dynamic"
                    )
    return problems


def _shape_and_type(value: onnx.ValueInfoProto) -> tuple[tuple, int]:
    tensor_type = value.type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") else d.dim_param for d in tensor_type.shape.dim)
    return dims, tensor_type.elem_type


def _check_depth_outputs(graph: onnx.GraphProto) -> list[str]:
    outputs = {v.name: v for v in graph.output if v.type.HasField("tensor_type")}
    if "depth" not in outputs:
        return [] if "depth_std" not in outputs else ["the graph has a 'depth_std' output but no 'depth'; re-export"]
    depth_dims, depth_type = _shape_and_type(outputs["depth"])
    problems = []
    if depth_type != onnx.TensorProto.FLOAT:
        problems.append("graph output 'depth' is not float32; keep the I/O float32 (keep_io_types)")
    if len(depth_dims) != 4 or depth_dims[1] != 1:
        problems.append(f"graph output 'depth' has shape {depth_dims}; expected (N, 1, H, W)")
    if "depth_std" in outputs:
        std_dims, std_type = _shape_and_type(outputs["depth_std"])
        if std_dims != depth_dims or std_type != depth_type:
            problems.append(
                f"graph output 'depth_std' is {onnx.TensorProto.DataType.Name(std_type)} {std_dims} but 'depth' is "
                f"{onnx.TensorProto.DataType.Name(depth_type)} {depth_dims}; both must match (re-export)")
    return problems


def check_tensorrt_ready(onnx_path_or_model: str | os.PathLike | onnx.ModelProto) -> list[str]:
    """Problems that would stop TensorRT 10 from building the graph (or break our rules); empty list = ready."""
    if isinstance(onnx_path_or_model, onnx.ModelProto):
        model = onnx_path_or_model
    else:
        path = Path(onnx_path_or_model)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX file {path} does not exist")
        model = onnx.load(path)
    operators = tensorrt_operator_list()
    supported = set(operators["supported"])
    problems: list[str] = []
    default_opsets = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not default_opsets:
        problems.append("the model imports no default ONNX opset")
    else:
        opset = default_opsets[0]
        if not MIN_OPSET <= opset <= operators["opset_max"]:
            problems.append(
                f"opset {opset} is outside [{MIN_OPSET}, {operators['opset_max']}] (our floor, TensorRT "
                f"{operators['tensorrt_version']} ceiling); re-export with --opset {MIN_OPSET}"
            )
    problems.extend(_check_graph(model.graph, supported))
    problems.extend(_check_io_shapes(model.graph))
    problems.extend(_check_depth_outputs(model.graph))
    return problems
