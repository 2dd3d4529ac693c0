"""fp16 and INT8 Q/DQ ONNX variants of a real LacDepth export, checked with ONNX Runtime on real frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from shared_data import DATA

from depth_estimation_ros.engines import onnx_precision
from depth_estimation_ros.engines.accuracy_gate import evaluate_gate
from depth_estimation_ros.engines.calibration_frames import load_image_folder
from depth_estimation_ros.engines.onnxruntime_engine import OnnxRuntimeEngine
from depth_estimation_ros.networks.tensorrt_readiness import check_tensorrt_ready

HEIGHT, WIDTH = 64, 96
TOOLS = [
    "onnxruntime",
    pytest.param(
        "modelopt",
        marks=pytest.mark.skipif(
            not onnx_precision.modelopt_available(),
            reason="nvidia-modelopt is not installed (pip install nvidia-modelopt==0.47.0 and its ONNX deps)",
        ),
    ),
]


@pytest.fixture(scope="module")
def lacdepth_onnx(tmp_path_factory) -> Path:
    import torch

    from depth_estimation_ros.networks.export import export_onnx
    from depth_estimation_ros.networks.factory import DepthNetworkConfig, build_depth_network

    torch.manual_seed(0)
    cfg = DepthNetworkConfig("lacdepth", "efficientnet_lite0", pretrained=True, num_bins=16, embed_channels=32)
    path = tmp_path_factory.mktemp("precision") / "lacdepth.onnx"
    return export_onnx(build_depth_network(cfg), cfg, path, HEIGHT, WIDTH)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    tum = load_image_folder(DATA / "tum_fr3_cabinet_keyframes" / "rgb", HEIGHT, WIDTH, max_frames=6)
    kitti = load_image_folder(DATA / "kitti_drive0023_tiny" / "KITTI_tiny" / "2011_09_26" /
                              "2011_09_26_drive_0023_sync" / "image_02" / "data", HEIGHT, WIDTH, max_frames=4)
    return np.concatenate([tum, kitti])


def _graph(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_sensitive_nodes_are_the_bin_head_the_log_binomial_path_and_risky_ops():
    f = TensorProto.FLOAT
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 4, 1, 1)).astype(np.float32), "w")
    centres = numpy_helper.from_array(np.linspace(1, 80, 4, dtype=np.float32).reshape(1, 4, 1, 1), "centres")
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["a"], name="enc_conv"),
        helper.make_node("Softmax", ["a"], ["att"], axis=1, name="attention_softmax"),
        helper.make_node("Conv", ["att", "w"], ["b"], name="dec_conv"),
        helper.make_node("Sigmoid", ["b"], ["q"], name="q_sigmoid"),
        helper.make_node("Log", ["q"], ["logq"], name="log_q"),
        helper.make_node("Mul", ["logq", "centres"], ["score"], name="score_mul"),
        helper.make_node("Add", ["score", "b"], ["score2"], name="score_add"),
        helper.make_node("Softmax", ["score2"], ["p"], axis=1, name="bin_softmax"),
        helper.make_node("Mul", ["p", "centres"], ["pc"], name="accumulate_mul"),
        helper.make_node("ReduceSum", ["pc"], ["depth"], keepdims=1, name="accumulate_sum"),
    ]
    model = _graph(
        nodes,
        [helper.make_tensor_value_info("image", f, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("depth", f, [1, 1, 8, 8])],
        [w, centres],
    )
    kept = set(onnx_precision.numerically_sensitive_nodes(model))
    # the tail after the last learned layer (dec_conv), and the attention softmax individually
    assert kept == {"attention_softmax", "q_sigmoid", "log_q", "score_mul", "score_add", "bin_softmax",
                    "accumulate_mul", "accumulate_sum"}


def test_layers_that_only_copy_or_sum_stay_float_with_the_nodes_that_read_them():
    # the shared-gate attention block: a one-channel gate and the reciprocal of its window mean copied to every
    # channel by 1x1 convs of unit weights; the reciprocal reaches 1e4, which INT8 cannot hold beside the features
    f = TensorProto.FLOAT
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
             for name, shape in (("w_gate", (1, 4, 1, 1)), ("w_project", (4, 4, 1, 1)))]
    inits.append(numpy_helper.from_array(np.ones((4, 1, 1, 1), np.float32), "to_channels"))
    nodes = [
        helper.make_node("Conv", ["x", "w_gate"], ["z"], name="gate_conv"),
        helper.make_node("Sigmoid", ["z"], ["g"], name="gate_sigmoid"),
        helper.make_node("Conv", ["g", "to_channels"], ["g4"], name="copy_gates"),
        helper.make_node("Mul", ["g4", "x"], ["gx"], name="gate_values"),
        helper.make_node("Reciprocal", ["g"], ["r"], name="reciprocal"),
        helper.make_node("Conv", ["r", "to_channels"], ["r4"], name="copy_reciprocal"),
        helper.make_node("Mul", ["gx", "r4"], ["mixed"], name="normalise"),
        helper.make_node("Conv", ["mixed", "w_project"], ["y"], name="project_conv"),
    ]
    model = _graph(nodes, [helper.make_tensor_value_info("x", f, [1, 4, 8, 8])],
                   [helper.make_tensor_value_info("y", f, [1, 4, 8, 8])], inits)
    kept = set(onnx_precision.numerically_sensitive_nodes(model))
    assert kept == {"copy_gates", "gate_values", "reciprocal", "copy_reciprocal", "normalise"}


def test_real_lacdepth_keeps_its_metric_bins_head_fp32(lacdepth_onnx):
    model = onnx.load(str(lacdepth_onnx))
    kept = set(onnx_precision.numerically_sensitive_nodes(model))
    ops = {n.name: n.op_type for n in model.graph.node}
    # the log-binomial head after its last conv: scores, normalisation (max / exp / sum), accumulation, upsampling
    head = [name for name in ops if name.startswith("/final_head/") and ops[name] not in ("Conv", "Relu")]
    assert head and set(head) <= kept
    assert any(ops[name] == "Resize" for name in kept)  # the final x2 upsampling of the depth
    assert any(ops[name] == "Exp" for name in kept)  # bin centres to metres
    assert not any(ops[name] in ("Conv", "ConvTranspose") for name in kept)  # every conv still goes to fp16


@pytest.mark.parametrize("tool", TOOLS)
def test_fp16_variant_is_typed_fp16_with_fp32_io_and_close_to_fp32(lacdepth_onnx, frames, tmp_path, tool):
    out = tmp_path / "lacdepth.fp16.onnx"
    summary = onnx_precision.convert_to_fp16(lacdepth_onnx, out, tool=tool)
    assert summary.fp16_initializers > 10 and summary.fp16_nodes > 10 and not summary.has_qdq
    assert (summary.input_type, summary.output_type) == ("float", "float")
    assert onnx_precision.onnx_declared_precision(out) == "fp16"
    metadata = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert metadata["network"] == "lacdepth" and metadata["precision_tool"] == tool
    reference, candidate = OnnxRuntimeEngine(str(lacdepth_onnx)), OnnxRuntimeEngine(str(out))
    assert candidate.info.precision == "fp16"
    result = evaluate_gate(candidate.infer, reference.infer, frames, "fp16")
    print(f"\n[{tool}] {result.describe()}")
    assert result.abs_rel > 0  # it really runs in reduced precision
    assert result.passed


@pytest.mark.parametrize("tool", TOOLS)
def test_int8_variant_has_symmetric_per_channel_qdq_and_is_reported(lacdepth_onnx, frames, tmp_path, tool):
    out = tmp_path / "lacdepth.int8.onnx"
    summary = onnx_precision.quantize_int8(lacdepth_onnx, out, frames, tool=tool)
    assert summary.has_qdq and summary.quantize_nodes >= 10
    model = onnx.load(str(out))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    zero_points = [inits[n.input[2]] for n in model.graph.node
                   if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2 and n.input[2] in inits]
    assert zero_points and all(np.all(z == 0) for z in zero_points)  # symmetric: what TensorRT requires
    per_channel = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[1] in inits
                   and inits[n.input[1]].size > 1]
    assert per_channel  # weight scales per output channel
    kept = set(onnx_precision.numerically_sensitive_nodes(onnx.load(str(lacdepth_onnx))))
    quantized = {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    head = [n for n in model.graph.node if n.name in kept and n.name.startswith("/final_head/")
            and n.op_type not in ("QuantizeLinear", "DequantizeLinear")]
    # the bin head computes in float: none of its tensors is quantized (its input, the last conv's output, may be)
    assert head and not any(o in quantized for n in head for o in n.output)
    metadata = {p.key: p.value for p in model.metadata_props}
    assert metadata["precision"] == "int8" and metadata["calibration_frames"] == str(len(frames))
    reference, candidate = OnnxRuntimeEngine(str(lacdepth_onnx)), OnnxRuntimeEngine(str(out))
    result = evaluate_gate(candidate.infer, reference.infer, frames, "int8")
    print(f"\n[{tool}] {result.describe()}")
    assert 0 < result.abs_rel < 0.2  # reported; the gate decides per model whether 1 % holds


def _int8_convs(path: Path) -> set[str]:
    """Convs with INT8 weights (weights through DequantizeLinear): the ones TensorRT runs as INT8 kernels."""
    model = onnx.load(str(path))
    dequantized = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return {n.name for n in model.graph.node if n.op_type == "Conv" and n.input[1] in dequantized}


@pytest.mark.parametrize("tool", TOOLS)
def test_int8_scope_decoder_keeps_the_encoder_in_float(lacdepth_onnx, frames, tmp_path, tool):
    encoder = set(onnx_precision.encoder_nodes(onnx.load(str(lacdepth_onnx))))
    assert any(name.endswith("conv_stem/Conv") for name in encoder)
    decoder_scope, all_scope = tmp_path / "decoder.onnx", tmp_path / "all.onnx"
    onnx_precision.quantize_int8(lacdepth_onnx, decoder_scope, frames, tool=tool)  # default scope: decoder
    onnx_precision.quantize_int8(lacdepth_onnx, all_scope, frames, tool=tool, scope="all")
    in_decoder, in_all = _int8_convs(decoder_scope), _int8_convs(all_scope)
    assert in_decoder and not in_decoder & encoder  # decoder convs INT8, no encoder conv
    assert in_all & encoder and in_decoder < in_all
    scopes = [{p.key: p.value for p in onnx.load(str(path)).metadata_props}["int8_scope"]
              for path in (decoder_scope, all_scope)]
    assert scopes == ["decoder", "all"]
    with pytest.raises(ValueError, match="scope 'encoder' is unknown"):
        onnx_precision.quantize_int8(lacdepth_onnx, tmp_path / "x.onnx", frames, tool=tool, scope="encoder")


@pytest.mark.skipif(not onnx_precision.modelopt_available(), reason="nvidia-modelopt is not installed")
def test_int8_with_modelopt_runs_the_unquantized_layers_in_fp16(lacdepth_onnx, frames, tmp_path):
    """Strongly typed TensorRT runs what the ONNX says: the encoder INT8 leaves alone must be fp16, not fp32."""
    mixed, plain = tmp_path / "mixed.onnx", tmp_path / "plain.onnx"
    onnx_precision.quantize_int8(lacdepth_onnx, mixed, frames, tool="modelopt")  # default: fp16
    onnx_precision.quantize_int8(lacdepth_onnx, plain, frames, tool="modelopt", float_precision="fp32")
    model, fp16 = onnx.load(str(mixed)), TensorProto.FLOAT16
    types = onnx_precision.tensor_types(model)
    metadata = {p.key: p.value for p in model.metadata_props}
    assert metadata["int8_float_precision"] == "fp16"
    sensitive = set(onnx_precision.numerically_sensitive_nodes(onnx.load(str(lacdepth_onnx))))
    assert metadata["fp32_nodes"] == str(len(sensitive)) and int(metadata["unquantized_nodes"]) > len(sensitive)
    assert "fp32_nodes" not in {p.key for p in onnx.load(str(plain)).metadata_props}  # there every node is fp32
    encoder_convs = [n for n in model.graph.node if n.op_type == "Conv" and n.name.startswith("/encoder/")]
    fp16_convs = [n for n in encoder_convs if types[n.output[0]] == fp16]
    assert len(fp16_convs) >= 0.9 * len(encoder_convs)  # the stem may stay fp32 (it reads the fp32 normalisation)
    producers = {o: n for n in model.graph.node for o in n.output}
    dequantized = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert all(types[n.input[1]] == fp16 for n in dequantized)  # fp16 scales: DQ feeds fp16 layers directly
    assert not any(n.op_type == "Cast" and producers.get(n.input[0], n).op_type == "DequantizeLinear"
                   for n in model.graph.node)  # no Cast between a DQ and its layer (it would block the INT8 fusion)
    head = [n for n in model.graph.node if n.name in sensitive and n.op_type in ("Exp", "CumSum", "ReduceSum")]
    assert head and all(types[o] == TensorProto.FLOAT for n in head for o in n.output)  # bin head stays fp32
    assert _int8_convs(mixed) == _int8_convs(plain)  # the same layers are INT8
    assert onnx_precision.precision_summary(onnx.load(str(plain))).fp16_nodes == 0
    assert check_tensorrt_ready(mixed) == []  # opset 19 (fp16 Q/DQ scales) is inside TensorRT 10's range
    reference, candidate = OnnxRuntimeEngine(str(lacdepth_onnx)), OnnxRuntimeEngine(str(mixed))
    result = evaluate_gate(candidate.infer, reference.infer, frames, "int8")
    print(f"\n[modelopt, fp16 float part] {result.describe()}")
    assert result.abs_rel > 0 and result.passed


def test_int8_float_precision_follows_the_tool(lacdepth_onnx, frames, tmp_path):
    out = tmp_path / "ort.onnx"
    onnx_precision.quantize_int8(lacdepth_onnx, out, frames, tool="onnxruntime")
    assert {p.key: p.value for p in onnx.load(str(out)).metadata_props}["int8_float_precision"] == "fp32"
    assert onnx_precision.precision_summary(onnx.load(str(out))).fp16_nodes == 0
    with pytest.raises(onnx_precision.PrecisionConversionError, match="needs ModelOpt.*fp32"):
        onnx_precision.quantize_int8(lacdepth_onnx, tmp_path / "x.onnx", frames, tool="onnxruntime",
                                     float_precision="fp16")
    with pytest.raises(ValueError, match="float precision 'bf16' is unknown"):
        onnx_precision.resolve_int8_float_precision("bf16", "onnxruntime")
    assert not (tmp_path / "x.onnx").exists()


def test_int8_scope_decoder_needs_named_encoder_nodes(lacdepth_onnx, frames, tmp_path):
    model = onnx.load(str(lacdepth_onnx))
    for node in model.graph.node:
        node.name = node.name.replace("/encoder/", "/backbone/")
    renamed = tmp_path / "renamed.onnx"
    onnx.save(model, str(renamed))
    with pytest.raises(onnx_precision.PrecisionConversionError, match="no encoder nodes.*scope 'all'"):
        onnx_precision.quantize_int8(renamed, tmp_path / "x.onnx", frames, tool="onnxruntime")
    assert onnx_precision.quantize_int8(renamed, tmp_path / "x.onnx", frames, tool="onnxruntime", scope="all").has_qdq


def test_conversion_errors_name_the_problem(lacdepth_onnx, frames, tmp_path):
    with pytest.raises(onnx_precision.PrecisionConversionError, match="does not exist"):
        onnx_precision.convert_to_fp16(tmp_path / "missing.onnx", tmp_path / "x.onnx", tool="onnxruntime")
    with pytest.raises(onnx_precision.PrecisionConversionError, match="expects"):
        onnx_precision.quantize_int8(lacdepth_onnx, tmp_path / "x.onnx", frames[:, :, :32], tool="onnxruntime")
    fp16 = tmp_path / "v.fp16.onnx"
    onnx_precision.convert_to_fp16(lacdepth_onnx, fp16, tool="onnxruntime")
    with pytest.raises(onnx_precision.PrecisionConversionError, match="fp32 export"):
        onnx_precision.convert_to_fp16(fp16, tmp_path / "again.onnx", tool="onnxruntime")
    with pytest.raises(ValueError, match="tool"):
        onnx_precision.convert_to_fp16(lacdepth_onnx, tmp_path / "x.onnx", tool="tensorflow")
    assert not (tmp_path / "x.onnx").exists()
