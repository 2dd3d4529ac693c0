"""Camera poses of an image sequence with COLMAP (pycolmap): fixed shared pinhole camera, SIFT, sequential or
exhaustive matching, incremental mapping; registered frames split into chunks.

COLMAP stores world-to-camera poses (cam_from_world); the camera centre is -R^T t. Images are matched by name
(COLMAP image ids are not contiguous). Every reconstruction COLMAP returns is kept: a frame registered in several
models belongs to the largest; each model's frames are split into runs of consecutive sequence indices ("chunks"),
because the training pairs need neighbours with poses in the same coordinate frame.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pycolmap

from depth_estimation_ros.errors import InputError

LOG = logging.getLogger(__name__)


class ColmapError(InputError, RuntimeError):
    """COLMAP could not be run on the given input; the message names the problem and the fix."""


@dataclass
class ColmapOptions:
    """Knobs of the COLMAP run. Defaults: tuned for speed on KITTI-like driving at 2 CPU cores (docs/training.md)."""

    max_image_size: int = 1280  # SIFT runs on a copy resized so its longer side is at most this (-1: full size)
    max_num_features: int = 2048
    first_octave: int = 0  # -1 (COLMAP default) upsamples the image x2 first: ~4x the extraction time
    peak_threshold: float = 0.0066667  # COLMAP's default 0.02/3; lower finds more features in low texture
    affine_dsp: bool = False  # SIFT with affine shape + domain-size pooling: a little more accurate, ~3.5x extraction
    matching: str = "sequential"  # sequential | exhaustive
    overlap: int = 15  # sequential: each image is matched with this many following images
    quadratic_overlap: bool = False
    guided_matching: bool = False  # re-match under the verified two-view geometry: more inliers, ~3x matching time
    min_num_matches: int = 15
    init_min_num_inliers: int = 100
    init_min_tri_angle: float = 4.0  # COLMAP default 16 finds no initial pair on short straight drives
    init_max_forward_motion: float = 1.0  # COLMAP default 0.95 rejects pure forward motion (driving) as initial pair
    abs_pose_min_num_inliers: int = 30
    ba_global_frames_ratio: float = 1.1
    ba_global_points_ratio: float = 1.1
    ba_local_num_images: int = 6
    min_tri_angle: float = 1.5  # degrees; points triangulated/kept below this are dropped (distant points in driving)
    mapper: str = "incremental"  # incremental (COLMAP) | global (GLOMAP: rotation averaging + global positioning)
    num_threads: int = -1
    seed: int = 0

    @classmethod
    def low_texture(cls) -> ColmapOptions:
        """Settings for untextured indoor scenes (sparse keyframes): more, weaker features, exhaustive matching,
        permissive initialisation and registration."""
        return cls(
            max_image_size=-1,
            max_num_features=8192,
            first_octave=-1,
            peak_threshold=0.0015,
            matching="exhaustive",
            min_num_matches=10,
            init_min_num_inliers=25,
            init_min_tri_angle=2.0,
            abs_pose_min_num_inliers=10,
            init_max_forward_motion=0.95,
        )


@dataclass
class SfmPointFilter:
    """Which triangulated points become sparse depth: seen by >= min_track_length images, mean reprojection error
    <= max_reprojection_error px, and largest angle between two of its viewing rays >= min_triangulation_angle deg
    (a small angle leaves the depth along the ray poorly constrained)."""

    min_track_length: int = 3
    max_reprojection_error: float = 1.0
    min_triangulation_angle: float = 2.0


@dataclass
class PoseChunk:
    """Consecutive frames registered in one COLMAP model, world-to-camera 4x4 poses in that model's frame, and per
    frame the filtered points it observes: (M, 3) rows (x, y, z), x/y in pixels (COLMAP: the top-left pixel's
    centre is (0.5, 0.5)), z the depth along the optical axis in the model's units."""

    model_index: int
    names: list[str]
    cam_from_world: list[np.ndarray]
    points: list[np.ndarray] = field(default_factory=list)

    def camera_centres(self) -> np.ndarray:
        """(N, 3) camera centres -R^T t in the model frame."""
        return np.stack([-(t[:3, :3].T @ t[:3, 3]) for t in self.cam_from_world])


