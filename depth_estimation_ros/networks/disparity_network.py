"""Common output contract of the sigmoid-disparity networks (baseline, GATDepth).

Subclasses implement ``_decode(image, scales)`` returning the first ``scales`` sigmoid disparity maps (full
resolution first); depth follows monodepth2's disp_to_depth with the network's min/max depth.
"""

from __future__ import annotations

import torch
from torch import nn

from depth_estimation_ros.networks.depth_conversion import disp_to_depth


class DisparityDepthNetwork(nn.Module):
    min_depth: float
    max_depth: float

    def _decode(self, image: torch.Tensor, scales: int) -> list[torch.Tensor]:
        raise NotImplementedError

    def forward(self, image: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        disps = self._decode(image, 4)
        return {"disp": disps, "depth": [disp_to_depth(d, self.min_depth, self.max_depth)[1] for d in disps]}

    def predict_depth(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) metric depth from the full-resolution head only: the exported graph."""
        return disp_to_depth(self._decode(image, 1)[0], self.min_depth, self.max_depth)[1]
