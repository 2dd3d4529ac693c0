"""LacDepth's metric stage: adaptive attractor bin centres and the conditional log-binomial head.

Design from LacDepth ("A two-stage lightweight approach for depth estimation", 2025), which takes the metric-bins
module of ZoeDepth (Bhat et al., "ZoeDepth: Zero-shot transfer by combining relative and metric depth", 2023).

Bin centres live in a normalised log-depth space u in [0, 1]:  depth = exp(log d_min + u (log d_max - log d_min)).

Attractor update (pinned here; ZoeDepth's "exp" attractor with its "mean" aggregation, alpha = 1000, gamma = 2,
applied in u units):

    delta_c_i = (1 / n_a) * sum_k (a_k - c_i) * exp(-alpha * |a_k - c_i|^gamma),   c_i <- c_i + delta_c_i

The paper writes the sum; averaging over the n_a attractors keeps two properties the sum lacks: the update is
monotone in c (so centres stay ordered) and c_i' is a convex combination of c_i and the a_k (so centres stay inside
[0, 1] and the depths inside [d_min, d_max]). Proof: g(x) = x exp(-alpha x^2) has g'(x) <= 1, hence
d c_i' / d c_i = 1 - mean_k g'(a_k - c_i) >= 0; and c' = (1 - mean w) c + mean(w a) with w in (0, 1].

Log-binomial head (LacDepth/ZoeDepth): per pixel a mode q in (0, 1) and a temperature t; the score of bin k of K is
log C(K-1, k) + k log q + (K-1-k) log(1-q) (log C by Stirling's approximation), p = softmax_k(score / t),
depth = sum_k p_k c_k.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from depth_estimation_ros.networks.layers import conv1x1, resize_to

ATTRACTOR_ALPHA = 1000.0
ATTRACTOR_GAMMA = 2  # fixed: the update uses the square
Q_EPS = 1e-3  # 1 - 1e-4 rounds to 1 in fp16 (log(0) -> NaN); 1 - 1e-3 does not
MIN_TEMPERATURE = 0.05
MAX_TEMPERATURE = 50.0


def bin_centres_from_widths(widths: torch.Tensor) -> torch.Tensor:
    """Positive widths (N, Z, H, W) -> strictly increasing centres in (0, 1): the midpoints of the normalised bins."""
    widths = widths / widths.sum(dim=1, keepdim=True)
    edges = torch.cumsum(widths, dim=1)
    return edges - 0.5 * widths


def attract_bin_centres(
    centres: torch.Tensor, attractors: torch.Tensor, alpha: float = ATTRACTOR_ALPHA
) -> torch.Tensor:
    """Move centres (N, Z, H, W) towards attractors (N, A, H, W), both in [0, 1]; see the module docstring.

    All A attractors in one broadcast on every device and in the exported graph: a handful of ops per level whatever
    A is (fewer, larger ops: faster with two ONNX Runtime threads, a little slower with one; docs/networks.md,
    "Attractors in one broadcast").
    """
    return attract_in_groups(centres, attractors, int(attractors.shape[1]), alpha)


def attract_in_groups(centres: torch.Tensor, attractors: torch.Tensor, group: int, alpha: float = ATTRACTOR_ALPHA
                      ) -> torch.Tensor:
    """:func:`attract_bin_centres` with the attractors taken ``group`` at a time: a group of one is seven ops on
    (N, Z, H, W) tensors; a larger group is one (N, group, Z, H, W) broadcast, summed over the group by
    :func:`channel_sum`. The mean over all A is one scaling at
    the end, exact for A a power of two (16, 8, 4)."""
    n_attractors = int(attractors.shape[1])
    delta = None
    for start in range(0, n_attractors, group):
        chunk = attractors if group >= n_attractors else attractors[:, start : start + group]
        size = int(chunk.shape[1])
        if size == 1:
            diff = chunk - centres
            term = diff * torch.exp(diff * diff * -alpha)
        else:
            diff = chunk.unsqueeze(2) - centres.unsqueeze(1)  # (N, size, Z, H, W)
            terms = diff * torch.exp(diff * diff * -alpha)
            n, _, z, h, w = terms.shape
            term = channel_sum(terms.reshape(n, size, z * h, w)).reshape(n, z, h, w)
        delta = term if delta is None else delta + term
    return centres + delta * (1.0 / n_attractors) if n_attractors > 1 else centres + delta


def normalised_to_depth(u: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
    """u in [0, 1] -> metric depth, log-uniformly between min_depth and max_depth."""
    log_min = math.log(min_depth)
    return torch.exp(log_min + u * (math.log(max_depth) - log_min))


def log_binomial_coefficients(n_bins: int) -> torch.Tensor:
    """log C(K-1, k) for k = 0..K-1 with Stirling's log n! ~ n log n - n + 0.5 log(2 pi n) (and log 0! = 0)."""

    def log_factorial(n: int) -> float:
        return 0.0 if n == 0 else n * math.log(n) - n + 0.5 * math.log(2.0 * math.pi * n)

    n = n_bins - 1
    return torch.tensor([log_factorial(n) - log_factorial(k) - log_factorial(n - k) for k in range(n_bins)])


