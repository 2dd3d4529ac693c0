"""depth-export --from-onnx: a network rebuilt from its own exported graph and exported again with this version's
graph code gives the same outputs, keeps the file's metadata, and refuses (writing nothing) where the weights do not
come back."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from depth_estimation_ros.networks.export import export_onnx, main
from depth_estimation_ros.networks.factory import DepthNetworkConfig, build_depth_network
from depth_estimation_ros.networks.onnx_weights import check_same_outputs, module_path, reexport_onnx
from depth_estimation_ros.onnx_contract.depth_onnx import read_metadata
from depth_estimation_ros.resources.model_registry import resolve_model

HEIGHT, WIDTH = 64, 96


def _random_export(path, network: str, seed: int, **layout):
    """A small export whose batch norms hold non-trivial statistics (so the folding the loader undoes matters)."""
    torch.manual_seed(seed)
    cfg = DepthNetworkConfig(network, "efficientnet_lite0", pretrained=False, **layout)
    model = build_depth_network(cfg).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return export_onnx(model, cfg, path, HEIGHT, WIDTH, metadata={"trained": "true", "steps": 7,
                                                                  "uncertainty_scale": 0.5})


def test_module_path_follows_the_scopes_of_containers():
    assert module_path("/encoder/body/blocks.0/blocks.0.0/conv_dw/Conv") == "encoder.body.blocks.0.0.conv_dw"
    assert module_path("/attractor_layers.2/attractors/attractors.2/Conv") == "attractor_layers.2.attractors.2"
    assert module_path("/levels.1/reduce/Conv") == "levels.1.reduce"


@pytest.mark.parametrize(("network", "layout"), [("lacdepth", {"num_bins": 32, "metric_stride": 4}),
                                                 ("gatdepth", {"gat_attention": "shared"}),
                                                 ("baseline", {})])
def test_reexport_gives_the_same_outputs_and_keeps_theread_metadata(tmp_path, network, layout):
    source = _random_export(tmp_path / "source.onnx", network, seed=3, **layout)
    output, worst = reexport_onnx(source, tmp_path / "again.onnx")
    assert worst <= 1e-4
    before, after = read_metadata(source), read_metadata(output)
    for key in ("trained", "steps", "uncertainty_scale", "training_data_hash", "input_height", "input_width"):
        assert after[key] == before[key], key
    assert after["reexported_from"] == "source.onnx"
    assert json.loads(after["network_config"])["network"] == network
    image = np.random.default_rng(1).random((1, 3, HEIGHT, WIDTH), dtype=np.float32)
    assert check_same_outputs(source, output, image) <= 1e-4  # on another input than the one it was checked on


def test_the_bundled_lacdepth_reexports_to_the_current_graph(tmp_path):
    source = resolve_model("lacdepth")
    assert main(["--from-onnx", str(source), "--output", str(tmp_path / "lacdepth.onnx")]) == 0
    graph = onnx.load(str(tmp_path / "lacdepth.onnx"))
    assert [out.name for out in graph.graph.output] == ["depth", "depth_std"]
    assert read_metadata(tmp_path / "lacdepth.onnx")["training_frames"] == read_metadata(source)["training_frames"]


def test_weights_that_do_not_come_back_are_refused_and_nothing_is_written(tmp_path):
    one = _random_export(tmp_path / "one.onnx", "baseline", seed=1)
    other = _random_export(tmp_path / "other.onnx", "baseline", seed=2)
    image = np.random.default_rng(0).random((1, 3, HEIGHT, WIDTH), dtype=np.float32)
    with pytest.raises(ValueError, match="not all of its weights were recovered"):
        check_same_outputs(one, other, image)
    # a file whose stored configuration does not match its graph (another layout): shapes differ
    graph = onnx.load(str(_random_export(tmp_path / "lac.onnx", "lacdepth", seed=1, num_bins=32)))
    for prop in graph.metadata_props:
        if prop.key == "network_config":
            config = json.loads(prop.value)
            config["num_bins"] = 16
            prop.value = json.dumps(config)
    onnx.save(graph, tmp_path / "mislabelled.onnx")
    assert main(["--from-onnx", str(tmp_path / "mislabelled.onnx"), "--output", str(tmp_path / "out.onnx")]) != 0
    assert not (tmp_path / "out.onnx").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lac.onnx", "mislabelled.onnx", "one.onnx", "other.onnx"]


def test_from_onnx_refuses_flags_that_would_change_the_file(tmp_path, capsys):
    source = resolve_model("lacdepth")
    assert main(["--from-onnx", str(source), "--output", str(tmp_path / "x.onnx"), "--height", "96"]) != 0
    assert "drop --height" in capsys.readouterr().err
    assert main(["--from-onnx", str(source), "--output", str(tmp_path / "x.onnx"), "--dynamic-batch"]) != 0
    assert "drop --dynamic-batch" in capsys.readouterr().err
    assert main(["--network", "lacdepth", "--encoder", "efficientnet_lite0", "--output", str(tmp_path / "y.onnx")]) != 0
    assert "--height and --width are required" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
