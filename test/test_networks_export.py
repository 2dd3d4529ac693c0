"""ONNX export: checker, ONNX Runtime vs PyTorch parity on real images, simplification, TensorRT readiness, CLI,
checkpoints."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper
from shared_data import DATA

from depth_estimation_ros.networks.checkpoint import (
    load_depth_checkpoint,
    save_depth_checkpoint,
)
from depth_estimation_ros.networks.export import export_onnx, main
from depth_estimation_ros.networks.factory import (
    DepthNetworkConfig,
    build_depth_network,
)
from depth_estimation_ros.networks.tensorrt_readiness import (
    check_tensorrt_ready,
    tensorrt_operator_list,
)

KITTI_FRAMES = sorted((DATA / "kitti_drive0001_frames50_100" / "rgb").glob("*.png"))
TUM_FRAMES = sorted((DATA / "tum_fr3_cabinet_keyframes" / "rgb").glob("*.jpg"))
HEIGHT, WIDTH = 96, 320
REQUIRED_METADATA = ("network", "encoder", "input_height", "input_width", "min_depth", "max_depth",
                     "training_data_hash", "trained")

pytestmark = pytest.mark.skipif(not KITTI_FRAMES or not TUM_FRAMES, reason=f"real images missing under {DATA}")


def _load_rgb(path: Path, height: int, width: int) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    rgb = cv2.cvtColor(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    return (rgb.astype(np.float32) / 255.0).transpose(2, 0, 1)


def _real_batch(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """Two KITTI frames and one TUM frame, resized to the network input."""
    frames = [KITTI_FRAMES[0], KITTI_FRAMES[-1], TUM_FRAMES[0]]
    return np.stack([_load_rgb(p, height, width) for p in frames])


def _max_relative_error(onnx_path: Path, model: torch.nn.Module, batch: np.ndarray) -> float:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    worst = 0.0
    for image in batch:
        x = image[None]
        (onnx_depth,) = session.run(["depth"], {"image": x})
        with torch.no_grad():
            torch_depth = model.predict_depth(torch.from_numpy(x)).numpy()
        assert onnx_depth.shape == torch_depth.shape == (1, 1, x.shape[2], x.shape[3])
        worst = max(worst, float(np.max(np.abs(onnx_depth - torch_depth) / np.abs(torch_depth))))
    return worst


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each network exported once (lite0 ImageNet encoders; resnet18 random), with its PyTorch model."""
    out = {}
    directory = tmp_path_factory.mktemp("onnx")
    for network, encoder in [("lacdepth", "efficientnet_lite0"), ("gatdepth", "efficientnet_lite0"),
                             ("baseline", "resnet18")]:
        torch.manual_seed(0)
        cfg = DepthNetworkConfig(network, encoder, pretrained=encoder.startswith("efficientnet"))
        model = build_depth_network(cfg).eval()
        path = export_onnx(model, cfg, directory / f"{network}.onnx", HEIGHT, WIDTH, metadata={"note": "test"})
        out[network] = (model, cfg, path)
    return out


@pytest.mark.parametrize("network", ["lacdepth", "gatdepth", "baseline"])
def test_export_contract_parity_and_tensorrt_readiness(exported, network):
    model, cfg, path = exported[network]
    graph = onnx.load(path)
    onnx.checker.check_model(graph, full_check=True)
    assert next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 17
    outputs = ["depth", "depth_std"] if network == "lacdepth" else ["depth"]  # only LacDepth has a distribution
    assert [i.name for i in graph.graph.input] == ["image"] and [o.name for o in graph.graph.output] == outputs
    dims = [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, HEIGHT, WIDTH]
    assert graph.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    meta = {p.key: p.value for p in graph.metadata_props}
    assert all(k in meta for k in REQUIRED_METADATA)
    assert meta["network"] == network and meta["encoder"] == cfg.encoder and meta["trained"] == "false"
    assert (meta["input_height"], meta["input_width"], meta["note"]) == (str(HEIGHT), str(WIDTH), "test")
    assert float(meta["max_depth"]) == cfg.max_depth
    assert _max_relative_error(path, model, _real_batch()) <= 1e-3
    assert check_tensorrt_ready(path) == []
    assert path.stat().st_size < 20e6 or cfg.encoder.startswith("resnet")


