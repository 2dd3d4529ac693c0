"""The sequence folder: what depth-extract writes, depth-poses annotates and depth-train reads.

    <sequence>/sequence.json      name, image size, pinhole K (after undistortion), frames, extraction summary
    <sequence>/images/NNNNNN.png  RGB frames (rectified/undistorted)
    <sequence>/sparse_depth/NNNNNN.npz   optional, key "depth": float32 metres, 0 = no measurement
    <sequence>/poses.json         written by depth-poses: COLMAP chunks (world-to-camera), metric scale, unregistered

Each frame of sequence.json: {"image", "stamp" (s), "sparse_depth" (path or null),
"odometry" (4x4 camera-to-world in the odometry frame, or null)}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from depth_estimation_training.atomic_files import write_atomically, write_json_atomically

from depth_estimation_ros.errors import InputError

FORMAT_VERSION = 1


class SequenceError(InputError):
    """A sequence folder is missing or malformed; the message says which file and how to regenerate it."""


@dataclass
class Frame:
    image: str
    stamp: float
    sparse_depth: str | None = None
    odometry: np.ndarray | None = None  # 4x4 camera-to-world


@dataclass
class Sequence:
    root: Path
    name: str
    width: int
    height: int
    intrinsics: np.ndarray  # 3x3
    frames: list[Frame]
    summary: dict = field(default_factory=dict)

    def image_path(self, index: int) -> Path:
        return self.root / self.frames[index].image

    def read_rgb(self, index: int) -> np.ndarray:
        """RGB uint8 (H, W, 3) of frame index."""
        bgr = cv2.imread(str(self.image_path(index)), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SequenceError(f"cannot read {self.image_path(index)}; re-run depth-extract for {self.root}")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def read_sparse_depth(self, index: int) -> np.ndarray | None:
        rel = self.frames[index].sparse_depth
        if rel is None:
            return None
        with np.load(self.root / rel) as data:
            return data["depth"].astype(np.float32)

    @property
    def has_odometry(self) -> bool:
        return all(f.odometry is not None for f in self.frames) and len(self.frames) > 0


def write_image(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG atomically; a grey frame (three equal channels, a mono camera) as a
    one-channel PNG, a third of the size, which read_rgb expands back to the same RGB values."""
    grey = bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]))

    def _write(tmp: Path) -> None:
        ok, buf = cv2.imencode(".png", rgb[..., 0] if grey else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise SequenceError(f"PNG encoding failed for {path}")
        tmp.write_bytes(buf.tobytes())

    write_atomically(path, _write)


def write_sparse_depth(path: Path, depth: np.ndarray) -> None:
    def _write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, depth=depth.astype(np.float32))

    write_atomically(path, _write)


def save_sequence(seq: Sequence) -> Path:
    """Write sequence.json (images must already be in place)."""
    data = {
        "format": FORMAT_VERSION,
        "name": seq.name,
        "width": seq.width,
        "height": seq.height,
        "intrinsics": np.asarray(seq.intrinsics, float).tolist(),
        "frames": [
            {
                "image": f.image,
                "stamp": f.stamp,
                "sparse_depth": f.sparse_depth,
                "odometry": None if f.odometry is None else np.asarray(f.odometry, float).tolist(),
            }
            for f in seq.frames
        ],
        "summary": seq.summary,
    }
    return write_json_atomically(Path(seq.root) / "sequence.json", data)


def load_sequence(root: Path) -> Sequence:
    """Read <root>/sequence.json."""
    root = Path(root)
    meta = root / "sequence.json"
    if not meta.is_file():
        raise SequenceError(f"{meta} not found: {root} is not a sequence folder; create it with depth-extract")
    try:
        data = json.loads(meta.read_text())
        frames = [
            Frame(
                f["image"],
                float(f["stamp"]),
                f.get("sparse_depth"),
                None if f.get("odometry") is None else np.asarray(f["odometry"], float),
            )
            for f in data["frames"]
        ]
        k = np.asarray(data["intrinsics"], float).reshape(3, 3)
        return Sequence(root, data["name"], int(data["width"]), int(data["height"]), k, frames, data.get("summary", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise SequenceError(f"{meta} is malformed ({exc}); regenerate it with depth-extract") from exc


def sequence_from_image_folder(
    root: Path,
    name: str,
    images: list[np.ndarray],
    intrinsics: np.ndarray,
    stamps: list[float],
    odometry: list[np.ndarray] | None = None,
) -> Sequence:
    """Write an in-memory list of RGB frames as a sequence folder (for datasets that are folders, not bags)."""
    root = Path(root)
    frames = []
    for i, rgb in enumerate(images):
        rel = f"images/{i:06d}.png"
        write_image(root / rel, rgb)
        frames.append(Frame(rel, float(stamps[i]), None, None if odometry is None else odometry[i]))
    h, w = images[0].shape[:2]
    seq = Sequence(root, name, w, h, np.asarray(intrinsics, float), frames, {"source": "image folder"})
    save_sequence(seq)
    return seq
