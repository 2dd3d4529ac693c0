"""The training objective: combines the loss functions of losses.py over sources, scales and pose variants.

GasMono: L = sum_i w_i [L_rec(T_t) + beta L_rec(T_R)] + lambda L_smooth + mu L_ISD, with the per-scale depths
upsampled to full resolution for the reprojection terms (monodepth2), smoothness at each scale's own resolution
divided by 2^i, and, where sparse metric depth exists, LacDepth's SILog plus (after a warm-up) its gradient loss.
Where COLMAP's points give the target an SfM depth, a per-sample SILog on it at every scale (scale-invariant in a
chunk without metric scale), and with AlignNet a prior pulling its per-pair log-scale toward 0 (the photometric
loss alone cannot tell depth x s with translation x s from depth with translation, so s is free to drift).
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
    per_sample_silog_loss,
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
    sfm_depth_weight: float = 0.0
    align_scale_prior_weight: float = 0.0
    photometric_weight: float = 1.0


SILOG_LAMBDA_METRIC = 0.85  # LacDepth's SILog lambda (../shared/docs/models.md)


def reprojection_errors(
    target: torch.Tensor, sources: torch.Tensor, depths: torch.Tensor, poses: torch.Tensor, k: torch.Tensor,
    inv_k: torch.Tensor, alpha: float, batched: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Photometric errors of every source warped with every depth and pose set.

    target (N,3,H,W), sources (N,S,3,H,W), depths (L,N,1,H,W), poses (V,N,S,4,4) -> errors (V,L,N,S,H,W) and the
    first source warped with the last pose set and the first depth (N,3,H,W), for logging. batched: one warp over
    all V x L x S combinations, which launches the kernels of one instead of V x L x S (kernel launches bound a
    training step on the GPU, docs/training.md); else a loop, faster on the CPU, whose caches the batch spills.
    """
    v, n, s = poses.shape[:3]
    levels = depths.shape[0]
    h, w = target.shape[-2:]
    if not batched:
        warped_all = [[[warp_source_to_target(sources[:, j], depths[i], k, inv_k, poses[m, :, j])[0]
                        for j in range(s)] for i in range(levels)] for m in range(v)]
        errors = torch.stack([torch.stack([torch.cat([photometric_error(x, target, alpha) for x in per_source], 1)
                                           for per_source in per_level]) for per_level in warped_all])
        return errors, warped_all[-1][0][0]

    def flat(t: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:  # broadcast to (V,L,S,N,...), then merge
        return t.expand(*shape).reshape(-1, *shape[4:])

    depth = flat(depths[None, :, None], (v, levels, s, n, 1, h, w))
    source = flat(sources.transpose(0, 1)[None, None], (v, levels, s, n, 3, h, w))
    pose = flat(poses.transpose(1, 2)[:, None], (v, levels, s, n, 4, 4))
    k_all = flat(k[None, None, None], (v, levels, s, n, 3, 3))
    inv_k_all = flat(inv_k[None, None, None], (v, levels, s, n, 3, 3))
    warped, _ = warp_source_to_target(source, depth, k_all, inv_k_all, pose)
    errors = photometric_error(warped, flat(target[None, None, None], (v, levels, s, n, 3, h, w)), alpha)
    errors = errors.reshape(v, levels, s, n, h, w).transpose(2, 3)
    return errors, warped.reshape(v, levels, s, n, 3, h, w)[-1, 0, 0]


def identity_errors(target: torch.Tensor, sources: torch.Tensor, alpha: float) -> torch.Tensor:
    """Photometric error of each un-warped source (N,S,H,W), for auto-masking."""
    n, s = sources.shape[:2]
    expanded = target[:, None].expand_as(sources)
    return photometric_error(sources.reshape(n * s, *sources.shape[2:]),
                             expanded.reshape(n * s, *sources.shape[2:]), alpha).reshape(n, s, *sources.shape[3:])


def masked_min_reprojection(errors: torch.Tensor, identity: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per leading index, the (auto-masked) mean of the per-pixel minimum over sources.

    errors (...,N,S,H,W), identity (N,S,H,W) or None -> (losses (...), minimum errors (...,N,1,H,W)).
    """
    min_err = errors.min(dim=-3, keepdim=True).values
    pixel_dims = (-4, -3, -2, -1)
    if identity is None:
        return min_err.mean(dim=pixel_dims), min_err
    flat = errors.reshape(-1, *errors.shape[-3:])
    mask = auto_mask(flat, identity.repeat(flat.shape[0] // identity.shape[0], 1, 1, 1)).reshape(min_err.shape)
    return (min_err * mask).sum(dim=pixel_dims) / mask.sum(dim=pixel_dims).clamp(min=1.0), min_err


def loss_floats(parts: dict[str, torch.Tensor]) -> dict[str, float]:
    """The logged loss parts as floats, copied from the device at once (one synchronisation, not one per part)."""
    values = torch.stack([v.float() for v in parts.values()]).tolist()
    return dict(zip(parts.keys(), values))


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
    batch_warps: bool | None = None,
    sfm_depth: torch.Tensor | None = None,
    sfm_metric: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Total loss, its parts for logging (detached 0-d tensors: loss_floats reads them all with one device sync)
    and tensors for images / the next ISD iteration.

    depths: per scale (N,1,h_i,w_i), full resolution first. poses: {"pose": (N,S,4,4)} (PoseNet) or
    {"pose_t", "pose_r"} (GasMono). previous_best: (depth, error) per pixel from an earlier inner iteration.
    sparse_depth: (N,1,H,W) metres, 0 where no measurement; None when the batch has none.
    sfm_depth: (N,1,H,W) SfM point depth, 0 where none; sfm_metric (N,) bool: in metres (else the chunk's units).
    poses may hold "scale" (N,S): AlignNet's per-pair scale, for the prior.
    batch_warps: reprojection_errors' batched; default on a GPU (16x fewer launches for the warps and SSIMs of 4
    scales, 2 sources and 2 pose sets), off on the CPU (there the batch ran about 3x slower at batch 12, 640x192).
    """
    h, w_ = target.shape[-2:]
    variants = [("pose", 1.0)] if "pose" in poses else [("pose_t", 1.0), ("pose_r", w.rotation_refine_weight)]
    identity = identity_errors(target, sources, w.ssim_alpha) if w.automask else None
    full_depths = [d if d.shape[-2:] == (h, w_) else F.interpolate(d, (h, w_), mode="bilinear", align_corners=False)
                   for d in depths]
    errors, warped = reprojection_errors(target, sources, torch.stack(full_depths),
                                         torch.stack([poses[name] for name, _ in variants]), k, inv_k, w.ssim_alpha,
                                         batched=target.is_cuda if batch_warps is None else batch_warps)
    rec_losses, min_errs = masked_min_reprojection(errors, identity)  # (V,L), (V,L,N,1,H,W)
    weights = rec_losses.new_tensor([[beta * sw for sw in scale_weights(len(depths), w.mlda_reweighting)]
                                     for _, beta in variants])
    rec_total = w.photometric_weight * (weights * rec_losses).sum()
    logged: dict[str, torch.Tensor] = {f"rec_{name}_s{i}": rec_losses[j, i]
                                       for j, (name, _) in enumerate(variants) for i in range(len(depths))}
    best_errors = min_errs[-1].detach()  # of the last (most refined) pose variant, (L,N,1,H,W)
    images: dict[str, torch.Tensor] = {"reprojection_error": best_errors[0], "warped": warped.detach()}
    smooth_total = smoothness_term(w, depths, target)
    total = rec_total + smooth_total
    logged["reprojection"] = rec_total
    logged["smoothness"] = smooth_total
    label, best_err = distillation_label(full_depths, best_errors, previous_best)
    images["pseudo_label"] = label
    images["best_error"] = best_err
    terms = weighted_terms(w, full_depths, label, sparse_depth, use_gradient_loss, sfm_depth, sfm_metric, poses)
    for name, weight, loss in terms:  # in this order, as the total has always been summed
        total = total + weight * loss
        logged[name] = loss
    if "scale" in poses:
        logged["align_scale_mean"] = poses["scale"].detach().float().mean()
    logged["total"] = total
    return total, {key: value.detach() for key, value in logged.items()}, images


def smoothness_term(w: ObjectiveWeights, depths: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Edge-aware first- and second-order smoothness of the inverse depth, scale i weighted 1 / 2^i."""
    h, w_ = target.shape[-2:]
    total = target.new_zeros(())
    for i, depth in enumerate(depths):
        disp = 1.0 / depth.clamp(min=1e-6)
        img = target if depth.shape[-2:] == (h, w_) else F.interpolate(target, depth.shape[-2:], mode="area")
        smooth = w.smoothness_weight * smoothness_first_order(disp, img)
        smooth = smooth + w.curvature_weight * smoothness_second_order(disp, img)
        total = total + smooth / 2**i
    return total


def distillation_label(full_depths: list[torch.Tensor], best_errors: torch.Tensor,
                       previous_best: tuple[torch.Tensor, torch.Tensor] | None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Iterative self-distillation: per pixel, the candidate depth (every scale, and an earlier inner iteration's)
    with the lowest reprojection error is the pseudo-label; (label, that error), each (N,1,H,W)."""
    cand_d = torch.cat([d.detach() for d in full_depths], 1)
    cand_e = best_errors[:, :, 0].transpose(0, 1)  # (N,L,H,W)
    if previous_best is not None:
        cand_d = torch.cat([cand_d, previous_best[0]], 1)
        cand_e = torch.cat([cand_e, previous_best[1]], 1)
    return best_depth_pseudo_label(cand_d, cand_e), cand_e.min(dim=1, keepdim=True).values


def weighted_terms(w: ObjectiveWeights, full_depths: list[torch.Tensor], label: torch.Tensor,
                   sparse_depth: torch.Tensor | None, use_gradient_loss: bool, sfm_depth: torch.Tensor | None,
                   sfm_metric: torch.Tensor | None, poses: dict[str, torch.Tensor]
                   ) -> list[tuple[str, float, torch.Tensor]]:
    """(log name, weight, loss) of the terms after photometry and smoothness that this batch and config enable:
    self-distillation, sensor-depth SILog and gradient, SfM-point SILog, AlignNet's scale prior."""
    terms = []
    if w.isd_weight > 0:
        isd = sum(self_distillation_loss(d, label) for d in full_depths) / len(full_depths)
        terms.append(("isd", w.isd_weight, isd))
    if sparse_depth is not None:
        valid = sparse_depth > 0
        terms.append(("silog", w.silog_weight, silog_loss(full_depths[0], sparse_depth, valid)))
        if use_gradient_loss:
            terms.append(("gradient", w.gradient_weight,
                          log_depth_gradient_loss(full_depths[0], sparse_depth, valid)))
    if sfm_depth is not None and w.sfm_depth_weight > 0:
        valid = sfm_depth > 0
        lam = torch.where(sfm_metric.bool(), SILOG_LAMBDA_METRIC, 1.0) if sfm_metric is not None else \
            torch.ones(sfm_depth.shape[0], device=sfm_depth.device)
        sfm = sum(per_sample_silog_loss(d, sfm_depth, valid, lam) for d in full_depths) / len(full_depths)
        terms.append(("sfm_silog", w.sfm_depth_weight, sfm))
    if "scale" in poses and w.align_scale_prior_weight > 0:
        prior = torch.log(poses["scale"].float().clamp(min=1e-6)).pow(2).mean()
        terms.append(("align_scale_prior", w.align_scale_prior_weight, prior))
    return terms
