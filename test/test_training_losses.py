"""Each loss is a small function: checked against an independent implementation or its defining property."""

import numpy as np
import pytest
import torch
from depth_estimation_training.losses import (
    auto_mask,
    best_depth_pseudo_label,
    log_depth_gradient_loss,
    min_reprojection,
    photometric_error,
    scale_weights,
    self_distillation_loss,
    silog_loss,
    smoothness_first_order,
    smoothness_second_order,
    ssim_map,
)
from skimage.metrics import structural_similarity


def test_ssim_matches_scikit_image_with_the_same_window():
    rng = np.random.default_rng(0)
    x = rng.random((40, 56))
    y = np.clip(x + 0.1 * rng.standard_normal(x.shape), 0, 1)
    _, expected = structural_similarity(
        x, y, win_size=3, gaussian_weights=False, use_sample_covariance=False, data_range=1.0, K1=0.01, K2=0.03,
        full=True,
    )
    got = ssim_map(torch.from_numpy(x)[None, None], torch.from_numpy(y)[None, None])[0, 0].numpy()
    # borders differ only by the padding convention (scipy 'reflect' repeats the edge, torch's does not)
    assert np.abs(got[1:-1, 1:-1] - expected[1:-1, 1:-1]).max() < 1e-10
    assert got.shape == x.shape


def test_photometric_error_is_zero_for_identical_images_and_weighted():
    x = torch.rand(2, 3, 16, 20)
    assert photometric_error(x, x).abs().max() < 1e-6
    y = (x + 0.2).clamp(0, 1)
    e = photometric_error(y, x, alpha=0.0)
    assert torch.allclose(e, (y - x).abs().mean(1, keepdim=True))


def test_min_reprojection_and_auto_mask():
    reproj = torch.tensor([[[[0.2, 0.5]], [[0.3, 0.1]]]])  # (1, 2 sources, 1, 2)
    identity = torch.tensor([[[[0.1, 0.4]], [[0.6, 0.4]]]])
    value, index = min_reprojection(reproj)
    assert torch.allclose(value, torch.tensor([[[[0.2, 0.1]]]]))
    assert index.tolist() == [[[[0, 1]]]]
    assert auto_mask(reproj, identity).tolist() == [[[[0.0, 1.0]]]]
    # exact ties go to the identity (masked out)
    assert auto_mask(identity, identity).sum() == 0


def test_smoothness_terms():
    img = torch.rand(1, 3, 16, 16)
    flat = torch.ones(1, 1, 16, 16)
    assert smoothness_first_order(flat, img) < 1e-6
    ramp = torch.linspace(1, 2, 16).repeat(16, 1)[None, None]
    assert smoothness_first_order(ramp, img) > 1e-3
    assert smoothness_second_order(ramp, img) < 1e-5  # linear: no curvature
    assert smoothness_second_order(ramp**3, img) > 1e-4
    # an image edge at the disparity edge lowers the penalty
    step = torch.ones(1, 1, 16, 16)
    step[..., 8:] = 2.0
    edge_img = torch.zeros(1, 3, 16, 16)
    edge_img[..., 8:] = 1.0
    assert smoothness_first_order(step, edge_img) < smoothness_first_order(step, torch.zeros_like(edge_img))
    # scale of inverse depth does not matter (mean-normalised)
    assert torch.allclose(smoothness_first_order(ramp, img), smoothness_first_order(5 * ramp, img))


def test_scale_weights():
    assert scale_weights(4, False) == [0.25] * 4
    assert scale_weights(4, True) == pytest.approx([0.25, 0.125, 0.0625, 0.03125])


def test_self_distillation_picks_the_lowest_error_depth():
    depths = torch.tensor([[[[1.0, 5.0]], [[2.0, 3.0]]]])
    errors = torch.tensor([[[[0.1, 0.9]], [[0.5, 0.2]]]])
    label = best_depth_pseudo_label(depths, errors)
    assert label.tolist() == [[[[1.0, 3.0]]]]
    d = torch.tensor([[[[2.0, 3.0]]]], requires_grad=True)
    loss = self_distillation_loss(d, label)
    assert loss.item() == pytest.approx(np.log(2.0) / 2)
    loss.backward()
    assert d.grad is not None


def test_silog_is_scale_invariant_at_lambda_one_and_matches_formula():
    torch.manual_seed(0)
    gt = torch.rand(1, 1, 8, 8) * 10 + 1
    pred = gt * torch.exp(0.1 * torch.randn_like(gt))
    valid = torch.rand_like(gt) > 0.5
    h = (pred.log() - gt.log())[valid]
    expected = torch.sqrt((h**2).mean() - 0.85 * h.mean() ** 2) * 10
    assert silog_loss(pred, gt, valid).item() == pytest.approx(expected.item(), rel=1e-5)
    assert silog_loss(2 * pred, gt, valid, lam=1.0).item() == pytest.approx(silog_loss(pred, gt, valid, lam=1.0).item(),
                                                                              rel=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert silog_loss(pred.bfloat16(), gt, valid).dtype == torch.float32
    assert silog_loss(pred, gt, torch.zeros_like(valid)).item() == 0.0


def test_gradient_loss_ignores_offset_and_invalid_pairs():
    gt = torch.rand(1, 1, 8, 8) + 1
    valid = torch.ones_like(gt, dtype=torch.bool)
    assert log_depth_gradient_loss(gt * 3.0, gt, valid) < 1e-6
    noisy = gt.clone()
    noisy[0, 0, 4, 4] *= 2
    assert log_depth_gradient_loss(noisy, gt, valid) > 0
    valid[0, 0, 4, 4] = False
    assert log_depth_gradient_loss(noisy, gt, valid) < 1e-6
