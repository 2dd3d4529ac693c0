"""Depth networks: shapes, gradients, determinism, bins, log-binomial head, window graph attention."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from depth_estimation_ros.networks.depth_conversion import depth_to_disp, disp_to_depth
from depth_estimation_ros.networks.export import export_onnx
from depth_estimation_ros.networks.factory import (
    DepthNetworkConfig,
    build_depth_network,
)
from depth_estimation_ros.networks.gatdepth import stage_attention
from depth_estimation_ros.networks.graph_attention import (
    WindowGraphAttention,
    WindowPooledAttention,
    window_attention_weights,
    window_validity_mask,
)
from depth_estimation_ros.networks.lacdepth import laplacian_residuals
from depth_estimation_ros.networks.metric_bins import (
    attract_bin_centres,
    attract_in_groups,
    bin_centres_from_widths,
    channel_max,
    channel_sum,
    expected_value_over_bins,
    log_binomial_coefficients,
    log_binomial_probabilities,
    log_binomial_probabilities_from_logit,
    log_binomial_scores,
    normalised_to_depth,
)

NETWORKS = [("lacdepth", "efficientnet_lite0"), ("gatdepth", "efficientnet_lite0"), ("baseline", "resnet18")]


def _net(network: str, encoder: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_depth_network(DepthNetworkConfig(network, encoder, pretrained=False, **kw))


@pytest.mark.parametrize("network,encoder", NETWORKS)
def test_shapes_at_several_sizes_and_depth_range(network, encoder):
    model = _net(network, encoder, min_depth=0.5, max_depth=40.0).eval()
    for h, w in [(64, 96), (96, 320), (128, 64)]:
        with torch.no_grad():
            out = model(torch.rand(2, 3, h, w))
            full = model.predict_depth(torch.rand(1, 3, h, w))
        assert [tuple(d.shape) for d in out["depth"]] == [(2, 1, h >> s, w >> s) for s in range(4)]
        if "disp" in out:
            assert [tuple(d.shape) for d in out["disp"]] == [(2, 1, h >> s, w >> s) for s in range(4)]
            assert all(((d >= 0) & (d <= 1)).all() for d in out["disp"])
        assert full.shape == (1, 1, h, w)
        for depth in out["depth"] + [full]:
            assert torch.isfinite(depth).all()
            assert depth.min() >= 0.5 - 1e-5 and depth.max() <= 40.0 + 1e-4


@pytest.mark.parametrize("network,encoder", NETWORKS)
def test_gradients_reach_every_parameter(network, encoder):
    model = _net(network, encoder).train()
    for module in model.modules():  # timm zero-initialises the last BN of residual blocks, which hides gradients
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
    out = model(torch.rand(2, 3, 64, 96))
    loss = sum(d.log().mean() for d in out["depth"])
    if "relative" in out:
        loss = loss + out["relative"].mean()
    loss.backward()
    dead = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
            or p.grad.abs().sum() == 0]
    assert not dead, f"parameters without gradient: {dead[:10]}"


@pytest.mark.parametrize("network,encoder", NETWORKS)
def test_eval_output_is_deterministic_and_predict_matches_forward(network, encoder):
    model = _net(network, encoder).eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        a, b = model.predict_depth(x), model.predict_depth(x.clone())
        full_from_forward = model(x)["depth"][0]
    assert torch.equal(a, b)
    assert torch.allclose(a, full_from_forward, rtol=1e-5, atol=1e-6)


def test_bad_inputs_are_rejected_with_the_fix():
    model = _net("baseline", "resnet18")
    with pytest.raises(ValueError, match="multiples of 32"):
        model.predict_depth(torch.rand(1, 3, 70, 96))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model.predict_depth(torch.rand(1, 1, 64, 96))
    with pytest.raises(ValueError, match="unknown network"):
        DepthNetworkConfig("monodepth3", "resnet18")
    with pytest.raises(ValueError, match="min_depth"):
        DepthNetworkConfig("lacdepth", "resnet18", min_depth=5.0, max_depth=1.0)


def test_disp_to_depth_is_monodepth2_and_invertible():
    disp = torch.tensor([0.0, 0.5, 1.0])
    scaled, depth = disp_to_depth(disp, 0.1, 100.0)
    assert torch.allclose(depth[[0, 2]], torch.tensor([100.0, 0.1]))
    assert torch.allclose(scaled, 1.0 / depth)
    assert torch.allclose(depth_to_disp(depth, 0.1, 100.0), disp, atol=1e-6)


# --- LacDepth metric stage ---------------------------------------------------------------------------------------

def test_bin_centres_are_ordered_inside_range_after_attraction():
    torch.manual_seed(1)
    widths = F.softplus(torch.randn(2, 64, 3, 4)) + 1e-3
    centres = bin_centres_from_widths(widths)
    assert (centres.diff(dim=1) > 0).all() and (centres > 0).all() and (centres < 1).all()
    for n_attractors in (16, 8, 4, 1):
        attractors = torch.rand(2, n_attractors, 3, 4)
        moved = attract_bin_centres(centres, attractors)
        assert (moved.diff(dim=1) >= 0).all()
        assert (moved >= 0).all() and (moved <= 1).all()
        assert not torch.allclose(moved, centres)  # attractors actually move the bins
        centres = moved
    metric = normalised_to_depth(centres, 0.1, 80.0)
    assert (metric >= 0.1 - 1e-6).all() and (metric <= 80.0 + 1e-4).all()


def test_attractor_formula_pinned():
    centres = torch.tensor([0.2, 0.5]).view(1, 2, 1, 1)
    attractors = torch.tensor([0.21, 0.52]).view(1, 2, 1, 1)
    moved = attract_bin_centres(centres, attractors, alpha=1000.0)
    for i, c in enumerate([0.2, 0.5]):
        expected = c + sum((a - c) * math.exp(-1000.0 * (a - c) ** 2) for a in (0.21, 0.52)) / 2
        assert moved[0, i, 0, 0].item() == pytest.approx(expected, rel=1e-5)


def test_lacdepth_bins_ordered_and_inside_depth_range():
    model = _net("lacdepth", "efficientnet_lite0", min_depth=0.2, max_depth=30.0).eval()
    with torch.no_grad():
        bins = model(torch.rand(1, 3, 64, 96))["bin_centres"]
    assert bins.shape == (1, 64, 32, 48)
    assert (bins.diff(dim=1) >= 0).all()
    assert (bins >= 0.2 - 1e-6).all() and (bins <= 30.0 + 1e-4).all()


def test_log_binomial_probabilities_sum_to_one_and_peak_at_the_mode():
    coeffs = log_binomial_coefficients(64)
    exact = torch.tensor([math.lgamma(64) - math.lgamma(k + 1) - math.lgamma(64 - k) for k in range(64)])
    assert torch.allclose(coeffs, exact, atol=0.1)  # Stirling is within 0.1 nats of the exact value
    q = torch.tensor([1e-9, 0.25, 0.5, 1.0]).view(1, 4, 1, 1).permute(1, 0, 2, 3)  # (4, 1, 1, 1)
    t = torch.tensor([0.05, 1.0, 3.0, 50.0]).view(4, 1, 1, 1)
    probs = log_binomial_probabilities(q, t, coeffs)
    assert probs.shape == (4, 64, 1, 1)
    assert torch.allclose(probs.sum(dim=1), torch.ones(4, 1, 1), atol=1e-5)
    assert torch.isfinite(probs).all() and (probs >= 0).all()
    assert abs(int(probs[1].argmax()) - round(0.25 * 63)) <= 1  # binomial mode near (K-1) q
    # the head's cheap form (logit input, k-independent term dropped) is the same distribution
    logits = torch.randn(3, 1, 4, 5) * 4
    temps = torch.rand(3, 1, 4, 5) * 5 + 0.05
    assert torch.allclose(log_binomial_probabilities_from_logit(logits, temps, coeffs),
                          log_binomial_probabilities(torch.sigmoid(logits), temps, coeffs), atol=1e-5)
    scores = log_binomial_scores(logits, temps, coeffs)
    values = torch.rand(3, 64, 4, 5) * 80
    expected = (torch.softmax(scores, dim=1) * values).sum(dim=1, keepdim=True)
    assert torch.allclose(expected_value_over_bins(scores, values), expected, rtol=1e-5)


def test_channel_reductions_equal_torch_reductions():
    torch.manual_seed(4)
    for channels in (64, 63, 5, 1):
        x = torch.randn(2, channels, 3, 5) * 100
        assert torch.equal(channel_max(x), x.amax(dim=1, keepdim=True))
        assert torch.allclose(channel_sum(x), x.sum(dim=1, keepdim=True), rtol=1e-5, atol=1e-3)


def test_attractor_update_matches_the_broadcast_mean_form():
    torch.manual_seed(5)
    centres = bin_centres_from_widths(torch.rand(2, 64, 3, 4) + 0.1)
    for n_attractors in (16, 8, 4, 1):
        attractors = torch.rand(2, n_attractors, 3, 4)
        diff = attractors.unsqueeze(2) - centres.unsqueeze(1)
        expected = centres + (diff * torch.exp(-1000.0 * diff * diff)).mean(dim=1)
        assert torch.allclose(attract_bin_centres(centres, attractors), expected, atol=1e-6)
        for group in (1, 3, 4, n_attractors):  # any grouping (3: a last group smaller than the others)
            assert torch.allclose(attract_in_groups(centres, attractors, group), expected, atol=1e-6)


def test_lacdepth_metric_head_runs_at_half_resolution_and_is_upsampled():
    model = _net("lacdepth", "efficientnet_lite0", min_depth=0.2, max_depth=30.0).eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        out = model(x)
        relative, features, _, centres = model._relative_and_bins(x)
        metric = normalised_to_depth(centres[3], 0.2, 30.0)
        half = model.final_head(torch.cat([relative, features[3]], dim=1), metric)
    assert relative.shape == (1, 1, 32, 48) and out["relative"].shape == (1, 1, 64, 96)
    assert ((out["relative"] >= 0) & (out["relative"] <= 1)).all()
    expected = F.interpolate(half, scale_factor=2.0, mode="bilinear", align_corners=False).clamp(0.2, 30.0)
    assert torch.allclose(out["depth"][0], expected, rtol=1e-5)


def test_lacdepth_at_metric_stride_4_has_no_stride_2_level_and_trains_every_parameter():
    model = _net("lacdepth", "efficientnet_lite0", min_depth=0.2, max_depth=30.0, num_bins=32, metric_stride=4)
    assert len(model.levels) == len(model.attractor_layers) == 3 and len(model.level_heads) == 2
    x = torch.rand(2, 3, 64, 96)
    model.eval()
    with torch.no_grad():
        out = model(x)
        relative, features, _, centres = model._relative_and_bins(x)
        quarter = model.final_head(torch.cat([relative, features[-1]], dim=1),
                                   normalised_to_depth(centres[-1], 0.2, 30.0))
        depth, std = model.predict_depth_and_std(x)
    assert [tuple(d.shape) for d in out["depth"]] == [(2, 1, 64, 96), (2, 1, 16, 24), (2, 1, 8, 12)]
    assert relative.shape == (2, 1, 16, 24) and out["relative"].shape == (2, 1, 64, 96)
    assert out["bin_centres"].shape == (2, 32, 16, 24)
    expected = F.interpolate(quarter, scale_factor=4.0, mode="bilinear", align_corners=False).clamp(0.2, 30.0)
    assert torch.allclose(out["depth"][0], expected, rtol=1e-4, atol=1e-5)
    assert torch.allclose(depth, out["depth"][0], rtol=1e-5) and std.shape == depth.shape and (std >= 0).all()
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
    out = model(x)
    (sum(d.log().mean() for d in out["depth"]) + out["relative"].mean()).backward()
    dead = [name for name, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead, f"parameters without gradient: {dead[:10]}"
    with pytest.raises(ValueError, match="metric_stride"):
        DepthNetworkConfig("lacdepth", "efficientnet_lite0", metric_stride=8)


def test_laplacian_residuals_are_the_band_pass_of_the_image():
    image = torch.rand(1, 3, 64, 96)
    res = laplacian_residuals(image, 4)
    assert [tuple(r.shape[-2:]) for r in res] == [(32, 48), (16, 24), (8, 12), (4, 6)]
    flat = torch.full((1, 3, 64, 96), 0.3)
    assert all(r.abs().max() < 1e-6 for r in laplacian_residuals(flat, 4))
    assert all(torch.equal(a, b) for a, b in zip(laplacian_residuals(image, 4, finest=2), res[1:]))


# --- window graph attention --------------------------------------------------------------------------------------

def test_attention_weights_sum_to_one_over_valid_neighbours_and_ignore_padding():
    torch.manual_seed(2)
    centre, neighbour = torch.randn(2, 3, 5, 6), torch.randn(2, 3, 5, 6) * 5
    weights = window_attention_weights(centre, neighbour, window=3)
    valid = window_validity_mask(5, 6, window=3)
    assert weights.shape == (2, 3, 9, 5, 6) and valid.shape == (1, 1, 9, 5, 6)
    assert torch.allclose(weights.sum(dim=2), torch.ones(2, 3, 5, 6), atol=1e-6)
    assert (weights * (1 - valid)).abs().max() == 0  # padded neighbours get exactly zero weight
    assert int(valid[0, 0, :, 0, 0].sum()) == 4 and int(valid[0, 0, :, 2, 2].sum()) == 9  # corner vs interior
    # changing what lies in the padding cannot change anything: the corner's weights equal the 2x2 softmax
    e = [F.leaky_relu(centre[0, 0, 0, 0] + neighbour[0, 0, y, x], 0.2) for y, x in [(0, 0), (0, 1), (1, 0), (1, 1)]]
    expected = torch.softmax(torch.stack(e), dim=0)
    got = weights[0, 0, [4, 5, 7, 8], 0, 0]
    assert torch.allclose(got, expected, atol=1e-6)


def test_window_graph_attention_matches_a_per_pixel_reference():
    torch.manual_seed(3)
    block = WindowGraphAttention(8, heads=2, window=5).eval()
    x = torch.randn(1, 8, 6, 7)
    with torch.no_grad():
        out = block(x)
        wh = block.project(x)
        a_l = block.score_centre.weight.view(2, 4)
        a_r = block.score_neighbour.weight.view(2, 4)
    expected = torch.zeros_like(x)
    for head in range(2):
        ch = slice(4 * head, 4 * head + 4)
        for i in range(6):
            for j in range(7):
                nbrs = [(y, z) for y in range(i - 2, i + 3) for z in range(j - 2, j + 3) if 0 <= y < 6 and 0 <= z < 7]
                e = torch.stack([F.leaky_relu(a_l[head] @ wh[0, ch, i, j] + a_r[head] @ wh[0, ch, y, z], 0.2)
                                 for y, z in nbrs])
                alpha = torch.softmax(e, dim=0)
                expected[0, ch, i, j] = sum(a * wh[0, ch, y, z] for a, (y, z) in zip(alpha, nbrs))
    assert torch.allclose(out, x + F.elu(expected), atol=1e-5)
    with torch.no_grad():  # large scores: the max-shifted exponentials neither overflow nor underflow to 0/0
        assert torch.isfinite(block(x * 1e3)).all()


def test_gatdepth_window_is_configurable():
    model = _net("gatdepth", "efficientnet_lite0", gat_window=5, gat_heads=2).eval()
    assert all(stage.attention.window == 5 for stage in model.stages)
    with torch.no_grad():
        assert model.predict_depth(torch.rand(1, 3, 64, 96)).shape == (1, 1, 64, 96)


def test_gatdepth_without_attention_below_a_stride_keeps_shapes_and_trains():
    model = _net("gatdepth", "efficientnet_lite0", gat_min_stride=4)
    with_attention = [isinstance(stage.attention, WindowGraphAttention) for stage in model.stages]
    assert with_attention == [True, True, True, False, False]  # strides 16, 8, 4, 2, 1
    out = model.train()(torch.rand(2, 3, 64, 96))
    assert [tuple(d.shape) for d in out["depth"]] == [(2, 1, 64 >> s, 96 >> s) for s in range(4)]
    sum(d.log().mean() for d in out["depth"]).backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ValueError, match="gat_min_stride"):
        DepthNetworkConfig("gatdepth", "efficientnet_lite0", gat_min_stride=3)


@pytest.mark.parametrize("shared_gate", [False, True])  # one gate per channel, or one per pixel for all channels
def test_pooled_attention_matches_a_per_pixel_reference_and_masks_the_border(shared_gate):
    torch.manual_seed(4)
    block = WindowPooledAttention(4, window=3, shared_gate=shared_gate).eval()
    x = torch.randn(1, 4, 5, 6)
    with torch.no_grad():
        out = block(x)
        gates = torch.sigmoid(block.gate(x))
        assert gates.shape[1] == (1 if shared_gate else 4)
        expected = torch.zeros_like(x)
        for i in range(5):
            for j in range(6):  # neighbours inside the map only: the border pixels' windows are cut, not padded
                nbrs = [(y, z) for y in range(i - 1, i + 2) for z in range(j - 1, j + 2) if 0 <= y < 5 and 0 <= z < 6]
                g = torch.stack([gates[0, :, y, z] for y, z in nbrs])  # (neighbours, C)
                h = torch.stack([x[0, :, y, z] for y, z in nbrs])
                # per channel, summing to 1 over the window (up to the floor, 9 x GATE_FLOOR on the gate sum)
                alpha = g / (g.sum(dim=0) + 9 * block.GATE_FLOOR)
                expected[0, :, i, j] = (alpha * h).sum(dim=0)
        expected = torch.relu(x + block.project(expected))
    assert torch.allclose(out, expected, atol=1e-6)
    with torch.no_grad():  # gates that all underflow to 0: finite, the window sum is 0 and W adds only its bias
        block.gate.bias.fill_(-1e4)
        assert torch.allclose(block(x), torch.relu(x + block.project.bias.view(1, -1, 1, 1)))


def test_gated_attention_is_the_window_mean_of_gated_values_without_division(tmp_path):
    import onnx

    torch.manual_seed(5)
    block = WindowPooledAttention(4, window=3, normalise=False).eval()
    x = torch.randn(1, 4, 5, 6)
    with torch.no_grad():
        gated = torch.sigmoid(block.gate(x)) * x
        expected = torch.zeros_like(x)
        for i in range(5):
            for j in range(6):  # a zero-padded 3 x 3 mean: the border pixels' missing neighbours add 0
                rows, cols = slice(max(i - 1, 0), i + 2), slice(max(j - 1, 0), j + 2)
                expected[0, :, i, j] = gated[0, :, rows, cols].sum(dim=(1, 2)) / 9
        assert torch.allclose(block(x), torch.relu(x + block.project(expected)), atol=1e-6)
    cfg = DepthNetworkConfig("gatdepth", "efficientnet_lite0", pretrained=False, gat_attention="gated",
                             gat_pooled_max_stride=4)
    model = build_depth_network(cfg).eval()
    blocks = [stage.attention for stage in model.stages]  # strides 16, 8, 4, 2, 1
    assert [type(b) for b in blocks] == [WindowGraphAttention] * 2 + [WindowPooledAttention] * 3
    assert not any(b.normalise for b in blocks[2:])
    graph = onnx.load(str(export_onnx(model, cfg, tmp_path / "gated.onnx", 64, 96, self_test_reference=False))).graph
    averages = [n for n in graph.node if n.op_type == "AveragePool"]
    assert len(averages) == 3  # one window mean per gated block, and no division after it
    consumers = {i for n in graph.node for i in n.input if n.op_type in ("Div", "Reciprocal")}
    assert not consumers & {a.output[0] for a in averages}


def test_gated_max_stride_gives_only_the_finest_stages_the_division_free_block(tmp_path):
    import onnx

    strides = (16, 8, 4, 2, 1)
    assert [stage_attention(s, "pooled", 4, 1) for s in strides] == ["pairwise"] * 2 + ["pooled"] * 2 + ["gated"]
    assert [stage_attention(s, "pairwise", 16, 2) for s in strides] == ["pairwise"] * 3 + ["gated"] * 2
    assert [stage_attention(s, "pooled", 16, 0, min_stride=2) for s in strides] == ["pooled"] * 4 + ["none"]
    cfg = DepthNetworkConfig("gatdepth", "efficientnet_lite0", pretrained=False, gat_attention="pooled",
                             gat_pooled_max_stride=4, gat_gated_max_stride=1)
    model = build_depth_network(cfg).eval()
    blocks = [stage.attention for stage in model.stages]  # strides 16, 8, 4, 2, 1
    assert [type(b) for b in blocks] == [WindowGraphAttention] * 2 + [WindowPooledAttention] * 3
    assert [b.normalise for b in blocks[2:]] == [True, True, False]
    graph = onnx.load(str(export_onnx(model, cfg, tmp_path / "s1.onnx", 64, 96, self_test_reference=False))).graph
    averages = {n.output[0] for n in graph.node if n.op_type == "AveragePool"}
    divided = {n.input[0] for n in graph.node if n.op_type == "Div"} & averages
    # two normalised blocks (a window mean of gated values divided by one of gates) and one gated block (no division)
    assert len(averages) == 5 and len(divided) == 2
    with pytest.raises(ValueError, match="gat_gated_max_stride"):
        DepthNetworkConfig("gatdepth", "efficientnet_lite0", gat_gated_max_stride=3)


def test_shared_gate_attention_divides_one_channel_maps_only(tmp_path):
    import onnx

    cfg = DepthNetworkConfig("gatdepth", "efficientnet_lite0", pretrained=False, gat_attention="shared",
                             gat_pooled_max_stride=4)
    model = build_depth_network(cfg).eval()
    blocks = [stage.attention for stage in model.stages]  # strides 16, 8, 4, 2, 1
    assert [type(b) for b in blocks] == [WindowGraphAttention] * 2 + [WindowPooledAttention] * 3
    assert all(b.shared_gate and b.normalise and b.gate.out_channels == 1 for b in blocks[2:])
    path = export_onnx(model, cfg, tmp_path / "shared.onnx", 64, 96, self_test_reference=False)
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(path))).graph
    channels = {v.name: v.type.tensor_type.shape.dim[1].dim_value for v in graph.value_info}
    averages = [n for n in graph.node if n.op_type == "AveragePool"]
    assert len(averages) == 6  # the gated values' and the gates' window means of three blocks
    divisions = [n for n in graph.node if n.op_type in ("Div", "Reciprocal") and "attention" in n.name
                 and n.name.split("/")[1] in ("stages.2", "stages.3", "stages.4")]
    assert len(divisions) == 3 and all(channels[n.output[0]] == 1 for n in divisions)
    # the gates reach the C-channel maps by Conv, not by a Mul that broadcasts a one-channel map
    muls = [n for n in graph.node if n.op_type == "Mul" and n.name.split("/")[1] in ("stages.2", "stages.3",
                                                                                      "stages.4")]
    assert muls and all(len({channels.get(i, 0) for i in n.input if i in channels}) == 1 for n in muls)


def test_gatdepth_with_pooled_attention_is_configured_trains_and_exports_few_ops(tmp_path):
    import onnx

    cfg = DepthNetworkConfig("gatdepth", "efficientnet_lite0", pretrained=False, gat_attention="pooled")
    model = build_depth_network(cfg)
    assert all(isinstance(stage.attention, WindowPooledAttention) for stage in model.stages)
    out = model.train()(torch.rand(2, 3, 64, 96))
    sum(d.log().mean() for d in out["depth"]).backward()
    assert all(p.grad is not None for p in model.parameters())
    pairwise = export_onnx(_net("gatdepth", "efficientnet_lite0").eval(),
                           DepthNetworkConfig("gatdepth", "efficientnet_lite0"), tmp_path / "pairwise.onnx", 64, 96,
                           self_test_reference=False)
    pooled = export_onnx(model.eval(), cfg, tmp_path / "pooled.onnx", 64, 96, self_test_reference=False)
    ops = {path.stem: len(onnx.load(str(path)).graph.node) for path in (pairwise, pooled)}
    assert ops["pooled"] < ops["pairwise"] / 3  # five blocks of 10 ops instead of 102
    hybrid = build_depth_network(DepthNetworkConfig("gatdepth", "efficientnet_lite0", pretrained=False,
                                                    gat_attention="pooled", gat_pooled_max_stride=4))
    kinds = [type(stage.attention) for stage in hybrid.stages]  # strides 16, 8, 4, 2, 1
    assert kinds == [WindowGraphAttention] * 2 + [WindowPooledAttention] * 3
    with pytest.raises(ValueError, match="gat_attention"):
        DepthNetworkConfig("gatdepth", "efficientnet_lite0", gat_attention="softmax")
    with pytest.raises(ValueError, match="gat_pooled_max_stride"):
        DepthNetworkConfig("gatdepth", "efficientnet_lite0", gat_pooled_max_stride=3)
