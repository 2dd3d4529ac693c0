"""point_cloud: back-projection of real TUM RGB-D depth against K^-1, invalid depths, decimation, packing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from shared_data import DATA

from depth_estimation_ros.frame.camera_model import PinholeCamera, looks_unrectified
from depth_estimation_ros.frame.point_cloud import (
    POINT_STEP_XYZ,
    POINT_STEP_XYZRGB,
    CloudProjector,
    decimated_camera,
    pack_points,
    projector_for,
)

TUM = DATA / "tum_fr3_cabinet_keyframes"
K_TUM = np.array([[535.4, 0.0, 320.1], [0.0, 539.2, 247.6], [0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def camera() -> PinholeCamera:
    return PinholeCamera(640, 480, K_TUM)


@pytest.fixture(scope="module")
def depth() -> np.ndarray:
    """Real registered Kinect depth (uint16 / 5000 m), 0 = missing -> NaN (REP 118), plus +-Inf patches."""
    raw = cv2.imread(str(TUM / "depth" / "0005_depth_raw.png"), cv2.IMREAD_UNCHANGED)
    assert raw is not None and raw.dtype == np.uint16, f"missing test data {TUM}"
    metres = raw.astype(np.float32) / 5000.0
    metres[raw == 0] = np.nan
    metres[10:20, 10:30] = np.inf
    metres[30:35, 40:50] = -np.inf
    return metres


def back_project_reference(depth: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Independent formula: P = Z K^-1 [u, v, 1]^T per pixel, in float64 with the matrix inverse."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    pix = np.stack([u, v, np.ones_like(u)], axis=-1)
    rays = pix @ np.linalg.inv(k).T
    z = depth.astype(np.float64)
    z = np.where(np.isfinite(z) & (z > 0), z, np.nan)
    return rays * z[..., None]


def test_geometry_matches_k_inverse_on_real_depth(camera, depth):
    xyz = CloudProjector(camera).points(depth)
    assert xyz.shape == (480, 640, 3) and xyz.dtype == np.float32
    ref = back_project_reference(depth, K_TUM)
    valid = np.isfinite(ref[..., 2])
    assert valid.mean() > 0.8  # the frame is mostly valid
    np.testing.assert_array_equal(np.isnan(xyz), ~valid[..., None].repeat(3, axis=2))
    np.testing.assert_allclose(xyz[valid], ref[valid], rtol=2e-6, atol=1e-6)


def test_rectified_intrinsics_come_from_p_with_skew(depth):
    """A calibrated camera with distortion: the rectified image's intrinsics are P's (image_geometry), skew
    included; K describes the raw image and must not be used."""
    p = np.array([[520.0, 3.5, 318.0, 0.0], [0.0, 522.0, 250.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    camera = PinholeCamera(640, 480, K_TUM, p, d=(0.2, -0.5, 0.001, 0.002, 0.4), distortion_model="plumb_bob")
    assert (camera.fx, camera.fy, camera.cx, camera.cy, camera.skew) == (520.0, 522.0, 318.0, 250.0, 3.5)
    ref = back_project_reference(depth, p[:, :3])
    valid = np.isfinite(ref[..., 2])
    for decimation in (1, 3):
        xyz = CloudProjector(camera, decimation).points(depth)
        sub = (slice(None, None, decimation),) * 2
        np.testing.assert_allclose(xyz[valid[sub]], ref[sub][valid[sub]], rtol=2e-6, atol=1e-6)


def test_only_distorted_cameras_on_unrectified_topics_warn(camera):
    distorted = PinholeCamera(640, 480, K_TUM, d=(0.1, 0.0, 0.0, 0.0, 0.0))
    assert not looks_unrectified(camera, "/camera/image_raw")  # no distortion: raw is rectified
    assert looks_unrectified(distorted, "/camera/image_raw")
    assert looks_unrectified(distorted, "/camera/image_raw/compressed")
    assert not looks_unrectified(distorted, "/camera/color/image_rect_color")
    assert not looks_unrectified(distorted, "/camera/image_rect/compressed")


def test_single_pixel_by_hand(camera):
    depth = np.full((480, 640), np.nan, np.float32)
    depth[400, 100] = 2.0
    xyz = CloudProjector(camera).points(depth)
    np.testing.assert_allclose(xyz[400, 100], [(100 - 320.1) * 2 / 535.4, (400 - 247.6) * 2 / 539.2, 2.0], rtol=1e-6)
    assert np.isnan(xyz).sum() == 3 * (480 * 640 - 1)


def test_invalid_depths_give_nan_points(camera):
    depth = np.ones((480, 640), np.float32)
    bad = {(0, 0): np.nan, (0, 1): np.inf, (0, 2): -np.inf, (0, 3): 0.0, (0, 4): -1.0}
    for (r, c), value in bad.items():
        depth[r, c] = value
    xyz = CloudProjector(camera).points(depth)
    for r, c in bad:
        assert np.isnan(xyz[r, c]).all(), (r, c)
    assert np.isfinite(xyz[1:]).all()
    assert np.isfinite(xyz[0, 5:]).all()


@pytest.mark.parametrize("step", [2, 3, 4, 7])
def test_decimation_picks_every_nth_pixel(camera, depth, step):
    projector = CloudProjector(camera, step)
    xyz = projector.points(depth)
    expected_shape = (-(-480 // step), -(-640 // step))
    assert xyz.shape == (*expected_shape, 3) and projector.shape == expected_shape
    full = CloudProjector(camera).points(depth)
    np.testing.assert_array_equal(xyz, full[::step, ::step])
    # the decimated grid is a camera of its own: back-projecting the subsampled depth with it gives the same cloud
    small = decimated_camera(camera, step)
    assert (small.width, small.height) == (expected_shape[1], expected_shape[0])
    ref = back_project_reference(depth[::step, ::step], small.k)
    valid = np.isfinite(ref[..., 2])
    np.testing.assert_allclose(xyz[valid], ref[valid], rtol=2e-6, atol=1e-6)


def test_decimated_camera_equals_resize_when_size_divides(camera):
    for step in (2, 4, 5):
        small = decimated_camera(camera, step)
        np.testing.assert_allclose(small.k, camera.scaled(640 // step, 480 // step).k)
        np.testing.assert_allclose(small.p, camera.scaled(640 // step, 480 // step).p)


def test_bad_arguments(camera):
    with pytest.raises(ValueError, match="decimation must be an integer >= 1"):
        CloudProjector(camera, 0)
    with pytest.raises(ValueError, match="does not match the camera"):
        CloudProjector(camera).points(np.ones((240, 320), np.float32))
    with pytest.raises(ValueError, match="rgb must be uint8"):
        pack_points(np.zeros((2, 3, 3), np.float32), np.zeros((2, 2, 3), np.uint8))


def test_rays_are_built_once(camera, depth):
    projector = CloudProjector(camera, 2)
    rays = (projector._x_rays, projector._y_rays)
    first = projector.points(depth)
    second = projector.points(depth)
    assert rays[0] is projector._x_rays and rays[1] is projector._y_rays
    np.testing.assert_array_equal(first, second)


def read_back(data, fields, point_step: int, count: int) -> dict[str, np.ndarray]:
    """Reader written from the PointCloud2 definition: every field at its offset, points point_step apart."""
    buf = np.frombuffer(bytes(data), np.uint8)
    assert buf.size == count * point_step
    rows = buf.reshape(count, point_step)
    return {f.name: rows[:, f.offset:f.offset + 4].copy().view("<f4").reshape(count) for f in fields}


def test_pack_xyz_layout(camera, depth):
    xyz = CloudProjector(camera, 4).points(depth)
    packed = pack_points(xyz)
    assert packed.point_step == POINT_STEP_XYZ == 16
    assert [(f.name, f.offset, f.datatype, f.count) for f in packed.fields] == [
        ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1)]
    count = xyz.shape[0] * xyz.shape[1]
    values = read_back(packed.data, packed.fields, 16, count)
    for i, name in enumerate("xyz"):
        assert values[name].tobytes() == xyz[..., i].reshape(-1).tobytes()  # bit-exact, NaN included
    padding = np.frombuffer(bytes(packed.data), np.uint8).reshape(count, 16)[:, 12:]
    assert not padding.any()


def test_pack_rgb_round_trip(camera, depth):
    xyz = CloudProjector(camera, 4).points(depth)
    bgr = cv2.imread(str(TUM / "rgb" / "0005_rgb_raw.jpg"), cv2.IMREAD_COLOR)
    rgb = np.ascontiguousarray(bgr[::4, ::4, ::-1])
    packed = pack_points(xyz, rgb)
    assert packed.point_step == POINT_STEP_XYZRGB == 32
    assert [(f.name, f.offset) for f in packed.fields] == [("x", 0), ("y", 4), ("z", 8), ("rgb", 16)]
    count = xyz.shape[0] * xyz.shape[1]
    values = read_back(packed.data, packed.fields, 32, count)
    bits = values["rgb"].view("<u4")  # float32 whose bits are 0x00RRGGBB
    flat = rgb.reshape(-1, 3).astype(np.uint32)
    np.testing.assert_array_equal(bits, (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2])
    np.testing.assert_array_equal(values["z"], xyz[..., 2].reshape(-1))
    raw = np.frombuffer(bytes(packed.data), np.uint8).reshape(count, 32)
    assert not raw[:, 12:16].any() and not raw[:, 19:].any()


def test_pack_unorganised_points():
    pts = np.array([[1, 2, 3], [4, 5, np.nan]], np.float32)
    packed = pack_points(pts, np.array([[255, 0, 0], [1, 2, 3]], np.uint8))
    assert bytes(packed.data[:12]) == pts[0].tobytes()
    assert bytes(packed.data[16:20]) == bytes([0, 0, 255, 0])  # B G R 0 little-endian
    assert bytes(packed.data[48:52]) == bytes([3, 2, 1, 0])


def test_projector_for_reuses_the_ray_grid_per_camera_and_decimation():
    camera = PinholeCamera(64, 48, np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]]))
    assert projector_for(camera, 2) is projector_for(PinholeCamera(64, 48, camera.k.copy()), 2)
    assert projector_for(camera, 1) is not projector_for(camera, 2)
    other = PinholeCamera(64, 48, np.array([[60.0, 0, 32], [0, 60.0, 24], [0, 0, 1]]))
    assert projector_for(other, 2) is not projector_for(camera, 2)
    assert projector_for(camera, 2).shape == (24, 32)
