"""The speed benchmarks' helpers: the reference U-Net they compare against and the per-part ONNX Runtime profile."""

from __future__ import annotations

import onnx
import pytest
import torch

from depth_estimation_ros.benchmarks.onnx_profile import ORT_REORDERS, PARTS, count_ops, node_parts, profile_parts
from depth_estimation_ros.benchmarks.reference_unet import build_reference_unet, reference_config
from depth_estimation_ros.networks.export import export_onnx
from depth_estimation_ros.networks.factory import DepthNetworkConfig, build_depth_network

HEIGHT, WIDTH = 64, 128


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("profile")
    torch.manual_seed(0)
    cfg = DepthNetworkConfig("lacdepth", "efficientnet_lite0", pretrained=False)
    lacdepth = export_onnx(build_depth_network(cfg), cfg, folder / "lacdepth.onnx", HEIGHT, WIDTH,
                           self_test_reference=False)
    reference = export_onnx(build_reference_unet(), reference_config(), folder / "reference.onnx", HEIGHT, WIDTH,
                            self_test_reference=False)
    return {"lacdepth": lacdepth, "reference": reference}


def test_reference_unet_is_the_baseline_with_relu_and_zero_padding(exports):
    reference = build_reference_unet()
    baseline = build_depth_network(DepthNetworkConfig("baseline", "efficientnet_lite0", pretrained=False))
    assert {k: v.shape for k, v in reference.state_dict().items()} == \
        {k: v.shape for k, v in baseline.state_dict().items()}
    ops = {node.op_type for node in onnx.load(exports["reference"]).graph.node}
    assert "Elu" not in ops and "Pad" not in ops  # ReLU fused into the conv, zero padding folded into it
    with torch.no_grad():
        depth = reference.predict_depth(torch.rand(1, 3, HEIGHT, WIDTH))
    assert depth.shape == (1, 1, HEIGHT, WIDTH) and bool(((depth >= 0.1) & (depth <= 80.0)).all())


def test_every_node_gets_its_part(exports):
    graph = onnx.load(exports["lacdepth"]).graph
    parts = node_parts(graph, "lacdepth")
    assert set(parts) == {node.name for node in graph.node}
    assert set(parts.values()) <= set(PARTS["lacdepth"].values())
    by_name = {node.name: node for node in graph.node}
    pools = [name for name, node in by_name.items() if node.op_type == "AveragePool" and name.count("/") == 1]
    assert pools and all(parts[name] == "Laplacian residual pyramid" for name in pools)  # unscoped: by consumer
    depth_node = next(node for node in graph.node if "depth" in node.output)
    assert parts[depth_node.name] == "log-binomial head"  # the final clamp: by what it finishes
    total, per_part = count_ops(exports["lacdepth"], "lacdepth")
    assert total == len(graph.node) == sum(per_part.values())


def test_profile_sums_kernel_time_by_part(exports):
    profile = profile_parts(exports["lacdepth"], "lacdepth", threads=1, warmup=1, iterations=2)
    assert profile.total_ops == len(onnx.load(exports["lacdepth"]).graph.node)
    known = set(PARTS["lacdepth"].values()) | {ORT_REORDERS}
    assert set(profile.ms) <= known and {"encoder", "bin centres / attractors", "log-binomial head"} <= set(profile.ms)
    assert all(ms > 0 for ms in profile.ms.values()) and sum(profile.kernels.values()) > 0


def test_benchmark_builds_the_layout_it_is_given():
    from depth_estimation_ros.benchmarks.networks import SHIPPED_LAYOUT, build_benchmark_network, parse_layout

    assert parse_layout(list(SHIPPED_LAYOUT)) == {"num_bins": 32, "metric_stride": 4, "gat_attention": "shared",
                                                  "gat_min_stride": 2}
    model, cfg, _ = build_benchmark_network("lacdepth", "efficientnet_lite0", parse_layout(list(SHIPPED_LAYOUT)))
    assert (cfg.num_bins, cfg.metric_stride, model.metric_stride, len(model.levels)) == (32, 4, 4, 3)
    _, default_cfg, _ = build_benchmark_network("lacdepth", "efficientnet_lite0")
    assert (default_cfg.num_bins, default_cfg.metric_stride) == (64, 2)
    assert parse_layout(["gat_attention=pooled", "gat_min_stride=2"]) == {"gat_attention": "pooled",
                                                                          "gat_min_stride": 2}
    with pytest.raises(Exception, match="KEY=VALUE"):
        parse_layout(["num_bins"])


# the layout fields each bundled network reads (the others keep their defaults in its network_config)
LAYOUT_FIELDS = {"lacdepth": ("num_bins", "metric_stride"),
                 "gatdepth": ("gat_min_stride", "gat_attention", "gat_pooled_max_stride", "gat_gated_max_stride",
                              "gat_window")}


@pytest.mark.parametrize("model", ["lacdepth", "lacdepth_indoor", "gatdepth"])
def test_the_shipped_layout_is_the_bundled_models_layout(model):
    """The benchmarks' default layout builds each bundled network as it was trained."""
    import json

    from depth_estimation_ros.benchmarks.networks import SHIPPED_LAYOUT, build_benchmark_network, parse_layout
    from depth_estimation_ros.resources.model_registry import resolve_model

    meta = {p.key: p.value for p in onnx.load(resolve_model(model), load_external_data=False).metadata_props}
    config = json.loads(meta["network_config"])
    _, built, _ = build_benchmark_network(config["network"], config["encoder"], parse_layout(list(SHIPPED_LAYOUT)))
    for field in LAYOUT_FIELDS[config["network"]]:
        assert config[field] == getattr(built, field), field
