"""LacDepth's per-pixel uncertainty (depth_std) through the engines, the fp16 / INT8 variants and the frame
processor (conventions, max_relative_uncertainty masking); networks without a distribution give none."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from shared_data import DATA

from depth_estimation_ros.engines import onnx_precision
from depth_estimation_ros.engines.base import EngineError
from depth_estimation_ros.engines.calibration_frames import load_image_folder
from depth_estimation_ros.engines.onnxruntime_engine import OnnxRuntimeEngine
from depth_estimation_ros.engines.torch_engine import TorchEngine
from depth_estimation_ros.frame.camera_model import PinholeCamera
from depth_estimation_ros.frame.depth_uncertainty import mask_uncertain_depth, relative_uncertainty, uncertainty_image
from depth_estimation_ros.networks.export import export_onnx
from depth_estimation_ros.networks.factory import DepthNetworkConfig, build_depth_network
from depth_estimation_ros.networks.tensorrt_readiness import check_tensorrt_ready
from depth_estimation_ros.pipeline.depth_frame_processor import DepthFrameProcessor, ProcessorSettings

HEIGHT, WIDTH = 64, 96
TUM_RGB = sorted((DATA / "tum_fr3_cabinet_keyframes" / "rgb").glob("*.jpg"))

pytestmark = pytest.mark.skipif(not TUM_RGB, reason=f"real images missing under {DATA}")


def _rgb(index: int = 0) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imread(str(TUM_RGB[index])), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def lacdepth(tmp_path_factory):
    torch.manual_seed(0)
    cfg = DepthNetworkConfig("lacdepth", "efficientnet_lite0", pretrained=True, num_bins=16, embed_channels=32,
                             min_depth=0.1, max_depth=10.0)
    model = build_depth_network(cfg).eval()
    path = export_onnx(model, cfg, tmp_path_factory.mktemp("unc") / "lacdepth.onnx", HEIGHT, WIDTH)
    return model, path


@pytest.fixture(scope="module")
def gatdepth(tmp_path_factory):
    torch.manual_seed(0)
    cfg = DepthNetworkConfig("gatdepth", "efficientnet_lite0", pretrained=False, max_depth=10.0)
    return export_onnx(build_depth_network(cfg), cfg, tmp_path_factory.mktemp("gat") / "gatdepth.onnx", HEIGHT, WIDTH)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return load_image_folder(DATA / "tum_fr3_cabinet_keyframes" / "rgb", HEIGHT, WIDTH, max_frames=4)


def test_engines_give_the_same_depth_std(lacdepth):
    """ONNX Runtime and torch (CPU) per-frame paths: the same depth and depth_std at the camera size."""
    model, path = lacdepth
    ort_engine = OnnxRuntimeEngine(str(path), threads=2)
    torch_engine = TorchEngine.from_module(model, (HEIGHT, WIDTH), {"min_depth": "0.1", "max_depth": "10.0"})
    assert ort_engine.info.has_std and torch_engine.info.has_std
    assert ort_engine.info.summary()["uncertainty"] == "depth_std"
    rgb = _rgb()
    depth_a, std_a = ort_engine.estimate_with_std(rgb, (120, 160))
    depth_b, std_b = torch_engine.estimate_with_std(rgb, (120, 160))
    assert std_a.shape == depth_a.shape == (120, 160) and np.all(std_a > 0)
    assert np.allclose(std_a, std_b, rtol=1e-3) and np.allclose(depth_a, depth_b, rtol=1e-3)
    assert np.array_equal(depth_a, ort_engine.estimate(rgb, (120, 160)))  # the depth is the plain path's


def test_uncertainty_scale_in_the_metadata_is_applied(lacdepth, tmp_path):
    _, path = lacdepth
    graph = onnx.load(path)
    entry = graph.metadata_props.add()
    entry.key, entry.value = "uncertainty_scale", "2.5"
    onnx.save(graph, tmp_path / "scaled.onnx")
    batch = load_image_folder(DATA / "tum_fr3_cabinet_keyframes" / "rgb", HEIGHT, WIDTH, max_frames=1)
    _, raw = OnnxRuntimeEngine(str(path)).infer_with_std(batch)
    _, scaled = OnnxRuntimeEngine(str(tmp_path / "scaled.onnx")).infer_with_std(batch)
    assert np.allclose(scaled, 2.5 * raw, rtol=1e-6)
    entry.value = "-1"
    onnx.save(graph, tmp_path / "bad.onnx")
    with pytest.raises(EngineError, match="uncertainty_scale is '-1'"):
        OnnxRuntimeEngine(str(tmp_path / "bad.onnx"))


def test_networks_without_a_distribution_give_no_std(gatdepth):
    engine = OnnxRuntimeEngine(str(gatdepth))
    assert not engine.info.has_std and engine.info.summary()["uncertainty"] == "none"
    depth, std = engine.estimate_with_std(_rgb(), (HEIGHT, WIDTH))
    assert std is None and depth.shape == (HEIGHT, WIDTH)
    processor = DepthFrameProcessor(engine, ProcessorSettings(max_relative_uncertainty=0.1))
    frame = processor.process(_rgb(), PinholeCamera(640, 480, _k()), with_uncertainty=True)
    assert frame.uncertainty is None and frame.uncertainty_masked == 0


def _k() -> np.ndarray:
    return np.array([[535.4, 0, 320.1], [0, 539.2, 247.6], [0, 0, 1]])


MODELOPT = pytest.mark.skipif(not onnx_precision.modelopt_available(), reason="nvidia-modelopt is not installed")


@pytest.mark.parametrize("precision, tool", [("fp16", "onnxruntime"), ("int8", "onnxruntime"),
                                             pytest.param("fp16", "modelopt", marks=MODELOPT),
                                             pytest.param("int8", "modelopt", marks=MODELOPT)])
def test_reduced_precision_variants_keep_depth_std_in_fp32(lacdepth, frames, tmp_path, precision, tool):
    """The variants keep the depth_std output (float32), its computation stays float32 (it has no learned layer
    downstream), and it stays close to the fp32 std."""
    _, path = lacdepth
    out = tmp_path / f"lacdepth.{precision}.onnx"
    if precision == "fp16":
        onnx_precision.convert_to_fp16(path, out, tool=tool)
    else:
        onnx_precision.quantize_int8(path, out, frames, tool=tool)
    variant = onnx.load(out)
    outputs = {o.name: o.type.tensor_type.elem_type for o in variant.graph.output}
    assert outputs == {"depth": onnx.TensorProto.FLOAT, "depth_std": onnx.TensorProto.FLOAT}
    source = onnx.load(path)
    sensitive = set(onnx_precision.numerically_sensitive_nodes(source))
    producer = {o: n for n in source.graph.node for o in n.output}
    node = producer["depth_std"]
    while node.op_type != "MatMul":  # from the output back to the channel sum of e (c - mu)^2
        assert node.name in sensitive
        node = producer[node.input[0]]
    types = onnx_precision.tensor_types(variant)
    producer = {o: n for n in variant.graph.node for o in n.output}
    node, ops = producer["depth_std"], []
    while node.op_type != "MatMul":  # the same path in the variant: float32 throughout, no round trip to fp16
        to = next((a.i for a in node.attribute if a.name == "to"), onnx.TensorProto.FLOAT)
        assert types[node.output[0]] == onnx.TensorProto.FLOAT and to == onnx.TensorProto.FLOAT, node.name
        ops.append(node.op_type)
        node = producer[node.input[0]]
    assert {"Sqrt", "Div", "Resize"} <= set(ops)
    assert check_tensorrt_ready(out) == []
    fp32, reduced = OnnxRuntimeEngine(str(path)), OnnxRuntimeEngine(str(out))
    reference = np.concatenate([fp32.infer_with_std(f[None])[1] for f in frames])
    std = np.concatenate([reduced.infer_with_std(f[None])[1] for f in frames])
    assert np.all(np.isfinite(std)) and np.median(np.abs(std - reference) / reference) < 0.02


def test_processor_carries_uncertainty_with_the_depth_conventions(lacdepth):
    _, path = lacdepth
    engine = OnnxRuntimeEngine(str(path), threads=2)
    rgb, camera = _rgb(), PinholeCamera(640, 480, _k())
    depth_probe = engine.estimate(rgb, (HEIGHT, WIDTH))
    lo, hi = np.percentile(depth_probe, [20, 80])  # caps inside the prediction: -Inf and +Inf pixels appear
    settings = ProcessorSettings(min_depth=float(lo), max_depth=float(hi), output_resolution="input")
    processor = DepthFrameProcessor(engine, settings)
    plain = processor.process(rgb, camera)
    assert plain.uncertainty is None  # not asked for: not computed
    frame = processor.process(rgb, camera, with_uncertainty=True)
    assert frame.uncertainty.shape == frame.depth.shape == (480, 640) and frame.uncertainty.dtype == np.float32
    assert np.array_equal(frame.depth, plain.depth, equal_nan=True)
    finite = np.isfinite(frame.depth)
    assert np.isinf(frame.depth).any() and finite.any()
    assert np.all(np.isnan(frame.uncertainty[~finite])) and np.all(frame.uncertainty[finite] > 0)
    _, raw_std = engine.estimate_with_std(rgb, (480, 640))
    assert np.array_equal(frame.uncertainty[finite], raw_std[finite])  # resized like depth, nothing else

    # max_relative_uncertainty: depth (hence cloud) NaN above the threshold, counted; 0 = off
    relative = raw_std[finite] / frame.depth[finite]
    threshold = float(np.median(relative))
    processor.settings = ProcessorSettings(min_depth=float(lo), max_depth=float(hi), output_resolution="input",
                                           max_relative_uncertainty=threshold)
    masked = processor.process(rgb, camera)  # the threshold needs the std even when nobody asks for it
    above = finite & (raw_std / np.where(finite, frame.depth, 1) > threshold)
    assert masked.uncertainty_masked == int(above.sum()) > 0
    assert np.all(np.isnan(masked.depth[above])) and np.array_equal(masked.depth[~above], frame.depth[~above],
                                                                     equal_nan=True)
    xyz, _ = processor.cloud(masked)
    assert np.all(np.isnan(xyz[above]))
    with pytest.raises(ValueError, match="max_relative_uncertainty"):
        ProcessorSettings(max_relative_uncertainty=-1).validate()


def test_uncertainty_functions_on_hand_made_arrays():
    depth = np.array([[2.0, np.nan, np.inf], [-np.inf, 4.0, 1.0]], np.float32)
    std = np.array([[0.2, 0.1, 0.1], [0.1, 2.0, np.nan]], np.float32)
    rel = relative_uncertainty(depth, std)
    assert rel[0, 0] == pytest.approx(0.1) and rel[1, 1] == pytest.approx(0.5) and np.isnan(rel[1, 2])
    out, count = mask_uncertain_depth(depth, std, 0.3)
    assert count == 2 and np.isnan(out[1, 1]) and np.isnan(out[1, 2]) and out[0, 0] == 2.0  # unknown std: masked
    assert np.isinf(out[0, 2]) and np.isneginf(out[1, 0])  # out-of-range pixels are left as they are
    assert mask_uncertain_depth(depth, std, 0.0) == (depth, 0)
    image = uncertainty_image(out, std)
    assert image[0, 0] == pytest.approx(0.2) and np.isnan(image[[0, 0, 1, 1, 1], [1, 2, 0, 1, 2]]).all()
