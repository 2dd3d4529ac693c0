"""Colour augmentation: the cheap hue rotation keeps luma and greys, turns hue the way torchvision does, and one
jitter is applied alike to every frame of a sample."""

from __future__ import annotations

import cv2
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from depth_estimation_training.augmentation import _RGB_TO_YIQ, jitter_colours, rotate_hue
from shared_data import TUM_KEYFRAMES


@pytest.fixture(scope="module")
def frame() -> torch.Tensor:
    bgr = cv2.imread(str(TUM_KEYFRAMES / "rgb" / "0005_rgb_raw.jpg"))
    rgb = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (160, 120), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(rgb).permute(2, 0, 1).double() / 255.0


def test_hue_rotation_keeps_luma_and_grey_and_a_full_turn_is_identity(frame):
    mid = 0.25 + 0.5 * frame  # away from 0 and 1, so no clamping
    luma = torch.einsum("j,jhw->hw", _RGB_TO_YIQ[0], mid)
    for shift in (-0.3, 0.05, 0.2):
        turned = rotate_hue(mid, shift)
        assert torch.allclose(torch.einsum("j,jhw->hw", _RGB_TO_YIQ[0], turned), luma, atol=1e-9)
        assert not torch.allclose(turned, mid, atol=1e-3)
    assert torch.allclose(rotate_hue(mid, 1.0), mid, atol=1e-9)
    grey = mid.mean(0, keepdim=True).expand(3, -1, -1).contiguous()
    assert torch.allclose(rotate_hue(grey, 0.2), grey, atol=1e-9)
    assert rotate_hue(frame, 0.0) is frame


def test_hue_turns_the_same_way_as_torchvision():
    red = torch.tensor([0.8, 0.2, 0.2]).view(3, 1, 1)
    for shift in (0.05, -0.05):
        ours, reference = rotate_hue(red, shift).flatten(), TF.adjust_hue(red, shift).flatten()
        # positive: red towards yellow (green rises, blue does not); negative: towards magenta (blue rises)
        assert (ours[1] > 0.2) == (reference[1] > 0.2) and (ours[2] > 0.2) == (reference[2] > 0.2)


def test_one_jitter_for_all_frames_of_a_sample(frame):
    frames = torch.stack([frame, frame, frame]).float()
    out = jitter_colours(frames, (0.2, 0.2, 0.2, 0.1), torch.tensor([0.9, 0.1, 0.7, 0.95]))
    assert out.shape == frames.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out[0], out[1]) and torch.equal(out[0], out[2])
    assert (out - frames).abs().mean() > 0.01
    unchanged = jitter_colours(frames, (0.2, 0.2, 0.2, 0.1), torch.tensor([0.5, 0.5, 0.5, 0.5]))
    assert torch.allclose(unchanged, frames, atol=1e-6)
