"""GATDepth: encoder + decoder with graph attention over spatial windows and sigmoid disparity heads.

After "Self-supervised monocular depth estimation based on graph attention" (GATDepth, 2025), built on GCNDepth.
Per decoder scale (stride 32 -> 1): transposed-conv upsampling x2, concatenation with the encoder skip feature, a 3x3
conv, then a :class:`WindowGraphAttention` block (k x k window neighbourhood, multi-head, residual). Sigmoid
disparity heads at strides 1, 2, 4, 8; depth by monodepth2's ``disp_to_depth``. The paper uses ResNet-50; lighter
encoders are configuration options. GCNDepth's random, size-specific graph is deliberately not reproduced (see
shared/docs/models.md section 2): the graph here is a static window, so any H, W (multiples of 32) and batch work.

``gat_min_stride`` > 1 drops the attention of the stages finer than it (a 3x3 conv stage remains): the stride-1
block alone is about a third of the network's time on the CPU (docs/networks.md). ``gat_attention="pooled"``
replaces GAT's pairwise scores by neighbour-only gates (:class:`WindowPooledAttention`), 10 ONNX ops per block
instead of 102 (at strides up to ``gat_pooled_max_stride``), and ``"gated"`` drops that block's normalisation too
(no division, which ONNX Runtime runs outside its blocked layout); ``gat_gated_max_stride`` uses the gated block
only at the finest stages, the largest maps; ``"shared"`` keeps the division but on one gate per pixel shared by its
channels: deviations from the paper for speed, measured in docs/networks.md.

Speed choices (the paper names neither; measured in docs/networks.md, "Speed"): ReLU after the transposed and 3x3
convs (fused into the conv by ONNX Runtime and TensorRT; v1 used ELU, a separate pass) and zero padding (folded into
the Conv; v1's replicate padding was a separate Pad). The attention's sigma stays ELU, as in GAT.
"""

from __future__ import annotations

import torch
from torch import nn

from depth_estimation_ros.networks.disparity_network import DisparityDepthNetwork
from depth_estimation_ros.networks.encoders import build_encoder
from depth_estimation_ros.networks.graph_attention import WindowGraphAttention, WindowPooledAttention
from depth_estimation_ros.networks.layers import (
    ConvReLU,
    ImageNormalization,
    check_input_size,
    conv3x3,
)

DECODER_CHANNELS = (16, 32, 64, 128, 256)  # output of the decoder stage at strides 1, 2, 4, 8, 16


def stage_attention(stride: int, attention: str = "pairwise", pooled_max_stride: int = 16, gated_max_stride: int = 0,
                    min_stride: int = 1) -> str:
    """The attention block of the decoder stage at ``stride``: none finer than ``min_stride``, the gated block up to
    ``gated_max_stride`` (0: none), ``attention`` up to ``pooled_max_stride``, pairwise above."""
    if stride < min_stride:
        return "none"
    if stride <= gated_max_stride:
        return "gated"
    return attention if stride <= pooled_max_stride else "pairwise"


class GATDecoderStage(nn.Module):
    """Transposed conv x2 -> concat skip -> 3x3 conv -> window graph attention."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, heads: int, window: int, attention: str = "pairwise"
                 ) -> None:
        super().__init__()
        self.upsample = nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 2, stride=2), nn.ReLU(inplace=True))
        self.merge = ConvReLU(out_ch + skip_ch, out_ch)
        if attention == "pairwise":
            self.attention = WindowGraphAttention(out_ch, heads=min(heads, out_ch), window=window)
        elif attention in ("pooled", "gated", "shared"):
            self.attention = WindowPooledAttention(out_ch, window=window, normalise=attention != "gated",
                                                   shared_gate=attention == "shared")
        elif attention == "none":
            self.attention = nn.Identity()
        else:
            raise ValueError(f"attention must be 'pairwise', 'pooled', 'gated', 'shared' or 'none', got '{attention}'")

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = self.upsample(x)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.attention(self.merge(x))


class GATDepth(DisparityDepthNetwork):
    """GATDepth depth network; ``forward`` -> {"disp": [...], "depth": [...]}, ``predict_depth`` -> (N,1,H,W) m."""

    def __init__(self, encoder: str = "resnet50", pretrained: bool = True, encoder_weights: str | None = None,
                 min_depth: float = 0.1, max_depth: float = 80.0, gat_window: int = 3, gat_heads: int = 4,
                 gat_min_stride: int = 1, gat_attention: str = "pairwise", gat_pooled_max_stride: int = 16,
                 gat_gated_max_stride: int = 0) -> None:
        super().__init__()
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.normalize = ImageNormalization()
        self.encoder = build_encoder(encoder, pretrained=pretrained, weights_path=encoder_weights)
        enc_ch = self.encoder.channels  # strides 2, 4, 8, 16, 32
        self.stages = nn.ModuleList()
        in_ch = enc_ch[4]
        for i in range(4, -1, -1):  # stage i outputs stride 2^i
            skip_ch = enc_ch[i - 1] if i > 0 else 0
            attention = stage_attention(2**i, gat_attention, gat_pooled_max_stride, gat_gated_max_stride,
                                        gat_min_stride)
            self.stages.append(GATDecoderStage(in_ch, skip_ch, DECODER_CHANNELS[i], gat_heads, gat_window, attention))
            in_ch = DECODER_CHANNELS[i]
        self.disp_heads = nn.ModuleList(conv3x3(DECODER_CHANNELS[i], 1, padding_mode="zeros") for i in range(4))

    def _decode(self, image: torch.Tensor, scales: int) -> list[torch.Tensor]:
        check_input_size(image)
        feats = self.encoder(self.normalize(image))
        x = feats[4]
        outputs: dict[int, torch.Tensor] = {}
        for stage, i in zip(self.stages, range(4, -1, -1)):
            x = stage(x, feats[i - 1] if i > 0 else None)
            if i < scales:
                outputs[i] = torch.sigmoid(self.disp_heads[i](x))
        return [outputs[i] for i in range(scales)]
