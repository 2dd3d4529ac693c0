"""Graph attention over k x k spatial windows (GATDepth's decoder block), as a static, export-friendly graph.

GAT (Velickovic et al., 2018) as used by GATDepth (2025): nodes are feature-map pixels, N(i) is the k x k window
around pixel i (itself included),

    e_ij = LeakyReLU(a^T [W h_i || W h_j]) = LeakyReLU(a_l^T W h_i + a_r^T W h_j),
    alpha_ij = softmax_{j in N(i)} e_ij,     h_i' = sigma(sum_j alpha_ij W h_j),

with several heads concatenated and a residual connection h + h'. The neighbours are the k*k shifts of a padded
map: k*k Slices, or on CUDA all at once by a grouped Conv with one-hot kernels (static Pad + Slice or Conv, no
unfold/scatter/sparse ops, no data-dependent shapes); neighbours that fall in the padding are masked out of the
softmax, so border pixels attend only to real pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

# (W h, centre scores, neighbour scores, max logit) -> sum_j e_ij W h_j / sum_j e_ij
WeightedSum = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
PADDING_SCORE = -3.0e4  # neighbour score given to padded positions; see window_attention_weights


def check_window(window: int) -> None:
    """Raise ValueError unless ``window`` is an odd size >= 1 (a window centred on its pixel)."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"the attention window must be an odd size >= 1, got {window}")


def window_offsets(window: int) -> list[tuple[int, int]]:
    """(dy, dx) slice starts into the padded map, row-major over the k x k window; (r, r) is the centre."""
    return [(dy, dx) for dy in range(window) for dx in range(window)]


def shifted_neighbours(padded: torch.Tensor, window: int) -> list[torch.Tensor]:
    """The k*k views of a map padded by r = k // 2 on each side, each the size of the unpadded map."""
    span = window - 1
    views = []
    for dy, dx in window_offsets(window):
        y_end = dy - span if dy < span else None
        x_end = dx - span if dx < span else None
        views.append(padded[..., dy:y_end, dx:x_end])
    return views


def window_taps(channels: int, window: int) -> torch.Tensor:
    """(channels * k*k, 1, k, k) one-hot kernels: a conv with them, groups=channels, maps a map padded by k // 2 to
    (N, channels * k*k, H, W), channel c * k*k + j being neighbour j of :func:`window_offsets` of channel c."""
    taps = window * window
    return torch.eye(taps).reshape(taps, 1, window, window).repeat(channels, 1, 1, 1)


def window_validity_mask(height: int, width: int, window: int) -> torch.Tensor:
    """(1, 1, k*k, H, W): 1 where the neighbour at that window offset lies inside the map, 0 in the padding."""
    r = window // 2
    padded = F.pad(torch.ones(1, 1, height, width), (r, r, r, r))
    return torch.stack(shifted_neighbours(padded, window), dim=2)


def window_attention_weights(centre_scores: torch.Tensor, neighbour_scores: torch.Tensor, window: int,
                             negative_slope: float = 0.2) -> torch.Tensor:
    """Attention weights alpha (N, heads, k*k, H, W) over each pixel's k x k window.

    centre_scores = a_l^T W h_i and neighbour_scores = a_r^T W h_j, each (N, heads, H, W). Padded neighbours are
    masked by padding the neighbour scores with PADDING_SCORE (-3e4): their logits are about slope * -3e4 = -6000,
    so exp() underflows to exactly 0 in fp32 and fp16 and the valid weights sum to 1. Masking through the pad value
    keeps the graph free of a mask tensor, which constant folding would otherwise store as k*k full-size constants.
    """
    check_window(window)
    if negative_slope <= 0:
        raise ValueError(f"negative_slope must be > 0 (the padding mask relies on it), got {negative_slope}")
    r = window // 2
    padded_scores = F.pad(neighbour_scores, (r, r, r, r), value=PADDING_SCORE)
    logits = [F.leaky_relu(centre_scores + score_j, negative_slope)
              for score_j in shifted_neighbours(padded_scores, window)]
    return torch.softmax(torch.stack(logits, dim=2), dim=2)


