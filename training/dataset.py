"""Training samples from sequence folders: a target frame, its neighbours at configured offsets, intrinsics
scaled to the training size, relative COLMAP poses E_{t->s} = E_s E_t^-1 (GasMono), optional sparse sensor depth and
the depth of the COLMAP points the target observes (SfM depth, written by depth-poses).

Augmentation (monodepth2 practice): one colour jitter shared by all frames of a sample (losses use the un-augmented
colours) and a horizontal flip applied to images, intrinsics and poses (T' = S T S, S = diag(-1,1,1,1)). Optionally a
random zoom: a window 1/z of the frame, z uniform in [1, zoom_max], cropped from every frame of the sample, with the
depths and pose translations divided by z (see zoom_window). All
randomness of a sample comes from a generator seeded by (seed, epoch, index), so a run is reproducible and a
resumed run sees exactly the samples the uninterrupted run would have seen, whatever the number of workers.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from depth_estimation_training.augmentation import jitter_colours
from depth_estimation_training.sequence import Sequence, SequenceError, load_sequence
from torch.utils.data import Dataset

from depth_estimation_ros.data.datasets import DatasetError  # one class for "this data set cannot be used"

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleRef:
    sequence: int
    target: int  # frame index in the sequence
    sources: tuple[int, ...]
    chunk: int | None  # COLMAP chunk holding all frames of the sample (None: no COLMAP poses)


def scale_intrinsics(k: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """K for an image resized by (sx, sy), pixel-centre convention u' = (u + 0.5) s - 0.5."""
    out = np.array(k, np.float64)
    out[0, 0] *= sx
    out[1, 1] *= sy
    out[0, 2] = (out[0, 2] + 0.5) * sx - 0.5
    out[1, 2] = (out[1, 2] + 0.5) * sy - 0.5
    return out


def zoom_window(height: int, width: int, zoom: float, u_x: float, u_y: float) -> tuple[int, int, int, int]:
    """(x0, y0, w, h): a window 1/zoom the size of a height x width frame, its top-left corner at the fractions
    u_x, u_y in [0, 1) of the free range.

    Cropping a window and resizing it to the training size is a camera with a zoom x longer focal length. For the
    network a pixel's apparent size then keeps meaning the same distance only if depths and pose translations are
    divided by the zoom as well: the scene is moved towards the camera by that factor, which leaves every
    reprojection between the frames unchanged (the dataset applies it; Metric3D's canonical-camera transform, Yin
    et al., ICCV 2023, does the same across cameras)."""
    w = min(width, max(1, round(width / zoom)))
    h = min(height, max(1, round(height / zoom)))
    x0 = min(width - w, int(u_x * (width - w + 1)))
    y0 = min(height - h, int(u_y * (height - h + 1)))
    return x0, y0, w, h


def crop_intrinsics(k: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """K of the window of an image whose top-left pixel is (x0, y0)."""
    out = np.array(k, np.float64)
    out[0, 2] -= x0
    out[1, 2] -= y0
    return out


def crop_window(image: np.ndarray, window: tuple[int, int, int, int], frame_size: tuple[int, int]) -> np.ndarray:
    """The part of ``image`` inside ``window`` (x0, y0, w, h) of a frame of ``frame_size`` (h, w): an image stored at
    another size than the frame (a depth map) is cut at the same fractions."""
    x0, y0, w, h = window
    sy, sx = image.shape[0] / frame_size[0], image.shape[1] / frame_size[1]
    return image[round(y0 * sy):round((y0 + h) * sy), round(x0 * sx):round((x0 + w) * sx)]


def rasterize_points(xy: np.ndarray, depth: np.ndarray, source_size: tuple[int, int], height: int, width: int
                     ) -> np.ndarray:
    """Sparse depth image (height, width), 0 = none, from points at pixel coordinates xy (M, 2) of an image of
    source_size (h, w) whose top-left pixel's centre is (0.5, 0.5) (COLMAP); the nearest point wins a pixel."""
    out = np.zeros((height, width), np.float32)
    if len(depth) == 0:
        return out
    cols = np.floor(xy[:, 0] * width / source_size[1]).astype(int)
    rows = np.floor(xy[:, 1] * height / source_size[0]).astype(int)
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height) & (depth > 0)
    order = np.argsort(-depth[inside])  # nearer points written last win
    out[rows[inside][order], cols[inside][order]] = depth[inside][order]
    return out