@dataclass
class ColmapResult:
    chunks: list[PoseChunk]
    unregistered: list[str]
    num_images: int
    seconds: dict[str, float] = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    point_filter: dict = field(default_factory=dict)

    @property
    def num_registered(self) -> int:
        return sum(len(c.names) for c in self.chunks)

    def summary(self) -> str:
        timing = ", ".join(f"{k} {v:.1f}s" for k, v in self.seconds.items())
        head = f"COLMAP registered {self.num_registered}/{self.num_images} frames in {len(self.chunks)} chunk(s)"
        lines = [f"{head} ({timing})"]
        for i, c in enumerate(self.chunks):
            lines.append(f"  chunk {i}: model {c.model_index}, {len(c.names)} frames {c.names[0]} .. {c.names[-1]}")
        if self.unregistered:
            shown = ", ".join(self.unregistered[:10]) + (" ..." if len(self.unregistered) > 10 else "")
            lines.append(f"  {len(self.unregistered)} frame(s) not registered, excluded from training: {shown}")
        return "\n".join(lines)


def rigid_to_matrix(rigid: pycolmap.Rigid3d) -> np.ndarray:
    """4x4 matrix of a pycolmap Rigid3d."""
    m = np.eye(4)
    m[:3, :4] = np.asarray(rigid.matrix())
    return m


def max_ray_angle_deg(point: np.ndarray, centres: np.ndarray) -> float:
    """Largest angle (degrees) between the rays from the camera centres (K, 3) to a point (3,)."""
    rays = point[None] - centres
    rays = rays / np.linalg.norm(rays, axis=1, keepdims=True).clip(min=1e-12)
    cosines = np.clip(rays @ rays.T, -1.0, 1.0)
    return float(np.degrees(np.arccos(cosines.min())))


def observed_points(rec: pycolmap.Reconstruction, point_filter: SfmPointFilter) -> dict[str, np.ndarray]:
    """Per registered image name, the (M, 3) (x, y, depth) of the points passing the filter that it observes."""
    centres = {i: np.asarray(img.projection_center()) for i, img in rec.images.items() if img.has_pose}
    good: dict[int, np.ndarray] = {}
    for pid, point in rec.points3D.items():
        track = [e.image_id for e in point.track.elements]
        if len(set(track)) < point_filter.min_track_length or point.error > point_filter.max_reprojection_error:
            continue
        xyz = np.asarray(point.xyz)
        known = np.stack([centres[i] for i in set(track) if i in centres])
        if max_ray_angle_deg(xyz, known) >= point_filter.min_triangulation_angle:
            good[pid] = xyz
    out: dict[str, np.ndarray] = {}
    for img in rec.images.values():
        if not img.has_pose:
            continue
        pose = rigid_to_matrix(img.cam_from_world())
        rows = [(*p.xy, *(pose[:3, :3] @ good[p.point3D_id] + pose[:3, 3])) for p in img.points2D
                if p.has_point3D() and p.point3D_id in good]
        obs = np.asarray(rows, np.float64).reshape(-1, 5)
        obs = obs[obs[:, 4] > 0]
        out[img.name] = np.column_stack([obs[:, 0], obs[:, 1], obs[:, 4]]).astype(np.float32)
    return out


def _set_common_pipeline_options(pipe, opt: ColmapOptions) -> None:
    """Options the incremental and the global pipelines share: every model of >= 3 frames kept, seeded."""
    pipe.min_num_matches = opt.min_num_matches
    pipe.num_threads = opt.num_threads
    pipe.random_seed = opt.seed
    pipe.multiple_models = True
    pipe.min_model_size = 3


