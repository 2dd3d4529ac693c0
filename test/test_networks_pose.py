"""PoseNet and AlignNet (training-only pose networks)."""

from __future__ import annotations

import torch

from depth_estimation_ros.networks.factory import (
    build_align_network,
    build_pose_network,
)
from depth_estimation_ros.networks.pose import align_translation


def test_posenet_shapes_scale_and_gradients():
    torch.manual_seed(0)
    net = build_pose_network("resnet18", pretrained=False).train()
    target, source = torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96)
    axisangle, translation = net(target, source)
    assert axisangle.shape == (2, 1, 3) and translation.shape == (2, 1, 3)
    assert axisangle.abs().max() < 0.1 and translation.abs().max() < 0.1  # the 0.01 output scaling
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
    axisangle, translation = net(target, source)
    (axisangle.sum() + translation.sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    assert net.encoder.body.conv1.weight.shape[1] == 6


def test_posenet_on_a_lite_encoder_with_packaged_weights():
    net = build_pose_network("efficientnet_lite0", pretrained=True).eval()
    with torch.no_grad():
        axisangle, translation = net(torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96))
    assert axisangle.shape == (1, 1, 3) and torch.isfinite(translation).all()


def test_alignnet_starts_at_unit_scale_and_zero_residual():
    torch.manual_seed(0)
    net = build_align_network("resnet18", pretrained=False).train()
    scale, delta_t = net(torch.rand(3, 3, 64, 96), torch.rand(3, 3, 64, 96))
    assert scale.shape == (3, 1) and delta_t.shape == (3, 3)
    assert (scale > 0).all()
    assert torch.allclose(scale, torch.ones(3, 1), atol=1e-2)
    assert delta_t.abs().max() < 1e-2
    t_colmap = torch.tensor([[1.0, -2.0, 0.5]]).repeat(3, 1)
    refined = align_translation(t_colmap, scale, delta_t)
    assert torch.allclose(refined, t_colmap, atol=5e-2)  # starts from COLMAP's translation, not from zero
    (refined.sum() + scale.sum()).backward()
    assert net.head.weight.grad.abs().sum() > 0 and net.encoder.body.conv1.weight.grad is not None
