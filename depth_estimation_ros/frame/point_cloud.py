"""Depth image -> organised xyz(+rgb) points -> PointCloud2 payload, without ROS.

Geometry (REP 103 optical frame, z forward, x right, y down): a pixel (u, v) with depth Z along the optical axis
back-projects to X = (u - cx) Z / fx, Y = (v - cy) Z / fy, Z, i.e. Z K^-1 [u, v, 1]^T for a skew-free K.

Payload layout (what depth_image_proc's point_cloud_xyz / point_cloud_xyzrgb publish, i.e. the PCL PointXYZ /
PointXYZRGB memory layout), little-endian, one point after the other in image row-major order:

    without colour, point_step 16:  x float32 @0 | y float32 @4 | z float32 @8 | 4 padding bytes (zero)
    with colour,    point_step 32:  x @0 | y @4 | z @8 | 4 padding | rgb float32 @16 | 12 padding (zero)

``rgb`` is a FLOAT32 field whose 32 bits are the integer 0x00RRGGBB, so its little-endian bytes at offsets
16, 17, 18, 19 are B, G, R, 0. The bits are written directly (never through float arithmetic), so the colour
survives exactly even where the pattern is a denormal float. RViz, PCL and Open3D read this field as colour.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from depth_estimation_ros.frame.camera_model import PinholeCamera

FLOAT32 = 7  # sensor_msgs/PointField.FLOAT32
POINT_STEP_XYZ = 16
POINT_STEP_XYZRGB = 32


class FieldSpec(NamedTuple):
    """One sensor_msgs/PointField: name, byte offset within a point, datatype constant, count."""

    name: str
    offset: int
    datatype: int
    count: int


XYZ_FIELDS = (FieldSpec("x", 0, FLOAT32, 1), FieldSpec("y", 4, FLOAT32, 1), FieldSpec("z", 8, FLOAT32, 1))
XYZRGB_FIELDS = (*XYZ_FIELDS, FieldSpec("rgb", 16, FLOAT32, 1))


class PackedPoints(NamedTuple):
    """A PointCloud2 payload: fields, bytes per point, and the data (C-contiguous uint8 array, bytes-like)."""

    fields: tuple[FieldSpec, ...]
    point_step: int
    data: np.ndarray


def decimated_camera(camera: PinholeCamera, step: int) -> PinholeCamera:
    """The camera whose pixel (u', v') is pixel (step*u', step*v') of ``camera``: the intrinsics of a cloud
    decimated by taking every ``step``-th pixel.

    From u = step*u': (u - cx)/fx = (u' - cx/step)/(fx/step), so fx, fy, cx, cy (and P's first two rows) are
    divided by ``step``; the grid is ceil(W/step) x ceil(H/step). This is pixel subsampling, not image_proc's
    resize (which maps cx to cx*W'/W); the two agree only when W and H are multiples of ``step``.
    """
    if int(step) != step or step < 1:
        raise ValueError(f"cloud decimation must be an integer >= 1, got {step}")
    step = int(step)
    k = camera.k.copy()
    p = camera.p.copy()
    k[:2] /= step
    p[:2] /= step
    width = -(-camera.width // step)
    height = -(-camera.height // step)
    return PinholeCamera(width, height, k, p, camera.d, camera.distortion_model)


class CloudProjector:
    """Back-projects depth images of one camera to organised points; build once per (camera, decimation).

    The per-pixel rays (u - cx)/fx and (v - cy)/fy of the decimated grid are computed here once, so a frame costs
    three multiplications and no grid allocation.
    """

    def __init__(self, camera: PinholeCamera, decimation: int = 1) -> None:
        self.camera = camera
        self.output_camera = decimated_camera(camera, decimation)
        self.decimation = int(decimation)
        x_rays, y_rays = camera.pixel_rays()  # (1, W) or, with skew, (H, W); (H, 1); float32
        self._x_rays = np.ascontiguousarray(x_rays[:: self.decimation, :: self.decimation])
        self._y_rays = np.ascontiguousarray(y_rays[:: self.decimation])

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the organised cloud."""
        return self.output_camera.height, self.output_camera.width

    def decimate(self, image: np.ndarray) -> np.ndarray:
        """Pick the pixels of a full-size image (depth or colour) that the cloud's grid keeps."""
        if image.shape[:2] != (self.camera.height, self.camera.width):
            raise ValueError(
                f"image of shape {image.shape[:2]} does not match the camera ({self.camera.height}x"
                f"{self.camera.width}); scale the camera_info to the depth image size first"
            )
        if self.decimation == 1:
            return image
        return image[:: self.decimation, :: self.decimation]

    def points(self, depth: np.ndarray) -> np.ndarray:
        """(H', W', 3) float32 organised xyz in metres; NaN, +-Inf and Z <= 0 give a NaN point."""
        z = self.decimate(np.asarray(depth))
        if z.ndim != 2:
            raise ValueError(f"depth must be a single-channel HxW image, got shape {z.shape}")
        z = z.astype(np.float32, copy=False)
        xyz = np.empty((*z.shape, 3), dtype=np.float32)
        out_z = xyz[..., 2]
        # where(z > 0) is False for NaN too; +-Inf is caught by isfinite.
        np.copyto(out_z, z)
        out_z[~(np.isfinite(z) & (z > 0))] = np.nan
        np.multiply(self._x_rays, out_z, out=xyz[..., 0])
        np.multiply(self._y_rays, out_z, out=xyz[..., 1])
        return xyz


_PROJECTORS: dict[tuple, CloudProjector] = {}


def projector_for(camera: PinholeCamera, decimation: int = 1) -> CloudProjector:
    """The CloudProjector of (camera, decimation), built once and reused (a few cameras are kept)."""
    key = (camera.width, camera.height, camera.p.tobytes(), int(decimation))
    projector = _PROJECTORS.get(key)
    if projector is None:
        if len(_PROJECTORS) >= 8:
            _PROJECTORS.pop(next(iter(_PROJECTORS)))
        projector = _PROJECTORS[key] = CloudProjector(camera, decimation)
    return projector


def pack_points(xyz: np.ndarray, rgb: np.ndarray | None = None) -> PackedPoints:
    """Pack (..., 3) float32 xyz (and optional (..., 3) uint8 RGB of the same grid) into the PointCloud2 layout
    described in the module docstring: point_step 16 without colour, 32 with. Points are in row-major order of
    the grid, so an (H, W, 3) input is an organised cloud of height H, width W (row_step = point_step * W).
    """
    xyz = np.asarray(xyz)
    if xyz.ndim < 1 or xyz.shape[-1] != 3:
        raise ValueError(f"xyz must have shape (..., 3), got {xyz.shape}")
    count = int(np.prod(xyz.shape[:-1]))
    if rgb is None:
        fields, point_step = XYZ_FIELDS, POINT_STEP_XYZ
    else:
        rgb = np.asarray(rgb)
        if rgb.shape != xyz.shape or rgb.dtype != np.uint8:
            raise ValueError(
                f"rgb must be uint8 with the same (..., 3) shape as xyz {xyz.shape}, got {rgb.dtype} {rgb.shape}; "
                "decimate the colour image the same way as the depth (CloudProjector.decimate)"
            )
        fields, point_step = XYZRGB_FIELDS, POINT_STEP_XYZRGB
    raw = np.zeros((count, point_step), dtype=np.uint8)
    raw.view("<f4")[:, :3] = xyz.reshape(count, 3)
    if rgb is not None:
        flat_rgb = rgb.reshape(count, 3)
        raw[:, 16] = flat_rgb[:, 2]  # B: least significant byte of 0x00RRGGBB
        raw[:, 17] = flat_rgb[:, 1]  # G
        raw[:, 18] = flat_rgb[:, 0]  # R
    return PackedPoints(fields, point_step, raw.reshape(-1))


def points_dtype(fields: tuple[FieldSpec, ...], point_step: int) -> np.dtype:
    """Structured numpy dtype (little-endian) of one packed point, padding included in ``itemsize``."""
    return np.dtype(
        {
            "names": [f.name for f in fields],
            "formats": ["<f4"] * len(fields),
            "offsets": [f.offset for f in fields],
            "itemsize": point_step,
        }
    )