def log_binomial_probabilities(
    q: torch.Tensor, temperature: torch.Tensor, log_coefficients: torch.Tensor
) -> torch.Tensor:
    """p(k) = softmax_k((log C(K-1,k) + k log q + (K-1-k) log(1-q)) / t); q, t (N, 1, H, W) -> (N, K, H, W)."""
    n_bins = log_coefficients.shape[0]
    k = torch.arange(n_bins, dtype=q.dtype, device=q.device).view(1, n_bins, 1, 1)
    q = q.clamp(Q_EPS, 1.0 - Q_EPS)
    scores = log_coefficients.view(1, n_bins, 1, 1) + k * torch.log(q) + (n_bins - 1 - k) * torch.log(1.0 - q)
    return torch.softmax(scores / temperature, dim=1)


def log_binomial_probabilities_from_logit(logit_q: torch.Tensor, temperature: torch.Tensor,
                                          log_coefficients: torch.Tensor) -> torch.Tensor:
    """The same distribution as :func:`log_binomial_probabilities` with q = sigmoid(logit_q), computed cheaply.

    score_k = log C(K-1,k) + k logit(q) + (K-1) log(1-q); the last term does not depend on k and cancels in the
    softmax, and logit(sigmoid(x)) = x. So p = softmax_k((log C(K-1,k) + k x) / t) with x clamped to
    +-logit(1 - Q_EPS) (the same clamp on q): no log, one multiply-add per bin, fp16-safe.
    """
    return torch.softmax(log_binomial_scores(logit_q, temperature, log_coefficients), dim=1)


def log_binomial_scores(logit_q: torch.Tensor, temperature: torch.Tensor, log_coefficients: torch.Tensor
                        ) -> torch.Tensor:
    """(log C(K-1,k) + k clamp(logit_q)) / t, (N, K, H, W): softmax_k of it is the log-binomial distribution."""
    n_bins = log_coefficients.shape[0]
    bound = math.log((1.0 - Q_EPS) / Q_EPS)
    k = torch.arange(n_bins, dtype=logit_q.dtype, device=logit_q.device).view(1, n_bins, 1, 1)
    inv_t = 1.0 / temperature
    return log_coefficients.view(1, n_bins, 1, 1) * inv_t + k * (logit_q.clamp(-bound, bound) * inv_t)


def channel_max(x: torch.Tensor) -> torch.Tensor:
    """max over dim 1, keepdim, (N, C, H, W) -> (N, 1, H, W): one ReduceMax (exact).

    ONNX Runtime 1.32's ReduceMax over the channel axis is no slower than the tree of element-wise Max of channel
    halves this used to be (a ninth of its time timed alone, docs/networks.md), with 1 op instead of 18.
    """
    return x.amax(dim=1, keepdim=True)


def channel_sum(x: torch.Tensor) -> torch.Tensor:
    """sum over dim 1, keepdim, (N, C, H, W) -> (N, 1, H, W), as a MatMul with a row of ones.

    ONNX Runtime's ReduceSum over the channel axis is ~30x slower (3.1 vs 0.1 ms on 64 x 96 x 320, 1 thread).
    """
    n, c, h, w = x.shape
    ones = torch.ones(1, c, dtype=x.dtype, device=x.device)
    return torch.matmul(ones, x.reshape(n, c, h * w)).reshape(n, 1, h, w)


