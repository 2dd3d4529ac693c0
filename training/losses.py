"""Self-supervised and sparse-supervision depth losses, each a small pure function on tensors.

Sources: photometric 0.85 (1 - SSIM)/2 + 0.15 L1, per-pixel minimum reprojection and auto-masking
(Godard et al., monodepth2, ICCV 2019); SSIM (Wang et al., 2004) with 3x3 mean windows, C1 = 0.01^2, C2 = 0.03^2;
edge-aware first-order smoothness on mean-normalised inverse depth; second-order "curvature" smoothness weighted by
exp(-|d^2 I|) (GCNDepth, Masoumian et al., 2022); multi-scale re-weighting (1/n) sum_i loss_i / 2^i (MLDA-Net, Song
et al., 2021); iterative self-distillation log loss log(1 + |d_best - d|) (GasMono, Zhao et al., ICCV 2023);
SILog sqrt(mean(h^2) - lambda mean(h)^2) * 10, lambda = 0.85, and a gradient loss (LacDepth, 2025).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


def ssim_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM (N,C,H,W) of images in [0, 1]: 3x3 mean windows over reflection-padded inputs."""
    x = F.pad(x, (1, 1, 1, 1), mode="reflect")
    y = F.pad(y, (1, 1, 1, 1), mode="reflect")
    mu_x = F.avg_pool2d(x, 3, 1)
    mu_y = F.avg_pool2d(y, 3, 1)
    sigma_x = F.avg_pool2d(x * x, 3, 1) - mu_x**2
    sigma_y = F.avg_pool2d(y * y, 3, 1) - mu_y**2
    sigma_xy = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + SSIM_C1) * (2 * sigma_xy + SSIM_C2)
    denominator = (mu_x**2 + mu_y**2 + SSIM_C1) * (sigma_x + sigma_y + SSIM_C2)
    return numerator / denominator


def photometric_error(predicted: torch.Tensor, target: torch.Tensor, alpha: float = 0.85) -> torch.Tensor:
    """alpha (1 - SSIM)/2 + (1 - alpha) L1, averaged over channels -> (N,1,H,W)."""
    l1 = (predicted - target).abs().mean(1, keepdim=True)
    dssim = ((1.0 - ssim_map(predicted, target)) / 2.0).clamp(0.0, 1.0).mean(1, keepdim=True)
    return alpha * dssim + (1.0 - alpha) * l1


