"""The plain U-Net that the networks' speed targets are measured against (built by the benchmarks, never shipped).

monodepth2's decoder layout (Godard et al. 2019; the baseline's channels 16..256, a 3x3 conv before and after each
bilinear x2, skip concatenation) with the cheapest ordinary block, 3x3 conv + ReLU with zero padding (the conv and
its activation are one kernel in ONNX Runtime and TensorRT), and one sigmoid disparity head at full resolution in the
exported graph. It differs from ``networks/baseline.py`` (the accuracy control) only in ELU + replicate padding ->
ReLU + zero padding, so it is the faster of the two: the stricter reference.
"""

from __future__ import annotations

from torch import nn

from depth_estimation_ros.networks.baseline import BaselineDepth
from depth_estimation_ros.networks.factory import DepthNetworkConfig
from depth_estimation_ros.networks.layers import ConvReLU, conv3x3

REFERENCE_NAME = "reference_unet"


def build_reference_unet(encoder: str = "efficientnet_lite0", min_depth: float = 0.1,
                         max_depth: float = 80.0) -> BaselineDepth:
    """The reference U-Net with random weights (latency does not depend on them)."""
    net = BaselineDepth(encoder=encoder, pretrained=False, min_depth=min_depth, max_depth=max_depth)
    for blocks in (net.pre_upsample, net.post_upsample):
        for i, block in enumerate(blocks):
            blocks[i] = ConvReLU(block.conv.in_channels, block.conv.out_channels)
    net.disp_heads = nn.ModuleList(conv3x3(h.in_channels, 1, padding_mode="zeros") for h in net.disp_heads)
    return net.eval()


def reference_config(encoder: str = "efficientnet_lite0") -> DepthNetworkConfig:
    """The configuration its ONNX export is labelled with (a baseline: same inputs, outputs and metadata)."""
    return DepthNetworkConfig("baseline", encoder, pretrained=False)