def test_lacdepth_metric_stride_4_exports_with_parity_and_is_tensorrt_ready(tmp_path):
    torch.manual_seed(0)
    cfg = DepthNetworkConfig("lacdepth", "efficientnet_lite0", pretrained=True, num_bins=32, metric_stride=4)
    model = build_depth_network(cfg).eval()
    path = export_onnx(model, cfg, tmp_path / "lean.onnx", HEIGHT, WIDTH)
    assert [o.name for o in onnx.load(path).graph.output] == ["depth", "depth_std"]
    assert _max_relative_error(path, model, _real_batch()) <= 1e-3
    assert check_tensorrt_ready(path) == []
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert DepthNetworkConfig.from_dict(json.loads(meta["network_config"])) == cfg
    save_depth_checkpoint(tmp_path / "lean.pt", model, cfg)
    _, reloaded_cfg, _ = load_depth_checkpoint(tmp_path / "lean.pt")
    assert reloaded_cfg.metric_stride == 4 and reloaded_cfg.num_bins == 32


# two or one window sum per block
@pytest.mark.parametrize("attention, window_sums", [("pooled", 10), ("gated", 5), ("shared", 10)])
def test_gatdepth_pooled_attention_exports_with_parity_and_is_tensorrt_ready(tmp_path, attention, window_sums):
    torch.manual_seed(0)
    cfg = DepthNetworkConfig("gatdepth", "efficientnet_lite0", pretrained=True, gat_attention=attention)
    model = build_depth_network(cfg).eval()
    path = export_onnx(model, cfg, tmp_path / f"{attention}.onnx", HEIGHT, WIDTH)
    assert _max_relative_error(path, model, _real_batch()) <= 1e-3
    assert check_tensorrt_ready(path) == []
    assert sum(n.op_type == "AveragePool" for n in onnx.load(path).graph.node) == window_sums
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert DepthNetworkConfig.from_dict(json.loads(meta["network_config"])) == cfg
    save_depth_checkpoint(tmp_path / f"{attention}.pt", model, cfg)
    assert load_depth_checkpoint(tmp_path / f"{attention}.pt")[1].gat_attention == attention


def test_simplification_keeps_parity_and_shrinks_the_graph(exported, tmp_path):
    model, cfg, simplified = exported["lacdepth"]
    raw = export_onnx(model, cfg, tmp_path / "raw.onnx", HEIGHT, WIDTH, simplify=False)
    assert len(onnx.load(simplified).graph.node) < len(onnx.load(raw).graph.node)
    batch = _real_batch()
    assert _max_relative_error(raw, model, batch) <= 1e-3
    assert _max_relative_error(simplified, model, batch) <= 1e-3
    assert check_tensorrt_ready(raw) == []