def _mapper_options(opt: ColmapOptions) -> pycolmap.IncrementalPipelineOptions:
    pipe = pycolmap.IncrementalPipelineOptions()
    _set_common_pipeline_options(pipe, opt)
    pipe.extract_colors = False
    # intrinsics come from CameraInfo: keep them fixed
    pipe.ba_refine_focal_length = False
    pipe.ba_refine_principal_point = False
    pipe.ba_refine_extra_params = False
    pipe.ba_global_frames_ratio = opt.ba_global_frames_ratio
    pipe.ba_global_points_ratio = opt.ba_global_points_ratio
    m = pipe.mapper
    m.init_min_num_inliers = opt.init_min_num_inliers
    m.init_min_tri_angle = opt.init_min_tri_angle
    m.init_max_forward_motion = opt.init_max_forward_motion
    m.abs_pose_min_num_inliers = opt.abs_pose_min_num_inliers
    m.abs_pose_refine_focal_length = False
    m.abs_pose_refine_extra_params = False
    m.ba_local_num_images = opt.ba_local_num_images
    m.filter_min_tri_angle = opt.min_tri_angle
    tri = pipe.triangulation
    tri.min_angle = opt.min_tri_angle
    pipe.triangulation = tri
    m.random_seed = opt.seed
    pipe.mapper = m
    return pipe


def _global_mapper_options(opt: ColmapOptions) -> pycolmap.GlobalPipelineOptions:
    pipe = pycolmap.GlobalPipelineOptions()
    _set_common_pipeline_options(pipe, opt)
    ba = pipe.mapper.bundle_adjustment
    ba.refine_focal_length = False
    ba.refine_principal_point = False
    ba.refine_extra_params = False
    pipe.mapper.bundle_adjustment = ba
    pipe.mapper.random_seed = opt.seed
    pipe.mapper.num_threads = opt.num_threads
    return pipe


def split_into_chunks(
    models: Sequence[dict[str, np.ndarray]], order: Sequence[str]
) -> tuple[list[PoseChunk], list[str]]:
    """Assign each frame to the largest model registering it, then split each model's frames into runs of
    consecutive positions in `order`. Returns (chunks sorted by first frame, unregistered names)."""
    position = {name: i for i, name in enumerate(order)}
    owner: dict[str, int] = {}
    for m_idx in sorted(range(len(models)), key=lambda i: -len(models[i])):
        for name in models[m_idx]:
            owner.setdefault(name, m_idx)
    chunks: list[PoseChunk] = []
    current: PoseChunk | None = None
    for name in order:
        m_idx = owner.get(name)
        if m_idx is None:
            current = None
            continue
        if current is None or current.model_index != m_idx or position[current.names[-1]] != position[name] - 1:
            current = PoseChunk(m_idx, [], [])
            chunks.append(current)
        current.names.append(name)
        current.cam_from_world.append(models[m_idx][name])
    unregistered = [n for n in order if n not in owner]
    return chunks, unregistered


def _extract_features(db: Path, image_dir: Path, names: list[str], k: np.ndarray, opt: ColmapOptions) -> None:
    """SIFT features of every image into the database, one shared PINHOLE camera with the fixed K."""
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "PINHOLE"
    reader.camera_params = f"{k[0, 0]},{k[1, 1]},{k[0, 2]},{k[1, 2]}"
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.max_image_size = opt.max_image_size
    extraction.num_threads = opt.num_threads
    extraction.sift.max_num_features = opt.max_num_features
    extraction.sift.first_octave = opt.first_octave
    extraction.sift.peak_threshold = opt.peak_threshold
    extraction.sift.estimate_affine_shape = opt.affine_dsp
    extraction.sift.domain_size_pooling = opt.affine_dsp
    pycolmap.extract_features(
        db,
        image_dir,
        image_names=names,
        camera_mode=pycolmap.CameraMode.SINGLE,
        reader_options=reader,
        extraction_options=extraction,
        device=pycolmap.Device.cpu,
    )


