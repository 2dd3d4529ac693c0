"""LacDepth: relative depth by a pyramid of depth residuals, then metric depth by attractor bins.

After "A two-stage lightweight approach for depth estimation" (LacDepth, 2025), written from the paper's description
(see shared/docs/models.md section 1):

Stage 1 (relative depth R):
- encoder features F1..F5 (strides 2..32), each widened by a 1x1 conv;
- F5 upsampled x2, concatenated with F4, through a dense cascade of dilated 3x3 convs (dilations 3, 6, 12, 18,
  each branch seeing the input and all earlier branches, ASPP-style);
- an upsampling pyramid of four levels (strides 16, 8, 4, 2). Each level: 1x1 conv on the previous level's
  features, bilinear x2, 3x3 refine, concatenation with the encoder skip F_j, the Laplacian residual of the input
  l_j = I_j - UP(I_{j+1}) and the upsampled coarser depth; it predicts a depth residual added to the upsampled
  coarser depth (the "pyramid of depth residuals");
- the four levels' depth maps, upsampled to the finest level's resolution (stride 2) and densely concatenated, are
  fused by convs into R.

Stage 2 (metric depth): :mod:`metric_bins` (Z = 64 bins, attractors 16, 8, 4, 1 from coarse to fine level, the
conditional log-binomial head on R concatenated with the finest (level-4) decoder features).

Training outputs: ``depth`` = [d0 full res (the metric head on R), d1 1/2, d2 1/4, d3 1/8 (log-binomial heads on the
pyramid levels at strides 2, 4, 8 with that level's bin centres)], plus ``relative`` = R.

Speed deviations from the paper (measured in docs/networks.md, "Speed"):
- R and the metric head (64-bin scores and their expectation) are computed at stride 2, where the finest pyramid level,
  its features and its bin centres already live; the metric depth is then upsampled x2 bilinearly to full resolution,
  as monodepth2-style decoders upsample their reduced-scale predictions. ``relative`` is R upsampled the same way.
  The paper computes R and the head at full resolution; at full resolution the head alone cost more than the whole
  network does now on the CPU.
- Decoder blocks are 3x3 conv + ReLU with zero padding (the paper names no activation or padding); ReLU fuses into the
  conv, ELU and replicate padding were separate memory passes.
- ``metric_stride=4`` (the bundled models, with 32 bins): the pyramid stops at stride 4 (three levels, attractors
  16, 8, 4); R, the last attractors and the head run there and the depth is resized x4. The stride-2 metric stage
  was most of the network's excess over a plain U-Net on the CPU (docs/networks.md, "Lean layout").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from depth_estimation_ros.networks.encoders import build_encoder
from depth_estimation_ros.networks.layers import (
    ConvReLU,
    ImageNormalization,
    check_input_size,
    conv1x1,
    conv3x3,
    resize_to,
    upsample2x,
)
from depth_estimation_ros.networks.metric_bins import (
    AttractorLayer,
    LogBinomialHead,
    SeedBins,
    normalised_to_depth,
)

ASPP_DILATIONS = (3, 6, 12, 18)
ATTRACTORS_PER_LEVEL = (16, 8, 4, 1)  # coarse (stride 16) to fine (stride 2): the paper's best order
WIDENED_CHANNELS = (32, 48, 64, 96, 160)  # F1..F5 after the 1x1 convs
METRIC_STRIDES = (2, 4)  # where R, the last attractor level and the metric head run
LEVEL_CHANNELS = (128, 96, 32, 16)  # pyramid levels at strides 16, 8, 4, 2 (v1: 128, 96, 64, 32; see the docstring)


def image_pyramid(image: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """[I_0 = image, I_1, ..., I_levels]; I_{j+1} = 2x2 average of I_j (= bilinear x0.5 with half-pixel centres)."""
    pyramid = [image]
    for _ in range(levels):
        pyramid.append(F.avg_pool2d(pyramid[-1], 2))
    return pyramid


def laplacian_residuals(image: torch.Tensor, levels: int = 4, finest: int = 1) -> list[torch.Tensor]:
    """[l_finest, ..., l_levels] with l_j = I_j - UP(I_{j+1}) (bilinear x2); l_j has stride 2^j."""
    pyramid = image_pyramid(image, levels + 1)
    return [pyramid[j] - upsample2x(pyramid[j + 1]) for j in range(finest, levels + 1)]


class DenseDilatedContext(nn.Module):
    """Dense cascade of dilated 3x3 convs: branch i sees the input and every earlier branch; a 1x1 conv fuses all."""

    def __init__(self, in_ch: int, branch_ch: int, out_ch: int, dilations: tuple[int, ...] = ASPP_DILATIONS) -> None:
        super().__init__()
        self.branches = nn.ModuleList()
        ch = in_ch
        for d in dilations:
            # zero padding: dilation 18 exceeds the size of small maps, and TensorRT handles zero pads natively
            self.branches.append(ConvReLU(ch, branch_ch, dilation=d))
            ch += branch_ch
        self.fuse = nn.Sequential(conv1x1(ch, out_ch), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for branch in self.branches:
            features.append(branch(torch.cat(features, dim=1)))
        return self.fuse(torch.cat(features, dim=1))


class PyramidLevel(nn.Module):
    """One level of the depth-residual pyramid (see the module docstring)."""

    def __init__(self, prev_ch: int, skip_ch: int, out_ch: int, first: bool) -> None:
        super().__init__()
        self.first = first
        if first:
            self.reduce = nn.Identity()
            self.refine = nn.Identity()
            in_ch = prev_ch + 3
        else:
            self.reduce = nn.Sequential(conv1x1(prev_ch, out_ch), nn.ReLU(inplace=True))
            self.refine = ConvReLU(out_ch, out_ch)
            in_ch = out_ch + skip_ch + 3 + 1
        self.fuse = ConvReLU(in_ch, out_ch)
        self.depth = conv3x3(out_ch, 1, padding_mode="zeros")

    def forward(self, prev: torch.Tensor, skip: torch.Tensor | None, laplacian: torch.Tensor,
                prev_depth: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.first:
            x = torch.cat([prev, laplacian], dim=1)
            features = self.fuse(x)
            return features, self.depth(features)
        x = self.refine(upsample2x(self.reduce(prev)))
        up_depth = upsample2x(prev_depth)
        features = self.fuse(torch.cat([x, skip, laplacian, up_depth], dim=1))
        return features, up_depth + self.depth(features)


class LacDepth(nn.Module):
    """Two-stage LacDepth; ``forward`` gives training outputs, ``predict_depth`` the full-resolution metric depth."""

    def __init__(self, encoder: str = "efficientnet_lite0", pretrained: bool = True, encoder_weights: str | None = None,
                 min_depth: float = 0.1, max_depth: float = 80.0, num_bins: int = 64, embed_channels: int = 64,
                 metric_stride: int = 2) -> None:
        super().__init__()
        if not 0.0 < min_depth < max_depth:
            raise ValueError(f"need 0 < min_depth < max_depth, got {min_depth}, {max_depth}")
        if metric_stride not in METRIC_STRIDES:
            raise ValueError(f"metric_stride must be one of {METRIC_STRIDES}, got {metric_stride}")
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.num_bins = num_bins
        self.metric_stride = metric_stride
        # pyramid levels at strides 16, 8, 4 (, 2): the finest level is the metric stride
        self.num_levels = 4 if metric_stride == 2 else 3
        self.normalize = ImageNormalization()
        self.encoder = build_encoder(encoder, pretrained=pretrained, weights_path=encoder_weights)
        enc_ch = self.encoder.channels
        # F1 (stride 2) is only the skip of the stride-2 level: not widened without that level
        self.first_widened = 4 - self.num_levels
        self.widen = nn.ModuleList(
            nn.Sequential(conv1x1(c_in, c_out), nn.ReLU(inplace=True))
            for c_in, c_out in list(zip(enc_ch, WIDENED_CHANNELS))[self.first_widened:]
        )
        self.context = DenseDilatedContext(WIDENED_CHANNELS[4] + WIDENED_CHANNELS[3], 48, LEVEL_CHANNELS[0])
        # pyramid levels at strides 16, 8, 4, 2; skips F3, F2, F1 for the levels after the first
        self.levels = nn.ModuleList([PyramidLevel(LEVEL_CHANNELS[0], 0, LEVEL_CHANNELS[0], first=True)])
        for i in range(1, self.num_levels):
            self.levels.append(PyramidLevel(LEVEL_CHANNELS[i - 1], WIDENED_CHANNELS[3 - i], LEVEL_CHANNELS[i], False))
        self.relative_fuse = nn.Sequential(ConvReLU(self.num_levels, 16), conv3x3(16, 1, padding_mode="zeros"))
        # metric stage
        self.seed_bins = SeedBins(enc_ch[4], num_bins, embed_channels)
        self.attractor_layers = nn.ModuleList(
            AttractorLayer(LEVEL_CHANNELS[i], embed_channels, ATTRACTORS_PER_LEVEL[i]) for i in range(self.num_levels)
        )
        # heads: final (R + finest level's features at the metric stride, upsampled to full res) and the
        # intermediate levels (the metric stride up to 8)
        finest = self.num_levels - 1
        self.final_head = LogBinomialHead(1 + LEVEL_CHANNELS[finest], num_bins)
        self.level_heads = nn.ModuleList(
            LogBinomialHead(1 + LEVEL_CHANNELS[i], num_bins) for i in range(finest, 0, -1)
        )

    def _relative_and_bins(self, image: torch.Tensor):
        check_input_size(image)
        x = self.normalize(image)
        feats = self.encoder(x)
        widened = [None] * self.first_widened + [w(f) for w, f in zip(self.widen, feats[self.first_widened:])]
        context = self.context(torch.cat([upsample2x(widened[4]), widened[3]], dim=1))
        finest = 5 - self.num_levels  # the finest level's pyramid index: stride 2 or 4
        laplacians = laplacian_residuals(x, 4, finest)  # l_finest .. l_4 (stride 16)
        centres, embedding = self.seed_bins(feats[4])
        level_features, level_depths, level_centres = [], [], []
        prev, prev_depth = context, None
        for i, level in enumerate(self.levels):
            j = 4 - i  # pyramid index: stride 2^j
            skip = widened[j - 1] if i > 0 else None
            prev, prev_depth = level(prev, skip, laplacians[j - finest], prev_depth)
            centres, embedding = self.attractor_layers[i](prev, embedding, centres)
            level_features.append(prev)
            level_depths.append(prev_depth)
            level_centres.append(centres)
        size = (int(level_depths[-1].shape[-2]), int(level_depths[-1].shape[-1]))  # the metric stride
        stacked = torch.cat([resize_to(d, size) for d in level_depths], dim=1)
        relative = torch.sigmoid(self.relative_fuse(stacked))  # R at the metric stride
        return relative, level_features, level_depths, level_centres

    def _to_full_resolution(self, x: torch.Tensor) -> torch.Tensor:
        """One bilinear resize (half-pixel centres) from the metric stride to the input resolution."""
        return F.interpolate(x, scale_factor=float(self.metric_stride), mode="bilinear", align_corners=False)

    def _final_depth(self, relative: torch.Tensor, finest_features: torch.Tensor, finest_centres: torch.Tensor):
        """Metric head on R ++ the finest level's features at the metric stride, then bilinear to full resolution."""
        head_in = torch.cat([relative, finest_features], dim=1)
        centres_metric = normalised_to_depth(finest_centres, self.min_depth, self.max_depth)
        return self._to_full_resolution(self.final_head(head_in, centres_metric)).clamp(self.min_depth, self.max_depth)

    def forward(self, image: torch.Tensor) -> dict[str, list[torch.Tensor] | torch.Tensor]:
        relative, level_features, level_depths, level_centres = self._relative_and_bins(image)
        depths = [self._final_depth(relative, level_features[-1], level_centres[-1])]
        finest = self.num_levels - 1
        for head, i in zip(self.level_heads, range(finest, 0, -1)):  # the metric stride .. stride 8
            head_in = torch.cat([torch.sigmoid(level_depths[i]), level_features[i]], dim=1)
            centres_metric = normalised_to_depth(level_centres[i], self.min_depth, self.max_depth)
            depths.append(head(head_in, centres_metric).clamp(self.min_depth, self.max_depth))
        bins = normalised_to_depth(level_centres[-1], self.min_depth, self.max_depth)  # metres, metric stride
        return {"depth": depths, "relative": self._to_full_resolution(relative), "bin_centres": bins}

    def predict_depth(self, image: torch.Tensor) -> torch.Tensor:
        """Full-resolution metric depth (N, 1, H, W) in metres."""
        relative, level_features, _, level_centres = self._relative_and_bins(image)
        return self._final_depth(relative, level_features[-1], level_centres[-1])

    def predict_depth_and_std(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``predict_depth`` and the per-pixel standard deviation of the final head's bin distribution around it,
        sqrt(sum_k p_k (c_k - d)^2), both (N, 1, H, W) metres; the graph that is exported.

        Like the depth, the spread is computed at the metric stride and upsampled bilinearly (module docstring); it is
        not clamped. No parameters are involved beyond the depth's: the state_dict is unchanged.
        """
        relative, level_features, _, level_centres = self._relative_and_bins(image)
        head_in = torch.cat([relative, level_features[-1]], dim=1)
        centres_metric = normalised_to_depth(level_centres[-1], self.min_depth, self.max_depth)
        depth, std = self.final_head(head_in, centres_metric, with_std=True)
        return self._to_full_resolution(depth).clamp(self.min_depth, self.max_depth), self._to_full_resolution(std)
