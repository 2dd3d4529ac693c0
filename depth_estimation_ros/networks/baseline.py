"""The baseline: monodepth2-style encoder-decoder (Godard et al., "Digging into self-supervised monocular depth
estimation", 2019), the control every accuracy claim is compared against.

Decoder per scale (stride 32 -> 1): 3x3 conv + ELU, bilinear x2, concatenation with the encoder skip, 3x3 conv + ELU;
sigmoid disparity heads at strides 1, 2, 4, 8. Replicate padding instead of monodepth2's reflection (TensorRT).
"""

from __future__ import annotations

import torch
from torch import nn

from depth_estimation_ros.networks.disparity_network import DisparityDepthNetwork
from depth_estimation_ros.networks.encoders import build_encoder
from depth_estimation_ros.networks.layers import (
    ConvELU,
    ImageNormalization,
    check_input_size,
    conv3x3,
    upsample2x,
)

DECODER_CHANNELS = (16, 32, 64, 128, 256)


class BaselineDepth(DisparityDepthNetwork):
    """Baseline depth network; ``forward`` -> {"disp": [...], "depth": [...]}, ``predict_depth`` -> (N,1,H,W) m."""

    def __init__(self, encoder: str = "resnet18", pretrained: bool = True, encoder_weights: str | None = None,
                 min_depth: float = 0.1, max_depth: float = 80.0) -> None:
        super().__init__()
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.normalize = ImageNormalization()
        self.encoder = build_encoder(encoder, pretrained=pretrained, weights_path=encoder_weights)
        enc_ch = self.encoder.channels
        self.pre_upsample = nn.ModuleList()
        self.post_upsample = nn.ModuleList()
        in_ch = enc_ch[4]
        for i in range(4, -1, -1):
            self.pre_upsample.append(ConvELU(in_ch, DECODER_CHANNELS[i]))
            skip_ch = enc_ch[i - 1] if i > 0 else 0
            self.post_upsample.append(ConvELU(DECODER_CHANNELS[i] + skip_ch, DECODER_CHANNELS[i]))
            in_ch = DECODER_CHANNELS[i]
        self.disp_heads = nn.ModuleList(conv3x3(DECODER_CHANNELS[i], 1) for i in range(4))

    def _decode(self, image: torch.Tensor, scales: int) -> list[torch.Tensor]:
        check_input_size(image)
        feats = self.encoder(self.normalize(image))
        x = feats[4]
        outputs: dict[int, torch.Tensor] = {}
        for pre, post, i in zip(self.pre_upsample, self.post_upsample, range(4, -1, -1)):
            x = upsample2x(pre(x))
            if i > 0:
                x = torch.cat([x, feats[i - 1]], dim=1)
            x = post(x)
            if i < scales:
                outputs[i] = torch.sigmoid(self.disp_heads[i](x))
        return [outputs[i] for i in range(scales)]