def expected_value_over_bins(scores: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """sum_k softmax_k(scores) values_k (N, 1, H, W), as sum(e v) / sum(e) with e = exp(scores - max_k scores).

    Equal to softmax-then-sum, but never materialises the normalised probabilities, and avoids ONNX Runtime's slow
    Softmax over a non-last axis (290 ms of 700 ms at 640x192 on 2 CPU cores) and its slow channel-axis ReduceMax /
    ReduceSum (:func:`channel_max`, :func:`channel_sum`); TensorRT runs every form.
    """
    e = torch.exp(scores - channel_max(scores))
    return channel_sum(e * values) / channel_sum(e)


def expected_value_and_std_over_bins(scores: torch.Tensor, values: torch.Tensor
                                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean mu of :func:`expected_value_over_bins` (the same operations, so the same numbers) and the standard
    deviation sqrt(sum_k p_k (v_k - mu)^2) of the bin distribution, both (N, 1, H, W).

    The spread is summed around mu (two passes), not as E[v^2] - mu^2, which cancels catastrophically when the
    distribution is narrow far from zero; every term is >= 0, so the square root is always defined.
    """
    e = torch.exp(scores - channel_max(scores))
    norm = channel_sum(e)
    mean = channel_sum(e * values) / norm
    spread = values - mean
    variance = channel_sum(e * (spread * spread)) / norm
    return mean, torch.sqrt(variance)


class SeedBins(nn.Module):
    """From the bottleneck feature F5: Z initial bin centres (normalised, ordered) and the attractor embedding."""

    def __init__(self, in_ch: int, n_bins: int, embed_ch: int, hidden: int = 256) -> None:
        super().__init__()
        self.widths = nn.Sequential(conv1x1(in_ch, hidden), nn.ReLU(inplace=True), conv1x1(hidden, n_bins))
        self.embed = nn.Sequential(conv1x1(in_ch, embed_ch), nn.ReLU(inplace=True), conv1x1(embed_ch, embed_ch))

    def forward(self, bottleneck: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        widths = F.softplus(self.widths(bottleneck)) + 1e-3
        return bin_centres_from_widths(widths), self.embed(bottleneck)


class AttractorLayer(nn.Module):
    """One decoder level: upsample embedding and centres, predict ``n_attractors`` attractors, move the centres."""

    def __init__(self, feature_ch: int, embed_ch: int, n_attractors: int, alpha: float = ATTRACTOR_ALPHA) -> None:
        super().__init__()
        self.project = conv1x1(feature_ch, embed_ch)
        self.attractors = nn.Sequential(
            conv1x1(embed_ch, embed_ch), nn.ReLU(inplace=True), conv1x1(embed_ch, n_attractors)
        )
        self.alpha = alpha
        self.n_attractors = n_attractors

    def forward(self, features: torch.Tensor, embedding: torch.Tensor, centres: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        size = (int(features.shape[-2]), int(features.shape[-1]))
        embedding = resize_to(embedding, size) + self.project(features)
        attractors = torch.sigmoid(self.attractors(embedding))
        centres = attract_bin_centres(resize_to(centres, size), attractors, self.alpha)
        return centres, embedding


class LogBinomialHead(nn.Module):
    """Conditional log-binomial head: features -> (q, t) per pixel -> probabilities over the bins -> depth.

    (q, t) come from a per-pixel MLP (1x1 conv, ReLU, 1x1 conv), as ZoeDepth's conditional log-binomial regresses
    them with 1x1 convolutions; the spatial context is in the decoder features it is given.
    """

    def __init__(self, in_ch: int, n_bins: int, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(conv1x1(in_ch, hidden), nn.ReLU(inplace=True), conv1x1(hidden, 2))
        self.register_buffer("log_coefficients", log_binomial_coefficients(n_bins), persistent=False)

    def scores(self, features: torch.Tensor) -> torch.Tensor:
        out = self.net(features)  # channel 0: logit of the mode q; channel 1: temperature (pre-sigmoid)
        temperature = MIN_TEMPERATURE + (MAX_TEMPERATURE - MIN_TEMPERATURE) * torch.sigmoid(out[:, 1:2])
        return log_binomial_scores(out[:, 0:1], temperature, self.log_coefficients)

    def probabilities(self, features: torch.Tensor) -> torch.Tensor:
        """p(k) per pixel, (N, K, H, W)."""
        return torch.softmax(self.scores(features), dim=1)

    def forward(self, features: torch.Tensor, centres_metric: torch.Tensor, with_std: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Expected depth sum_k p_k c_k (N, 1, H, W); centres_metric (N, Z, h, w) is resized to the features.

        With ``with_std``: (depth, standard deviation of the bin distribution around it), both (N, 1, H, W). (A flag
        of forward rather than a method, so the exported nodes keep the /final_head/ scope in their names.)
        """
        size = (int(features.shape[-2]), int(features.shape[-1]))
        scores, centres = self.scores(features), resize_to(centres_metric, size)
        if with_std:
            return expected_value_and_std_over_bins(scores, centres)
        return expected_value_over_bins(scores, centres)