def _match_features(db: Path, opt: ColmapOptions) -> None:
    """Sequential (neighbours in sequence order) or exhaustive matching, geometrically verified."""
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = opt.num_threads
    matching.guided_matching = opt.guided_matching
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = opt.seed
    if opt.matching == "sequential":
        pairing = pycolmap.SequentialPairingOptions()
        pairing.overlap = opt.overlap
        pairing.quadratic_overlap = opt.quadratic_overlap
        pycolmap.match_sequential(db, matching, pairing, verification, device=pycolmap.Device.cpu)
    elif opt.matching == "exhaustive":
        pycolmap.match_exhaustive(
            db, matching, pycolmap.ExhaustivePairingOptions(), verification, device=pycolmap.Device.cpu
        )
    else:
        raise ColmapError(f"matching must be 'sequential' or 'exhaustive', got '{opt.matching}'")


def run_colmap(
    image_dir: Path,
    image_names: Sequence[str],
    intrinsics: np.ndarray,
    options: ColmapOptions | None = None,
    work_dir: Path | None = None,
    point_filter: SfmPointFilter | None = None,
) -> ColmapResult:
    """Run COLMAP on image_dir/image_names (in sequence order) with the fixed pinhole K (3x3) of those images.

    work_dir keeps the database and models (a temporary folder is used and removed when None). Each chunk carries
    the points its frames observe, filtered by point_filter (default SfmPointFilter()).
    """
    opt = options or ColmapOptions()
    point_filter = point_filter or SfmPointFilter()
    image_dir = Path(image_dir)
    names = list(image_names)
    if len(names) < 2:
        raise ColmapError(f"COLMAP needs at least 2 images, got {len(names)} in {image_dir}")
    missing = [n for n in names if not (image_dir / n).is_file()]
    if missing:
        raise ColmapError(f"{len(missing)} image(s) missing in {image_dir}, e.g. {missing[0]}; re-run depth-extract")
    k = np.asarray(intrinsics, np.float64)
    if k.shape != (3, 3) or k[0, 0] <= 0 or k[1, 1] <= 0:
        raise ColmapError(f"intrinsics must be a 3x3 K with fx, fy > 0, got {k.tolist()}")
    own_tmp = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="colmap_")) if own_tmp else Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    db = work / "database.db"
    if db.exists():
        db.unlink()
    seconds: dict[str, float] = {}
    try:
        pycolmap.set_random_seed(opt.seed)
        t0 = time.perf_counter()
        _extract_features(db, image_dir, names, k, opt)
        seconds["features"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        _match_features(db, opt)
        seconds["matching"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        sparse = work / "sparse"
        sparse.mkdir(exist_ok=True)
        if opt.mapper == "global":
            reconstructions = pycolmap.global_mapping(db, image_dir, sparse, _global_mapper_options(opt))
        elif opt.mapper == "incremental":
            reconstructions = pycolmap.incremental_mapping(db, image_dir, sparse, _mapper_options(opt))
        else:
            raise ColmapError(f"mapper must be 'incremental' or 'global', got '{opt.mapper}'")
        seconds["mapping"] = time.perf_counter() - t0
    finally:
        if own_tmp:
            shutil.rmtree(work, ignore_errors=True)
    models, model_points = [], []
    t0 = time.perf_counter()
    for rec in reconstructions.values():
        poses = {}
        for image in rec.images.values():
            if image.has_pose:
                poses[image.name] = rigid_to_matrix(image.cam_from_world())
        models.append(poses)
        model_points.append(observed_points(rec, point_filter))
    seconds["points"] = time.perf_counter() - t0
    chunks, unregistered = split_into_chunks(models, names)
    for chunk in chunks:
        chunk.points = [model_points[chunk.model_index][n] for n in chunk.names]
    result = ColmapResult(chunks, unregistered, len(names), seconds, asdict(opt), asdict(point_filter))
    LOG.info(result.summary())
    return result
