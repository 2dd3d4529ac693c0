"""Add the ``depth_std`` output to a LacDepth ONNX exported without it, from the graph alone.

For models whose checkpoint is gone (the ONNX folds BatchNorm into the convolutions, so the PyTorch weights cannot
be recovered from it). The exported final head ends in the pattern of metric_bins.expected_value_over_bins:

    e = Exp(scores - max);  mu = Reshape(MatMul(ones, Reshape(Mul(e, c)))) / Reshape(MatMul(ones, Reshape(e)))
    depth = Clip(Resize(mu))

This module finds it by walking back from ``depth`` and appends the same nodes that
metric_bins.expected_value_and_std_over_bins exports for the spread,
std = sqrt(Reshape(MatMul(ones, Reshape(e (c - mu)^2))) / norm), resized like mu and not clipped, so the result
equals a fresh ``depth-export`` of the same weights. ``depth`` is untouched.

    python -m depth_estimation_ros.networks.depth_std_graph IN.onnx OUT.onnx
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import onnx
from onnx import helper

from depth_estimation_ros.data.atomic_files import write_bytes_atomically
from depth_estimation_ros.errors import EXPECTED_ERRORS, ConfigurationError, ModelError, report_error
from depth_estimation_ros.onnx_contract.depth_onnx import DEPTH_OUTPUT, STD_OUTPUT, load_onnx


class DepthStdGraphError(ModelError, ValueError):
    """The graph does not end in LacDepth's expected-value head; the message says what was found."""


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in graph.node for out in node.output}


def _expect(node: onnx.NodeProto | None, op_type: str, what: str) -> onnx.NodeProto:
    if node is None or node.op_type != op_type:
        found = "a graph input or constant" if node is None else f"{node.op_type} node '{node.name}'"
        raise DepthStdGraphError(
            f"expected {what} ({op_type}) but found {found}: this is not a LacDepth export (only LacDepth has a "
            "depth distribution); re-export from the checkpoint with depth-export instead")
    return node


def add_depth_std_output(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with the output ``depth_std``; raises DepthStdGraphError if the head is not found."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    outputs = [o.name for o in graph.output]
    if STD_OUTPUT in outputs:
        raise DepthStdGraphError(f"the graph already has a '{STD_OUTPUT}' output")
    if DEPTH_OUTPUT not in outputs:
        raise DepthStdGraphError(f"the graph has outputs {outputs}; expected '{DEPTH_OUTPUT}'")
    producer = _producers(graph)
    clip = _expect(producer.get(DEPTH_OUTPUT), "Clip", "the depth clamp")
    resize = _expect(producer.get(clip.input[0]), "Resize", "the x2 upsampling of the head's mean")
    div = _expect(producer.get(resize.input[0]), "Div", "the mean sum(e c) / sum(e)")
    num_shape = _expect(producer.get(div.input[0]), "Reshape", "the reshape of sum(e c)")
    num_sum = _expect(producer.get(num_shape.input[0]), "MatMul", "the channel sum of e c")
    num_flat = _expect(producer.get(num_sum.input[1]), "Reshape", "the flattening of e c")
    weighted = _expect(producer.get(num_flat.input[0]), "Mul", "the product e c")
    den_shape = _expect(producer.get(div.input[1]), "Reshape", "the reshape of sum(e)")
    den_sum = _expect(producer.get(den_shape.input[0]), "MatMul", "the channel sum of e")
    den_flat = _expect(producer.get(den_sum.input[1]), "Reshape", "the flattening of e")
    e_name = den_flat.input[0]
    if e_name not in weighted.input:
        raise DepthStdGraphError("the mean's numerator and denominator do not share the bin weights e; not a "
                                 "LacDepth export")
    centres = weighted.input[1] if weighted.input[0] == e_name else weighted.input[0]

    def name(suffix: str) -> str:
        return f"/depth_std/{suffix}"

    nodes = [
        helper.make_node("Sub", [centres, div.output[0]], [name("spread")], name=name("Sub")),
        helper.make_node("Mul", [name("spread"), name("spread")], [name("spread2")], name=name("Mul")),
        helper.make_node("Mul", [e_name, name("spread2")], [name("weighted")], name=name("Mul_1")),
        helper.make_node("Reshape", [name("weighted"), num_flat.input[1]], [name("flat")], name=name("Reshape")),
        helper.make_node("MatMul", [num_sum.input[0], name("flat")], [name("sum")], name=name("MatMul")),
        helper.make_node("Reshape", [name("sum"), num_shape.input[1]], [name("sum_map")], name=name("Reshape_1")),
        helper.make_node("Div", [name("sum_map"), div.input[1]], [name("variance")], name=name("Div")),
        helper.make_node("Sqrt", [name("variance")], [name("std")], name=name("Sqrt")),
    ]
    resize_std = onnx.NodeProto.FromString(resize.SerializeToString())
    resize_std.name = name("Resize")
    resize_std.input[0] = name("std")
    del resize_std.output[:]
    resize_std.output.append(STD_OUTPUT)
    nodes.append(resize_std)
    graph.node.extend(nodes)
    depth_out = next(o for o in graph.output if o.name == DEPTH_OUTPUT)
    std_out = graph.output.add()
    std_out.CopyFrom(depth_out)
    std_out.name = STD_OUTPUT
    onnx.checker.check_model(model)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m depth_estimation_ros.networks.depth_std_graph",
        description="Write a copy of a LacDepth ONNX (exported without it) with the 'depth_std' output added.")
    parser.add_argument("input", help="LacDepth .onnx without depth_std (e.g. a bundled model file)")
    parser.add_argument("output", help="where to write the copy (written atomically)")
    args = parser.parse_args(argv)
    try:
        if not os.path.isfile(args.input):
            raise FileNotFoundError(f"ONNX file '{args.input}' does not exist")
        if Path(args.input).resolve() == Path(args.output).resolve():
            raise ConfigurationError("the output must be another file than the input (the input is kept as it is)")
        model = add_depth_std_output(load_onnx(args.input, load_external_data=True))
    except EXPECTED_ERRORS as exc:
        return report_error("depth_std_graph", exc)
    write_bytes_atomically(args.output, model.SerializeToString())
    print(f"wrote {args.output} (outputs: {', '.join(o.name for o in model.graph.output)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