def min_reprojection(errors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel minimum over sources of (N,S,H,W) errors -> (min (N,1,H,W), argmin (N,1,H,W))."""
    value, index = errors.min(dim=1, keepdim=True)
    return value, index


def auto_mask(reprojection: torch.Tensor, identity: torch.Tensor, tie_noise: float = 1e-5) -> torch.Tensor:
    """1 where some warped source beats every un-warped source (monodepth2 auto-masking), else 0.

    reprojection, identity: (N,S,H,W) errors of the warped and the un-warped sources. A tiny deterministic offset on
    the identity terms breaks exact ties (texture-less regions) in favour of the identity (masked out).
    """
    best_warped = reprojection.min(dim=1, keepdim=True).values
    best_identity = identity.min(dim=1, keepdim=True).values - tie_noise
    return (best_warped < best_identity).to(reprojection.dtype)


def _image_gradients(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return t[:, :, :, :-1] - t[:, :, :, 1:], t[:, :, :-1, :] - t[:, :, 1:, :]


def mean_normalised(disparity: torch.Tensor) -> torch.Tensor:
    """Inverse depth divided by its per-image mean (removes the scale the smoothness term would otherwise shrink)."""
    return disparity / (disparity.mean(dim=(2, 3), keepdim=True) + 1e-7)


def smoothness_first_order(disparity: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Edge-aware |d_x disp| exp(-|d_x I|) + |d_y disp| exp(-|d_y I|) on mean-normalised inverse depth (scalar)."""
    disp = mean_normalised(disparity)
    dx, dy = _image_gradients(disp)
    ix, iy = _image_gradients(image)
    wx = torch.exp(-ix.abs().mean(1, keepdim=True))
    wy = torch.exp(-iy.abs().mean(1, keepdim=True))
    return (dx.abs() * wx).mean() + (dy.abs() * wy).mean()


def smoothness_second_order(disparity: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """GCNDepth curvature term: |d_xx disp| exp(-|d_xx I|) + |d_yy disp| exp(-|d_yy I|) (scalar)."""
    disp = mean_normalised(disparity)
    dxx = disp[:, :, :, :-2] - 2 * disp[:, :, :, 1:-1] + disp[:, :, :, 2:]
    dyy = disp[:, :, :-2, :] - 2 * disp[:, :, 1:-1, :] + disp[:, :, 2:, :]
    ixx = (image[:, :, :, :-2] - 2 * image[:, :, :, 1:-1] + image[:, :, :, 2:]).abs().mean(1, keepdim=True)
    iyy = (image[:, :, :-2, :] - 2 * image[:, :, 1:-1, :] + image[:, :, 2:, :]).abs().mean(1, keepdim=True)
    return (dxx.abs() * torch.exp(-ixx)).mean() + (dyy.abs() * torch.exp(-iyy)).mean()


def scale_weights(num_scales: int, mlda_reweighting: bool) -> list[float]:
    """Weights of the per-scale losses: 1/n each, or MLDA-Net's (1/n) / 2^i for scale i (0 = full resolution)."""
    return [(1.0 / 2**i if mlda_reweighting else 1.0) / num_scales for i in range(num_scales)]


def self_distillation_loss(
    depth: torch.Tensor, pseudo_label: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """GasMono ISD: mean(log(1 + |d_best - d|)) with d_best detached (scalar)."""
    term = torch.log1p((pseudo_label.detach() - depth).abs())
    if mask is None:
        return term.mean()
    return (term * mask).sum() / mask.sum().clamp(min=1.0)


def best_depth_pseudo_label(depths: torch.Tensor, errors: torch.Tensor) -> torch.Tensor:
    """Per pixel, the depth among K candidates (N,K,H,W) with the lowest reprojection error (N,K,H,W) -> (N,1,H,W)."""
    index = errors.argmin(dim=1, keepdim=True)
    return torch.gather(depths, 1, index).detach()


def silog_loss(predicted: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, lam: float = 0.85) -> torch.Tensor:
    """Scale-invariant log loss sqrt(mean(h^2) - lam mean(h)^2) * 10, h = log y - log y*, over valid pixels.

    Computed in float32 whatever the autocast dtype (it produces NaNs in half precision).
    """
    with torch.autocast(device_type=predicted.device.type, enabled=False):
        valid = valid.bool()
        if not bool(valid.any()):
            return predicted.float().sum() * 0.0
        h = torch.log(predicted.float()[valid].clamp(min=1e-6)) - torch.log(target.float()[valid].clamp(min=1e-6))
        variance = (h**2).mean() - lam * h.mean() ** 2
        return torch.sqrt(variance.clamp(min=1e-8)) * 10.0


def per_sample_silog_loss(predicted: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                          lam: torch.Tensor) -> torch.Tensor:
    """SILog per sample, sqrt(mean(h^2) - lam_n mean(h)^2) * 10 over each sample's valid pixels, averaged over the
    samples that have any: lam (N,) 1 makes a sample's term scale-invariant (SfM depth in a chunk's own units),
    0.85 keeps LacDepth's weak scale term (metric depth). Float32."""
    with torch.autocast(device_type=predicted.device.type, enabled=False):
        v = valid.float()
        h = (torch.log(predicted.float().clamp(min=1e-6)) - torch.log(target.float().clamp(min=1e-6))) * v
        count = v.sum(dim=(1, 2, 3))
        mean = h.sum(dim=(1, 2, 3)) / count.clamp(min=1.0)
        mean_sq = (h**2).sum(dim=(1, 2, 3)) / count.clamp(min=1.0)
        loss = torch.sqrt((mean_sq - lam.float() * mean**2).clamp(min=1e-8)) * 10.0
        has = (count > 0).float()
        return (loss * has).sum() / has.sum().clamp(min=1.0)


def log_depth_gradient_loss(predicted: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """L1 between horizontal/vertical gradients of log predicted and log target depth, over pixel pairs where both
    target pixels are valid (sparse lidar: few pairs). Float32. Scalar."""
    with torch.autocast(device_type=predicted.device.type, enabled=False):
        diff = torch.log(predicted.float().clamp(min=1e-6)) - torch.log(target.float().clamp(min=1e-6))
        v = valid.float()
        dx, dy = _image_gradients(diff)
        vx = v[:, :, :, :-1] * v[:, :, :, 1:]
        vy = v[:, :, :-1, :] * v[:, :, 1:, :]
        count = vx.sum() + vy.sum()
        if count < 1:
            return diff.sum() * 0.0
        return ((dx.abs() * vx).sum() + (dy.abs() * vy).sum()) / count