def test_dynamic_batch_export(exported, tmp_path):
    model, cfg, _ = exported["gatdepth"]
    path = export_onnx(model, cfg, tmp_path / "dyn.onnx", HEIGHT, WIDTH, dynamic_batch=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = _real_batch()
    (depth,) = session.run(["depth"], {"image": batch})
    with torch.no_grad():
        expected = model.predict_depth(torch.from_numpy(batch)).numpy()
    assert depth.shape == (3, 1, HEIGHT, WIDTH)
    assert np.max(np.abs(depth - expected) / expected) <= 1e-3
    assert check_tensorrt_ready(path) == []


def test_export_is_atomic_and_rejects_bad_sizes(exported, tmp_path):
    model, cfg, _ = exported["baseline"]
    target = tmp_path / "kept.onnx"
    target.write_bytes(b"the user's previous model")

    class Broken(torch.nn.Module):
        def predict_depth(self, image):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        export_onnx(Broken(), cfg, target, HEIGHT, WIDTH)
    assert target.read_bytes() == b"the user's previous model"
    assert sorted(os.listdir(tmp_path)) == ["kept.onnx"]  # no temporary left behind
    with pytest.raises(ValueError, match="multiples of 32"):
        export_onnx(model, cfg, tmp_path / "x.onnx", 100, WIDTH)


def test_depth_std_parity_torch_onnxruntime_and_unchanged_depth(exported, tmp_path):
    """depth_std of the export equals predict_depth_and_std's (ONNX Runtime vs torch, real frames); the depth is the
    same graph as without it; the std is the spread of the bin distribution (checked against the probabilities)."""
    model, cfg, path = exported["lacdepth"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    without = export_onnx(model, cfg, tmp_path / "depth_only.onnx", HEIGHT, WIDTH, uncertainty=False)
    assert [o.name for o in onnx.load(without).graph.output] == ["depth"]
    depth_only = ort.InferenceSession(str(without), providers=["CPUExecutionProvider"])
    for image in _real_batch():
        x = image[None]
        onnx_depth, onnx_std = session.run(["depth", "depth_std"], {"image": x})
        with torch.no_grad():
            torch_depth, torch_std = (t.numpy() for t in model.predict_depth_and_std(torch.from_numpy(x)))
            assert np.array_equal(torch_depth, model.predict_depth(torch.from_numpy(x)).numpy())
        assert onnx_std.shape == (1, 1, HEIGHT, WIDTH) and np.all(onnx_std > 0)
        assert np.max(np.abs(onnx_std - torch_std) / torch_std) <= 1e-3
        assert np.array_equal(onnx_depth, depth_only.run(["depth"], {"image": x})[0])
    # the std around the head's mean, from the distribution itself, at the head's resolution (stride 2)
    from depth_estimation_ros.networks.metric_bins import expected_value_and_std_over_bins

    scores = torch.randn(1, 64, 3, 5) * 4
    values = torch.sort(torch.rand(1, 64, 3, 5) * 80, dim=1).values
    mean, std = expected_value_and_std_over_bins(scores, values)
    p = torch.softmax(scores.double(), dim=1)
    mu = (p * values).sum(1, keepdim=True)
    assert torch.allclose(mean.double(), mu, rtol=1e-5)
    assert torch.allclose(std.double(), ((p * (values - mu) ** 2).sum(1, keepdim=True)).sqrt(), rtol=1e-4)


def test_depth_std_added_to_an_old_export_equals_a_fresh_export(exported, tmp_path):
    """A LacDepth ONNX exported without depth_std (the bundled models) gets the same depth_std from its graph."""
    from depth_estimation_ros.networks.depth_std_graph import DepthStdGraphError, add_depth_std_output
    from depth_estimation_ros.networks.depth_std_graph import main as add_main

    model, cfg, fresh = exported["lacdepth"]
    old = export_onnx(model, cfg, tmp_path / "old.onnx", HEIGHT, WIDTH, uncertainty=False)
    assert add_main([str(old), str(tmp_path / "added.onnx")]) == 0
    added = ort.InferenceSession(str(tmp_path / "added.onnx"), providers=["CPUExecutionProvider"])
    reference = ort.InferenceSession(str(fresh), providers=["CPUExecutionProvider"])
    x = _real_batch()[:1]
    for a, b in zip(added.run(["depth", "depth_std"], {"image": x}), reference.run(["depth", "depth_std"],
                                                                                   {"image": x})):
        assert np.allclose(a, b, rtol=1e-5, atol=1e-6)
    assert check_tensorrt_ready(tmp_path / "added.onnx") == []
    with pytest.raises(DepthStdGraphError, match="not a LacDepth export"):
        add_depth_std_output(onnx.load(exported["gatdepth"][2]))
    with pytest.raises(DepthStdGraphError, match="already has"):
        add_depth_std_output(onnx.load(fresh))


def test_readiness_checks_the_depth_std_output(exported):
    graph = onnx.load(exported["lacdepth"][2])
    std = next(o for o in graph.graph.output if o.name == "depth_std")
    std.type.tensor_type.shape.dim[3].dim_value = WIDTH // 2
    assert any("'depth_std'" in p and "must match" in p for p in check_tensorrt_ready(graph))


# --- TensorRT readiness on deliberately bad graphs ---------------------------------------------------------------

def _model(nodes, inputs, outputs, opset=17, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _tensor(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def test_readiness_rejects_reflect_padding_from_a_real_export(tmp_path):
    class ReflectPad(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")

    path = tmp_path / "reflect.onnx"
    torch.onnx.export(ReflectPad(), (torch.rand(1, 3, 8, 8),), str(path), opset_version=17, dynamo=False)
    problems = check_tensorrt_ready(path)
    assert any("reflect" in p for p in problems)


def test_readiness_rejects_data_dependent_and_unsupported_graphs():
    x = _tensor("x", [1, 3, 8, 8])
    nonzero = _model([helper.make_node("NonZero", ["x"], ["y"])], [x], [_tensor("y", [4, None], TensorProto.INT64)])
    assert any("data-dependent" in p for p in check_tensorrt_ready(nonzero))
    unique = _model([helper.make_node("Unique", ["x"], ["y"])], [x], [_tensor("y", [None])])
    assert any("not supported by TensorRT" in p for p in check_tensorrt_ready(unique))
    custom = _model([helper.make_node("MyOp", ["x"], ["y"], domain="my.domain")], [x], [_tensor("y", [1, 3, 8, 8])])
    custom.opset_import.append(helper.make_opsetid("my.domain", 1))
    assert any("custom domain" in p for p in check_tensorrt_ready(custom))
    dynamic = _model([helper.make_node("Relu", ["x"], ["y"])], [_tensor("x", [1, 3, "h", "w"])],
                     [_tensor("y", [1, 3, "h", "w"])])
    assert any("only the batch axis" in p for p in check_tensorrt_ready(dynamic))
    old = _model([helper.make_node("Relu", ["x"], ["y"])], [x], [_tensor("y", [1, 3, 8, 8])], opset=13)
    assert any("opset 13" in p for p in check_tensorrt_ready(old))
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])
    resize = _model([helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="cubic", antialias=1)], [x],
                    [_tensor("y", [1, 3, 16, 16])], opset=18, initializers=[scales])
    problems = check_tensorrt_ready(resize)
    assert any("cubic" in p for p in problems) and any("antialias" in p for p in problems)
    fine = _model([helper.make_node("Pad", ["x", "pads"], ["y"], mode="edge")], [x], [_tensor("y", [1, 3, 10, 10])],
                  initializers=[helper.make_tensor("pads", TensorProto.INT64, [8], [0, 0, 1, 1, 0, 0, 1, 1])])
    assert check_tensorrt_ready(fine) == []


def test_operator_list_names_its_source():
    ops = tensorrt_operator_list()
    assert "onnx-tensorrt" in ops["source"] and ops["tensorrt_version"].startswith("10")
    assert {"Conv", "Resize", "Softmax", "CumSum", "Elu", "ConvTranspose"} <= set(ops["supported"])
    assert "Unique" in ops["unsupported"]


# --- checkpoints and the depth-export CLI --------------------------------------------------------------------------

def test_checkpoint_round_trip_and_errors(tmp_path):
    torch.manual_seed(0)
    cfg = DepthNetworkConfig("gatdepth", "resnet18", pretrained=False, max_depth=10.0, gat_heads=2)
    model = build_depth_network(cfg)
    path = save_depth_checkpoint(tmp_path / "ckpt" / "model.pt", model, cfg, {"epoch": 3, "training_data_hash": "abc"})
    loaded, loaded_cfg, extra = load_depth_checkpoint(path)
    assert loaded_cfg == cfg and extra == {"epoch": 3, "training_data_hash": "abc"}
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(loaded.predict_depth(x), model.eval().predict_depth(x))
    assert sorted(os.listdir(path.parent)) == ["model.pt"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_depth_checkpoint(tmp_path / "nope.pt")
    torch.save({"config": {**cfg.__dict__, "network": "baseline"}, "state_dict": model.state_dict()},
               tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match="does not match a baseline/resnet18"):
        load_depth_checkpoint(tmp_path / "wrong.pt")
    v1_config = {k: v for k, v in cfg.__dict__.items() if k != "architecture_version"}
    torch.save({"config": v1_config, "state_dict": model.state_dict()}, tmp_path / "v1.pt")
    with pytest.raises(ValueError, match="version-1 networks.*retrain"):
        load_depth_checkpoint(tmp_path / "v1.pt")
    with pytest.raises(ValueError, match="architecture_version 1"):
        DepthNetworkConfig("gatdepth", "resnet18", architecture_version=1)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a depth checkpoint"):
        load_depth_checkpoint(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="reserved"):
        save_depth_checkpoint(tmp_path / "x.pt", model, cfg, {"config": 1})


def test_cli_with_and_without_checkpoint(tmp_path, capsys):
    out = tmp_path / "untrained.onnx"
    rc = main(["--network", "baseline", "--encoder", "resnet18", "--height", "64", "--width", "96", "--output",
               str(out)])
    assert rc == 0 and "TensorRT-readiness: ok" in capsys.readouterr().out
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert meta["trained"] == "false" and meta["encoder_init"] == "random"

    torch.manual_seed(1)
    cfg = DepthNetworkConfig("lacdepth", "efficientnet_lite0", pretrained=False)
    model = build_depth_network(cfg)
    ckpt = save_depth_checkpoint(tmp_path / "lac.pt", model, cfg, {"training_data_hash": "sha256:1234"})
    out = tmp_path / "trained.onnx"
    rc = main(["--checkpoint", str(ckpt), "--height", str(HEIGHT), "--width", str(WIDTH), "--output", str(out),
               "--dynamic-batch"])
    assert rc == 0
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert (meta["trained"], meta["training_data_hash"], meta["network"]) == ("true", "sha256:1234", "lacdepth")
    assert _max_relative_error(out, model.eval(), _real_batch()[:1]) <= 1e-3

    rc = main(["--checkpoint", str(ckpt), "--network", "gatdepth", "--height", "64", "--width", "96", "--output",
               str(tmp_path / "x.onnx")])
    assert rc == 2 and "contradicts the checkpoint" in capsys.readouterr().err
    rc = main(["--network", "lacdepth", "--encoder", "resnet18", "--height", "65", "--width", "96", "--output",
               str(tmp_path / "x.onnx")])
    assert rc == 2 and "multiples of 32" in capsys.readouterr().err
