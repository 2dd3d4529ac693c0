"""The training objective: combines the loss functions of losses.py over sources, scales and pose variants.

GasMono: L = sum_i w_i [L_rec(T_t) + beta L_rec(T_R)] + lambda L_smooth + mu L_ISD, with the per-scale depths
upsampled to full resolution for the reprojection terms (monodepth2), smoothness at each scale's own resolution
divided by 2^i, and, where sparse metric depth exists, LacDepth's SILog plus (after a warm-up) its gradient loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from depth_estimation_training.geometry import warp_source_to_target
from depth_estimation_training.losses import (
    auto_mask,
    best_depth_pseudo_label,
    log_depth_gradient_loss,
    photometric_error,
    scale_weights,
    self_distillation_loss,
    silog_loss,
    smoothness_first_order,
    smoothness_second_order,
)


@dataclass
class ObjectiveWeights:
    ssim_alpha: float = 0.85
    automask: bool = True
    mlda_reweighting: bool = False
    rotation_refine_weight: float = 0.2
    smoothness_weight: float = 0.001
    curvature_weight: float = 0.001
    isd_weight: float = 0.1
    silog_weight: float = 1.0
    gradient_weight: float = 0.1


def reprojection_errors(
    target: torch.Tensor, sources: torch.Tensor, depth: torch.Tensor, poses: torch.Tensor, k: torch.Tensor,
    inv_k: torch.Tensor, alpha: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Photometric error of each warped source (N,S,H,W) and the warped images (N,S,3,H,W)."""
    errors, warped_all = [], []
    for s in range(sources.shape[1]):
        warped, _ = warp_source_to_target(sources[:, s], depth, k, inv_k, poses[:, s])
        errors.append(photometric_error(warped, target, alpha))
        warped_all.append(warped)
    return torch.cat(errors, 1), torch.stack(warped_all, 1)


def identity_errors(target: torch.Tensor, sources: torch.Tensor, alpha: float) -> torch.Tensor:
    """Photometric error of each un-warped source (N,S,H,W), for auto-masking."""
    return torch.cat([photometric_error(sources[:, s], target, alpha) for s in range(sources.shape[1])], 1)


def masked_min_reprojection(errors: torch.Tensor, identity: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(scalar loss, per-pixel minimum error (N,1,H,W)) with optional auto-mask."""
    min_err = errors.min(dim=1, keepdim=True).values
    if identity is None:
        return min_err.mean(), min_err
    mask = auto_mask(errors, identity)
    return (min_err * mask).sum() / mask.sum().clamp(min=1.0), min_err


def compute_objective(
    w: ObjectiveWeights,
    target: torch.Tensor,
    sources: torch.Tensor,
    depths: list[torch.Tensor],
    poses: dict[str, torch.Tensor],
    k: torch.Tensor,
    inv_k: torch.Tensor,
    sparse_depth: torch.Tensor | None = None,
    use_gradient_loss: bool = False,
    previous_best: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, float], dict[str, torch.Tensor]]:
    """Total loss, scalar parts for logging and tensors for images / the next ISD iteration.

    depths: per scale (N,1,h_i,w_i), full resolution first. poses: {"pose": (N,S,4,4)} (PoseNet) or
    {"pose_t", "pose_r"} (GasMono). previous_best: (depth, error) per pixel from an earlier inner iteration.
    """
    n, _, h, w_ = target.shape
    variants = [("pose", 1.0)] if "pose" in poses else [("pose_t", 1.0), ("pose_r", w.rotation_refine_weight)]
    identity = identity_errors(target, sources, w.ssim_alpha) if w.automask else None
    weights = scale_weights(len(depths), w.mlda_reweighting)
    rec_total = target.new_zeros(())
    smooth_total = target.new_zeros(())
    full_depths, best_errors = [], []
    parts: dict[str, float] = {}
    images: dict[str, torch.Tensor] = {}
    for i, depth in enumerate(depths):
        full = depth if depth.shape[-2:] == (h, w_) else F.interpolate(depth, (h, w_), mode="bilinear",
                                                                        align_corners=False)
        full_depths.append(full)
        for name, beta in variants:
            errors, warped = reprojection_errors(target, sources, full, poses[name], k, inv_k, w.ssim_alpha)
            loss, min_err = masked_min_reprojection(errors, identity)
            rec_total = rec_total + weights[i] * beta * loss
            parts[f"rec_{name}_s{i}"] = float(loss.detach())
        best_errors.append(min_err.detach())  # of the last (most refined) pose variant
        if i == 0:
            images["reprojection_error"] = min_err.detach()
            images["warped"] = warped[:, 0].detach()
        disp = 1.0 / depth.clamp(min=1e-6)
        img = target if depth.shape[-2:] == (h, w_) else F.interpolate(target, depth.shape[-2:], mode="area")
        smooth = w.smoothness_weight * smoothness_first_order(disp, img)
        smooth = smooth + w.curvature_weight * smoothness_second_order(disp, img)
        smooth_total = smooth_total + smooth / 2**i
    total = rec_total + smooth_total
    parts["reprojection"] = float(rec_total.detach())
    parts["smoothness"] = float(smooth_total.detach())
    # iterative self-distillation: per pixel, the depth with the lowest reprojection error is the pseudo-label
    cand_d = torch.cat([d.detach() for d in full_depths], 1)
    cand_e = torch.cat(best_errors, 1)
    if previous_best is not None:
        cand_d = torch.cat([cand_d, previous_best[0]], 1)
        cand_e = torch.cat([cand_e, previous_best[1]], 1)
    label = best_depth_pseudo_label(cand_d, cand_e)
    best_err = cand_e.min(dim=1, keepdim=True).values
    images["pseudo_label"] = label
    images["best_error"] = best_err
    if w.isd_weight > 0:
        isd = sum(self_distillation_loss(d, label) for d in full_depths) / len(full_depths)
        total = total + w.isd_weight * isd
        parts["isd"] = float(isd.detach())
    if sparse_depth is not None and bool((sparse_depth > 0).any()):
        valid = sparse_depth > 0
        silog = silog_loss(full_depths[0], sparse_depth, valid)
        total = total + w.silog_weight * silog
        parts["silog"] = float(silog.detach())
        if use_gradient_loss:
            grad = log_depth_gradient_loss(full_depths[0], sparse_depth, valid)
            total = total + w.gradient_weight * grad
            parts["gradient"] = float(grad.detach())
    parts["total"] = float(total.detach())
    return total, parts, images
