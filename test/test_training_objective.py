"""The batched training objective against a plain loop over pose variants, scales and sources."""

import pytest
import torch
from depth_estimation_training.geometry import pose_from_axis_angle, warp_source_to_target
from depth_estimation_training.losses import auto_mask, photometric_error, scale_weights
from depth_estimation_training.objective import ObjectiveWeights, compute_objective, loss_floats


def _loop_reprojection(w, target, sources, depths, poses, k, inv_k):
    """The reprojection term written the obvious way: one warp per (variant, scale, source)."""
    variants = [("pose", 1.0)] if "pose" in poses else [("pose_t", 1.0), ("pose_r", w.rotation_refine_weight)]
    identity = torch.cat([photometric_error(sources[:, s], target, w.ssim_alpha)
                          for s in range(sources.shape[1])], 1)
    weights = scale_weights(len(depths), w.mlda_reweighting)
    total, parts, last_min = 0.0, {}, []
    for i, depth in enumerate(depths):
        full = torch.nn.functional.interpolate(depth, target.shape[-2:], mode="bilinear", align_corners=False)
        for name, beta in variants:
            errors = torch.cat([photometric_error(warp_source_to_target(sources[:, s], full, k, inv_k,
                                                                        poses[name][:, s])[0], target, w.ssim_alpha)
                                for s in range(sources.shape[1])], 1)
            min_err = errors.min(dim=1, keepdim=True).values
            mask = auto_mask(errors, identity)
            loss = (min_err * mask).sum() / mask.sum().clamp(min=1.0)
            total = total + weights[i] * beta * loss
            parts[f"rec_{name}_s{i}"] = float(loss)
        last_min.append(min_err)
    return float(total), parts, torch.cat(last_min, 1)


@pytest.mark.parametrize("batch_warps", [True, False])
@pytest.mark.parametrize("pose_keys", [("pose_t", "pose_r"), ("pose",)])
def test_objective_equals_the_plain_loop(pose_keys, batch_warps):
    gen = torch.Generator().manual_seed(0)
    n, s, h, w = 2, 2, 32, 48
    target = torch.rand(n, 3, h, w, generator=gen)
    # sources: the target shifted by a few pixels plus noise, so warps land on related content
    sources = torch.stack([torch.roll(target, shifts=(0, 2 * (j + 1)), dims=(2, 3)) for j in range(s)], 1)
    sources = (sources + 0.05 * torch.rand(sources.shape, generator=gen)).clamp(0, 1)
    k = torch.tensor([[40.0, 0.0, 23.5], [0.0, 40.0, 15.5], [0.0, 0.0, 1.0]]).repeat(n, 1, 1)
    inv_k = torch.linalg.inv(k)
    depths = [2.0 + 3.0 * torch.rand(n, 1, h // 2**i, w // 2**i, generator=gen) for i in range(4)]
    poses = {key: pose_from_axis_angle(0.02 * torch.randn(n * s, 3, generator=gen),
                                       0.1 * torch.randn(n * s, 3, generator=gen)).reshape(n, s, 4, 4)
             for key in pose_keys}
    weights = ObjectiveWeights(mlda_reweighting=True)
    full = [torch.nn.functional.interpolate(d, (h, w), mode="bilinear", align_corners=False) for d in depths]
    total, parts, images = compute_objective(weights, target, sources, full, poses, k, inv_k, batch_warps=batch_warps)
    floats = loss_floats(parts)
    expected_total, expected_parts, expected_min = _loop_reprojection(weights, target, sources, full, poses, k, inv_k)
    assert floats["reprojection"] == pytest.approx(expected_total, rel=1e-5)
    assert set(expected_parts) <= set(floats)
    for key, value in expected_parts.items():
        assert floats[key] == pytest.approx(value, rel=1e-5), key
    assert floats["total"] == pytest.approx(float(total), rel=1e-6)
    # the per-pixel errors behind the self-distillation label are those of the last pose variant at every scale
    best = expected_min.min(dim=1, keepdim=True).values
    torch.testing.assert_close(images["best_error"], best, rtol=1e-5, atol=1e-6)


def test_loss_floats_reads_every_part():
    parts = {"a": torch.tensor(1.5), "b": torch.tensor(2.0, dtype=torch.bfloat16)}
    assert loss_floats(parts) == {"a": 1.5, "b": 2.0}
