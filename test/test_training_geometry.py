"""Geometry of view synthesis on real TUM keyframes (ground-truth depth and motion-capture poses)."""


import cv2
import numpy as np
import pytest
import torch
from depth_estimation_training.geometry import (
    axis_angle_to_matrix,
    backproject,
    flip_pose_horizontally,
    invert_pose,
    pixel_grid,
    pixels_to_grid,
    pose_from_axis_angle,
    project,
    project_target_pixels,
    relative_pose,
    transform_points,
    warp_source_to_target,
)
from depth_estimation_training.losses import photometric_error
from shared_data import TUM_K, tum_keyframe_poses
from shared_data import TUM_KEYFRAMES as TUM


def _load_tum(index, scale=0.5):
    rgb = cv2.cvtColor(cv2.imread(str(TUM / "rgb" / f"{index:04d}_rgb_raw.jpg")), cv2.COLOR_BGR2RGB)
    raw = cv2.imread(str(TUM / "depth" / f"{index:04d}_depth_raw.png"), cv2.IMREAD_UNCHANGED)
    depth = raw.astype(np.float32) / 5000
    h, w = int(rgb.shape[0] * scale), int(rgb.shape[1] * scale)
    rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    depth = cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST)
    img = torch.from_numpy(rgb).permute(2, 0, 1).float().div(255).unsqueeze(0).double()
    return img, torch.from_numpy(depth)[None, None].double()


def _scaled_k(scale=0.5):
    k = TUM_K.copy()
    # pixel-centre convention: u' = (u + 0.5) * s - 0.5
    k[0, 0] *= scale
    k[1, 1] *= scale
    k[0, 2] = (k[0, 2] + 0.5) * scale - 0.5
    k[1, 2] = (k[1, 2] + 0.5) * scale - 0.5
    return torch.from_numpy(k)[None]


@pytest.fixture(scope="module")
def tum_poses():
    return list(tum_keyframe_poses()[1])


def _warp_error(target_index, source_index, pose_pair, tum_poses):
    tgt, depth = _load_tum(target_index)
    src, _ = _load_tum(source_index)
    k = _scaled_k()
    a, b = pose_pair
    # camera-to-world poses: X_s = T_ws(b)^-1 T_wt(a) X_t
    t_to_s = torch.from_numpy(np.linalg.inv(tum_poses[b]) @ tum_poses[a])[None]
    warped, valid = warp_source_to_target(src, depth, k, torch.linalg.inv(k), t_to_s)
    valid = valid * (depth > 0)
    err = photometric_error(warped, tgt)
    return float((err * valid).sum() / valid.sum()), float(valid.mean())


def test_view_synthesis_with_ground_truth_beats_shuffled_pose(tum_poses):
    """Warping with the true depth and motion reproduces the neighbour far better than another pair's motion.

    (The motion-capture poses are photometrically about 1 degree off on this low-texture scene -- a pose
    optimised from the ground truth lowers the error further -- so the true warp is not compared with perfection.)
    """
    good, shuffled = [], []
    for target, source in [(10, 11), (20, 21), (30, 31)]:
        err, coverage = _warp_error(target, source, (target, source), tum_poses)
        assert coverage > 0.5
        good.append(err)
        shuffled.append(_warp_error(target, source, (40, 45), tum_poses)[0])
    assert all(g < 0.6 * s for g, s in zip(good, shuffled)), (good, shuffled)


def test_backproject_project_round_trip_is_exact():
    torch.manual_seed(0)
    h, w = 24, 40
    k = torch.tensor([[[50.0, 0, 19.3], [0, 48.0, 11.7], [0, 0, 1]]], dtype=torch.float64)
    depth = torch.rand(1, 1, h, w, dtype=torch.float64) * 10 + 0.5
    pixels, z = project(backproject(depth, torch.linalg.inv(k)), k)
    assert torch.allclose(pixels, pixel_grid(h, w, dtype=torch.float64)[:2][None], atol=1e-10)
    assert torch.allclose(z.reshape(1, 1, h, w), depth, atol=1e-12)
    # through a rigid motion and back
    pose = pose_from_axis_angle(torch.tensor([[0.1, -0.2, 0.05]], dtype=torch.float64),
                                torch.tensor([[0.3, 0.1, -0.2]], dtype=torch.float64))
    points = backproject(depth, torch.linalg.inv(k))
    back = transform_points(transform_points(points, pose), invert_pose(pose))
    assert torch.allclose(back, points, atol=1e-12)


def test_grid_normalisation_samples_pixel_centres_exactly():
    img = torch.arange(12.0).reshape(1, 1, 3, 4)
    grid = pixels_to_grid(pixel_grid(3, 4)[:2][None], 3, 4)
    out = torch.nn.functional.grid_sample(img, grid, align_corners=False)
    assert torch.allclose(out, img, atol=1e-5)


def test_axis_angle_matches_opencv_rodrigues_and_is_stable_at_zero():
    vec = np.array([0.3, -1.2, 0.7])
    expected = cv2.Rodrigues(vec)[0]
    got = axis_angle_to_matrix(torch.tensor(vec)[None])[0].numpy()
    assert np.allclose(got, expected, atol=1e-12)
    zero = torch.zeros(1, 3, requires_grad=True)
    r = axis_angle_to_matrix(zero)
    r.sum().backward()
    assert torch.allclose(r[0], torch.eye(3)) and torch.isfinite(zero.grad).all()


def test_relative_pose_and_flip():
    e_t = pose_from_axis_angle(torch.tensor([[0.0, 0.2, 0.0]]), torch.tensor([[1.0, 0.0, 0.0]]))
    e_s = pose_from_axis_angle(torch.tensor([[0.0, 0.1, 0.0]]), torch.tensor([[0.0, 0.0, 2.0]]))
    rel = relative_pose(e_t, e_s)
    assert torch.allclose(rel @ e_t, e_s, atol=1e-6)
    flipped = flip_pose_horizontally(rel)
    # a horizontally flipped world: x -> -x both in the point and its image
    p = torch.tensor([[0.5], [0.2], [3.0]])
    s = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
    assert torch.allclose(flipped[0, :3, :3] @ (s @ p) + flipped[0, :3, 3:], s @ (rel[0, :3, :3] @ p + rel[0, :3, 3:]))


def test_composed_projection_equals_backproject_transform_project():
    gen = torch.Generator().manual_seed(3)
    n, h, w = 3, 24, 40
    k = torch.tensor([[30.0, 0.0, 19.5], [0.0, 31.0, 11.5], [0.0, 0.0, 1.0]]).repeat(n, 1, 1)
    depth = 1.0 + 20.0 * torch.rand(n, 1, h, w, generator=gen)
    pose = pose_from_axis_angle(0.1 * torch.randn(n, 3, generator=gen), torch.randn(n, 3, generator=gen))
    inv_k = torch.linalg.inv(k)
    expected_px, expected_z = project(transform_points(backproject(depth, inv_k), pose), k)
    pixels, z = project_target_pixels(depth, k, inv_k, pose)
    torch.testing.assert_close(z, expected_z, rtol=1e-5, atol=1e-4)
    valid = (expected_z > 0.1).expand_as(expected_px)  # pixels far behind the camera are not sampled anyway
    torch.testing.assert_close(pixels[valid], expected_px[valid], rtol=1e-4, atol=1e-3)