class WindowGraphAttention(nn.Module):
    """Multi-head graph attention over k x k windows with concatenated heads, ELU and a residual connection."""

    def __init__(self, channels: int, heads: int = 4, window: int = 3, negative_slope: float = 0.2) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by the number of heads ({heads})")
        self.heads = heads
        self.window = window
        self.negative_slope = negative_slope
        self.project = nn.Conv2d(channels, channels, 1, bias=False)  # W, all heads at once
        # a_l and a_r of each head: a grouped 1x1 conv maps a head's channels to its one score
        self.score_centre = nn.Conv2d(channels, heads, 1, groups=heads, bias=False)
        self.score_neighbour = nn.Conv2d(channels, heads, 1, groups=heads, bias=False)
        self.act = nn.ELU()
        # one-hot k x k kernels: a grouped conv with them gathers every window neighbour at once (not parameters:
        # the state_dict is unchanged)
        self.register_buffer("score_taps", window_taps(heads, window), persistent=False)
        self.register_buffer("feature_taps", window_taps(channels, window), persistent=False)

    def attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(W h, attention weights (N, heads, k*k, H, W)) for input x (N, C, H, W)."""
        wh = self.project(x)
        weights = window_attention_weights(
            self.score_centre(wh), self.score_neighbour(wh), self.window, self.negative_slope
        )
        return wh, weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + ELU(sum_j alpha_ij W h_j), with alpha the softmax of :func:`window_attention_weights`.

        Computed as sum_j e_ij W h_j / sum_j e_ij with e_ij = exp(logit_ij - max_j logit_ij): the same values, but no
        Softmax over a non-last axis (slow in ONNX Runtime). Because LeakyReLU is increasing,
        max_j logit_ij = LeakyReLU(s_i + max_j s_j), and max_j s_j over the window is one MaxPool (its implicit -inf
        padding ignores the border, like the masked softmax). On CUDA all k*k neighbours at once
        (:meth:`_weighted_sum_all_at_once`, about 25 kernels per block); on the CPU, and so in the exported ONNX
        graph, one neighbour at a time (:meth:`_weighted_sum_one_by_one`, about 100 ops, but each on a map the size
        of the input rather than k*k times it: faster in ONNX Runtime, docs/networks.md). Both give the same values.
        """
        n, c, h, w = x.shape
        wh = self.project(x)
        centre = self.score_centre(wh)
        neighbour = self.score_neighbour(wh)
        window_max = F.max_pool2d(neighbour, self.window, stride=1, padding=self.window // 2)
        logit_max = F.leaky_relu(centre + window_max, self.negative_slope)
        out = self.weighted_sum_for(x)(wh, centre, neighbour, logit_max)
        return x + self.act(out.reshape(n, c, h, w))

    def weighted_sum_for(self, x: torch.Tensor) -> WeightedSum:
        """The formulation of sum_j e_ij W h_j / sum_j e_ij for x's device (benchmarks/gat_block.py times others)."""
        return self._weighted_sum_all_at_once if x.is_cuda else self._weighted_sum_one_by_one

    def _weighted_sum_one_by_one(self, wh: torch.Tensor, centre: torch.Tensor, neighbour: torch.Tensor,
                                 logit_max: torch.Tensor) -> torch.Tensor:
        """sum_j e_ij W h_j / sum_j e_ij, (N, heads, C/heads, H, W), accumulated over the k*k shifted slices."""
        n, c, h, w = wh.shape
        r = self.window // 2
        padded_scores = F.pad(neighbour, (r, r, r, r), value=PADDING_SCORE)
        padded = F.pad(wh, (r, r, r, r)).reshape(n, self.heads, c // self.heads, h + 2 * r, w + 2 * r)
        numerator, denominator = None, None
        neighbours = zip(shifted_neighbours(padded_scores, self.window), shifted_neighbours(padded, self.window))
        for score_j, wh_j in neighbours:
            e = torch.exp(F.leaky_relu(centre + score_j, self.negative_slope) - logit_max)  # (N, heads, H, W)
            term = e.unsqueeze(2) * wh_j  # (N, heads, 1, H, W) * (N, heads, C/heads, H, W)
            numerator = term if numerator is None else numerator + term
            denominator = e if denominator is None else denominator + e
        return numerator / denominator.unsqueeze(2)

    def _weighted_sum_all_at_once(self, wh: torch.Tensor, centre: torch.Tensor, neighbour: torch.Tensor,
                                  logit_max: torch.Tensor) -> torch.Tensor:
        """The same, (N, heads, C/heads, H*W): each padded map through one grouped conv with one-hot kernels
        (:func:`window_taps`, exact: one term 1 * x, the others 0 * x), the sums over the window as MatMuls with a row
        of ones."""
        n, c, h, w = wh.shape
        k, r = self.window, self.window // 2
        taps, pixels = k * k, h * w
        scores = F.conv2d(F.pad(neighbour, (r, r, r, r), value=PADDING_SCORE), self.score_taps, groups=self.heads)
        scores = scores.reshape(n, self.heads, taps, h, w)
        e = torch.exp(F.leaky_relu(centre.unsqueeze(2) + scores, self.negative_slope) - logit_max.unsqueeze(2))
        e = e.reshape(n, self.heads, taps, pixels)  # (N, heads, k*k, HW)
        neighbours = F.conv2d(F.pad(wh, (r, r, r, r)), self.feature_taps, groups=c)
        neighbours = neighbours.reshape(n, self.heads, c // self.heads, taps, pixels)  # (N, heads, C/heads, k*k, HW)
        ones = torch.ones(1, taps, dtype=wh.dtype, device=wh.device)
        numerator = torch.matmul(ones, neighbours * e.unsqueeze(2)).reshape(n, self.heads, c // self.heads, pixels)
        return numerator / torch.matmul(ones, e)  # (N, heads, C/heads, HW) / (N, heads, 1, HW)


class WindowPooledAttention(nn.Module):
    """Window attention with neighbour-only weights: ReLU(h + W sum_j alpha_j h_j) over the k x k window.

    alpha_j = g_j / sum_j g_j per channel, with gates g = sigmoid(A h + b) (a 1x1 conv): like multi-head attention
    with one channel per head, the values h themselves and W the output projection. The window sums are two box
    filters (AveragePool; zero padding adds 0 to both, so padded neighbours are masked as in GAT). It drops GAT's
    query term a_l^T W h_i: GAT's LeakyReLU is increasing, so its ranking of a window's neighbours is already the
    same for every query (Brody et al., "How attentive are graph attention networks?", ICLR 2022); what is lost is
    how sharply each query weighs them. Sigmoid gates keep every term within (0, 1) in fp16; ``GATE_FLOOR`` keeps
    the ratio finite where every gate of a window is 0. Every op has a blocked-layout ONNX Runtime kernel except
    the floor's addition and the division, and ONNX Runtime fuses W + residual + ReLU into one kernel: 10 ONNX ops per
    block against GAT's 102 (docs/networks.md).

    ``normalise=False`` ("gated" in the network config) keeps the window mean of the gated values,
    ReLU(h + W mean_j g_j h_j), without dividing by the gates' mean: no weights summing to 1, but every op keeps
    ONNX Runtime's blocked layout (no reorders around the block).

    ``shared_gate=True`` ("shared" in the network config) gives each pixel one gate for all its channels (one head):
    the division then runs on a one-channel map, and a 1x1 conv with unit weights copies the gates and their
    reciprocal mean to every channel, which ONNX Runtime keeps in its blocked layout (a broadcasting Mul it does not).
    """

    GATE_FLOOR = 1.0e-4

    def __init__(self, channels: int, window: int = 3, normalise: bool = True, shared_gate: bool = False) -> None:
        super().__init__()
        check_window(window)
        self.window = window
        self.normalise = normalise
        self.shared_gate = shared_gate
        self.gate = nn.Conv2d(channels, 1 if shared_gate else channels, 1)  # A, b: one gate per channel or pixel
        self.project = nn.Conv2d(channels, channels, 1)  # W
        if shared_gate:  # one map -> every channel: a constant of the graph, not a weight
            self.register_buffer("to_channels", torch.ones(channels, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gates = torch.sigmoid(self.gate(x))
        r = self.window // 2
        if self.shared_gate:
            mixed = F.avg_pool2d(F.conv2d(gates, self.to_channels) * x, self.window, stride=1, padding=r)
            if self.normalise:
                inverse = 1.0 / (F.avg_pool2d(gates, self.window, stride=1, padding=r) + self.GATE_FLOOR)
                mixed = mixed * F.conv2d(inverse, self.to_channels)
            return torch.relu(x + self.project(mixed))
        mixed = F.avg_pool2d(gates * x, self.window, stride=1, padding=r)
        if self.normalise:
            mixed = mixed / (F.avg_pool2d(gates, self.window, stride=1, padding=r) + self.GATE_FLOOR)
        return torch.relu(x + self.project(mixed))