def resize_sparse_depth(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resampling that keeps only measured values (0 = none): each measurement lands on the output
    pixel its centre falls in, the nearest winning (rasterize_points of the measured pixels' centres)."""
    v, u = np.nonzero(depth > 0)
    centres = np.column_stack([u + 0.5, v + 0.5])
    return rasterize_points(centres, depth[v, u].astype(np.float32), depth.shape, height, width)


def read_split_file(path: Path) -> dict[str, set[int]]:
    """Split file: lines "<sequence name> <frame index>" ('#' comments): the frames training may use, as targets or
    as sources (a sample is kept only when all its frames are listed). Returns {name: {indices}}."""
    split: dict[str, set[int]] = {}
    for line_no, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise DatasetError(f"{path}:{line_no}: expected '<sequence name> <frame index>', got '{line}'")
        split.setdefault(parts[0], set()).add(int(parts[1]))
    return split


def read_split_files(paths: str | list[str]) -> dict[str, set[int]]:
    """One split file or the union of several (one per set)."""
    split: dict[str, set[int]] = {}
    for path in [paths] if isinstance(paths, str) else paths:
        for name, frames in read_split_file(Path(path)).items():
            split.setdefault(name, set()).update(frames)
    return split


class SequenceDataset(Dataset):
    """Samples over one or more sequence folders (see module docstring).

    use_colmap: take relative poses from poses.json (frames outside registered chunks are excluded; samples need
    all frames in one chunk); otherwise only images (PoseNet-only baseline).
    """

    def __init__(
        self,
        roots: list[Path],
        height: int,
        width: int,
        source_offsets: tuple[int, ...] = (-1, 1),
        use_colmap: bool = True,
        augment: bool = True,
        flip: bool = True,
        color_jitter: tuple[float, float, float, float] = (0.2, 0.2, 0.2, 0.1),
        seed: int = 0,
        split: dict[str, set[int]] | None = None,
        repeats: list[int] | None = None,
        strides: list[int] | None = None,
        zoom_max: float = 1.0,
    ) -> None:
        if height % 32 or width % 32:
            raise DatasetError(f"training size {height}x{width} must be multiples of 32 (the encoders stride 32)")
        self.height, self.width = height, width
        self.offsets = tuple(int(o) for o in source_offsets)
        if not self.offsets or 0 in self.offsets:
            raise DatasetError(f"source_offsets must be non-zero frame offsets, got {source_offsets}")
        self.use_colmap = use_colmap
        self.augment, self.flip, self.jitter = augment, flip, color_jitter
        if not 1.0 <= zoom_max <= 4.0:
            raise DatasetError(f"zoom_max must be in [1, 4] (1: no zoom), got {zoom_max}")
        self.zoom_max = float(zoom_max)
        self.seed = seed
        self.epoch = 0
        self.sequences: list[Sequence] = [load_sequence(r) for r in roots]
        self.chunks: list[list[dict]] = []
        self.samples: list[SampleRef] = []
        self.report: list[str] = []
        for what, counts in (("repeat counts", repeats), ("source strides", strides)):
            if counts is not None and len(counts) != len(roots):
                raise DatasetError(f"{len(counts)} {what} for {len(roots)} sequences; give one per sequence")
        for s_idx, seq in enumerate(self.sequences):
            allowed = None if split is None else split.get(seq.name, set())
            self._index_sequence(s_idx, seq, allowed, 1 if repeats is None else repeats[s_idx],
                                 1 if strides is None else strides[s_idx])
        if not self.samples:
            raise DatasetError(
                "no training samples: " + "; ".join(self.report)
                + ". Check that depth-poses registered consecutive frames, the split file names these sequences, and "
                "the offsets fit the sequence length (or use pose_mode: posenet)"
            )
        for line in self.report:
            LOG.info(line)

    def _index_sequence(self, s_idx: int, seq: Sequence, allowed: set[int] | None, repeat: int = 1,
                        stride: int = 1) -> None:
        n = len(seq.frames)
        chunks: list[dict] = []
        if self.use_colmap:
            path = seq.root / "poses.json"
            if not path.is_file():
                raise DatasetError(f"{path} not found: run depth-poses on {seq.root} (or use pose_mode: posenet)")
            doc = json.loads(path.read_text())
            chunks = doc["chunks"]
            frame_chunk = {f: c for c, ch in enumerate(chunks) for f in ch["frames"]}
        self.chunks.append(chunks)
        kept, dropped_pose, dropped_split = 0, 0, 0
        for t in range(n):
            sources = tuple(t + o * stride for o in self.offsets)
            if min(sources) < 0 or max(sources) >= n:
                continue
            if allowed is not None and not all(f in allowed for f in (t, *sources)):
                dropped_split += 1  # target or one of its sources is not a training frame
                continue
            chunk = None
            if self.use_colmap:
                ids = {frame_chunk.get(i) for i in (t, *sources)}
                if len(ids) != 1 or None in ids:
                    dropped_pose += 1
                    continue
                chunk = ids.pop()
            self.samples += [SampleRef(s_idx, t, sources, chunk)] * repeat
            kept += 1
        self.report.append(
            f"{seq.name}: {kept} samples from {n} frames" + (f", each {repeat} times per epoch" if repeat > 1 else "")
            + (f", sources {stride} frames per offset" if stride > 1 else "")
            + (f", {dropped_pose} targets without COLMAP poses for the whole sample" if dropped_pose else "")
            + (f", {dropped_split} targets with a frame outside the split" if dropped_split else "")
        )

    def __len__(self) -> int:
        return len(self.samples)

    def data_hash(self) -> str:
        """Hash of the frames used (sequence names + target indices + image file sizes): goes into ONNX metadata."""
        h = hashlib.sha256()
        for ref in self.samples:
            seq = self.sequences[ref.sequence]
            h.update(f"{seq.name}:{ref.target}:{seq.image_path(ref.target).stat().st_size};".encode())
        return h.hexdigest()[:16]

    def _load_image(self, seq: Sequence, index: int, window: tuple[int, int, int, int] | None) -> torch.Tensor:
        rgb = seq.read_rgb(index)
        if window is not None:
            rgb = crop_window(rgb, window, (seq.height, seq.width))
        rgb = cv2.resize(rgb, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)

    def _relative_pose(self, ref: SampleRef, source: int) -> np.ndarray:
        chunk = self.chunks[ref.sequence][ref.chunk]
        position = {f: i for i, f in enumerate(chunk["frames"])}
        e_t = np.asarray(chunk["cam_from_world"][position[ref.target]], np.float64)
        e_s = np.asarray(chunk["cam_from_world"][position[source]], np.float64)
        rel = e_s @ np.linalg.inv(e_t)
        scale = chunk.get("scale_to_metric") or chunk.get("scale_normalisation") or 1.0
        rel[:3, 3] *= scale
        return rel

    def _sfm_depth(self, ref: SampleRef, window: tuple[int, int, int, int] | None, zoom: float
                   ) -> tuple[torch.Tensor, bool]:
        """The target's SfM depth at the training size (1, H, W), 0 = none, and whether it is in metres (before the
        division by the zoom)."""
        empty = torch.zeros(1, self.height, self.width)
        if ref.chunk is None:
            return empty, False
        chunk = self.chunks[ref.sequence][ref.chunk]
        paths = chunk.get("sfm_depth")
        if not paths:
            return empty, False
        seq = self.sequences[ref.sequence]
        rel = paths[chunk["frames"].index(ref.target)]
        with np.load(seq.root / rel) as data:
            xy, depth = data["xy"], data["depth"]
        size = (seq.height, seq.width)
        if window is not None:
            xy, size = xy - np.array(window[:2], np.float32), (window[3], window[2])
        image = rasterize_points(xy, depth / zoom, size, self.height, self.width)
        return torch.from_numpy(image)[None], bool(chunk.get("sfm_depth_metric"))

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        """Sample ``key``: an index (augmented as of ``self.epoch``) or an (epoch, index) pair."""
        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        ref = self.samples[i]
        seq = self.sequences[ref.sequence]
        gen = torch.Generator().manual_seed(hash((self.seed, epoch, i)) & 0x7FFFFFFF)
        zoom, window = 1.0, None
        if self.augment and self.zoom_max > 1.0:  # no draws without zoom: the other draws stay as they were
            u = torch.rand(3, generator=gen).tolist()
            window = zoom_window(seq.height, seq.width, 1.0 + (self.zoom_max - 1.0) * u[0], u[1], u[2])
            zoom = float(np.sqrt(seq.width / window[2] * seq.height / window[3]))
        target = self._load_image(seq, ref.target, window)
        sources = torch.stack([self._load_image(seq, s, window) for s in ref.sources])
        x0, y0, w, h = window if window is not None else (0, 0, seq.width, seq.height)
        k = scale_intrinsics(crop_intrinsics(seq.intrinsics, x0, y0), self.width / w, self.height / h)
        poses = np.stack([self._relative_pose(ref, s) for s in ref.sources]) if ref.chunk is not None else \
            np.tile(np.eye(4), (len(ref.sources), 1, 1))
        poses[:, :3, 3] /= zoom
        sparse = seq.read_sparse_depth(ref.target)
        sparse = resize_sparse_depth(crop_window(sparse, (x0, y0, w, h), (seq.height, seq.width)) / zoom,
                                     self.height, self.width) if sparse is not None else \
            np.zeros((self.height, self.width), np.float32)
        sparse_t = torch.from_numpy(sparse)[None]
        sfm_t, sfm_metric = self._sfm_depth(ref, window, zoom)
        if self.augment and self.flip and torch.rand(1, generator=gen).item() < 0.5:
            target, sources, sparse_t, sfm_t = target.flip(-1), sources.flip(-1), sparse_t.flip(-1), sfm_t.flip(-1)
            k[0, 2] = self.width - 1 - k[0, 2]
            s = np.diag([-1.0, 1.0, 1.0, 1.0])
            poses = s @ poses @ s
        target_aug, sources_aug = target, sources
        if self.augment and self.jitter is not None:
            frames = jitter_colours(torch.cat([target[None], sources]), self.jitter, torch.rand(4, generator=gen))
            target_aug, sources_aug = frames[0], frames[1:]
        return {
            "target": target,
            "sources": sources,
            "target_aug": target_aug.contiguous(),
            "sources_aug": sources_aug.contiguous(),
            "k": torch.from_numpy(k).float(),
            "colmap_pose": torch.from_numpy(poses).float(),
            "sparse_depth": sparse_t,
            "sfm_depth": sfm_t,
            "sfm_metric": torch.tensor(sfm_metric),
            "zoom": torch.tensor(zoom, dtype=torch.float32),
            "index": torch.tensor(i),
        }


def open_dataset(roots: list[Path], **kwargs) -> SequenceDataset:
    """SequenceDataset with a clear error for a missing folder."""
    for r in roots:
        if not (Path(r) / "sequence.json").is_file():
            raise SequenceError(f"{r} is not a sequence folder (no sequence.json); create it with depth-extract")
    return SequenceDataset([Path(r) for r in roots], **kwargs)
