"""Pose networks used only in training: PoseNet (monodepth2-style) and GasMono's AlignNet."""

from __future__ import annotations

import torch
from torch import nn

from depth_estimation_ros.networks.encoders import build_encoder
from depth_estimation_ros.networks.layers import ImageNormalization

POSE_SCALE = 0.01  # monodepth2 scales the pose decoder output by 0.01


class PoseNet(nn.Module):
    """Relative pose target -> source from the stacked pair (6 channels).

    Encoder: ``encoder`` (resnet18 by default) with its stem widened to 6 channels; pretrained RGB stem weights are
    repeated for both frames and halved. Decoder: 1x1 squeeze to 256, two 3x3 convs, 1x1 to 6, spatial mean,
    times 0.01 (monodepth2, Godard et al. 2019). Returns (axisangle (N,1,3), translation (N,1,3)).
    """

    def __init__(self, encoder: str = "resnet18", pretrained: bool = False, encoder_weights: str | None = None) -> None:
        super().__init__()
        self.normalize = ImageNormalization(frames=2)
        self.encoder = build_encoder(encoder, pretrained=pretrained, weights_path=encoder_weights, in_chans=6)
        c = self.encoder.channels[-1]
        self.decoder = nn.Sequential(
            nn.Conv2d(c, 256, 1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 6, 1),
        )

    def forward(self, target: torch.Tensor, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.normalize(torch.cat([target, source], dim=1))
        out = POSE_SCALE * self.decoder(self.encoder(x)[-1]).mean(dim=(2, 3))
        n = out.shape[0]
        return out[:, :3].reshape(n, 1, 3), out[:, 3:].reshape(n, 1, 3)


def align_translation(t_colmap: torch.Tensor, scale: torch.Tensor, delta_t: torch.Tensor) -> torch.Tensor:
    """GasMono's refined translation t* = s * t_colmap + delta_t; t_colmap and delta_t (N, 3), scale (N, 1)."""
    return scale * t_colmap + delta_t


class AlignNet(nn.Module):
    """GasMono AlignNet: from the pair, a positive scale s = exp(delta) (N, 1) and a residual translation (N, 3).

    Initialised so s starts at 1 and delta_t near 0 (small random last layer, zero bias), i.e. training starts from
    COLMAP's translation rather than switching it off (GasMono's public code starts s near 0; see models.md).
    """

    def __init__(self, encoder: str = "resnet18", pretrained: bool = False, encoder_weights: str | None = None) -> None:
        super().__init__()
        self.normalize = ImageNormalization(frames=2)
        self.encoder = build_encoder(encoder, pretrained=pretrained, weights_path=encoder_weights, in_chans=6)
        c = self.encoder.channels[-1]
        self.squeeze = nn.Sequential(nn.Conv2d(c, 128, 1), nn.ReLU(inplace=True))
        self.head = nn.Linear(128, 4)
        nn.init.normal_(self.head.weight, std=1e-3)
        nn.init.zeros_(self.head.bias)

    def forward(self, target: torch.Tensor, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.normalize(torch.cat([target, source], dim=1))
        pooled = self.squeeze(self.encoder(x)[-1]).mean(dim=(2, 3))
        out = self.head(pooled)
        return torch.exp(out[:, 0:1]), out[:, 1:4]
