"""depth-poses: COLMAP camera poses for sequence folders, split into registered chunks, scaled to metres when the
sequence has odometry.

Writes <sequence>/poses.json:
    {"chunks": [{"frames": [sequence indices], "cam_from_world": [4x4 ...], "scale_to_metric": s | null,
                 "odometry_ate_m": rmse | null}],
     "unregistered": [indices], "num_frames", "colmap": {"options", "seconds"}}
cam_from_world translations are multiplied by scale_to_metric by the data loader. Without odometry the COLMAP
scale is arbitrary; it is normalised so the median frame-to-frame camera step is 1 (and depth is then not metric).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
from depth_estimation_training.atomic_files import write_json_atomically
from depth_estimation_training.colmap_poses import ColmapError, ColmapOptions, ColmapResult, run_colmap
from depth_estimation_training.sequence import Sequence, SequenceError, load_sequence
from depth_estimation_training.sim3 import AlignmentError, absolute_trajectory_error

LOG = logging.getLogger("depth-poses")


def metric_scale_of_chunk(centres: np.ndarray, odometry_centres: np.ndarray) -> tuple[float | None, float | None]:
    """(scale taking COLMAP units to metres, ATE in metres after Sim(3) alignment) or (None, None) when the chunk
    is too short or did not move enough to align."""
    if len(centres) < 3:
        return None, None
    try:
        ate, alignment = absolute_trajectory_error(centres, odometry_centres)
    except AlignmentError:
        return None, None
    return alignment.scale, ate


def median_step(centres: np.ndarray) -> float:
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    return float(np.median(steps)) if len(steps) else 0.0


def poses_document(seq: Sequence, result: ColmapResult) -> dict:
    """The poses.json content for a sequence and its COLMAP result."""
    index_of = {Path(f.image).name: i for i, f in enumerate(seq.frames)}
    chunks = []
    for chunk in result.chunks:
        indices = [index_of[n] for n in chunk.names]
        centres = chunk.camera_centres()
        scale, ate = None, None
        if seq.has_odometry:
            odo = np.stack([seq.frames[i].odometry[:3, 3] for i in indices])
            scale, ate = metric_scale_of_chunk(centres, odo)
        normalised = scale is None
        if normalised:
            step = median_step(centres)
            scale = 1.0 / step if step > 0 else 1.0
        chunks.append({
            "frames": indices,
            "cam_from_world": [np.asarray(m).tolist() for m in chunk.cam_from_world],
            "scale_to_metric": None if normalised else scale,
            "scale_normalisation": scale if normalised else None,
            "odometry_ate_m": ate,
        })
    return {
        "num_frames": len(seq.frames),
        "chunks": chunks,
        "unregistered": [index_of[n] for n in result.unregistered],
        "colmap": {"options": result.options, "seconds": result.seconds},
    }


def compute_sequence_poses(root: Path, options: ColmapOptions, work_dir: Path | None = None) -> dict:
    """Run COLMAP on one sequence folder, write poses.json and return its content."""
    seq = load_sequence(root)
    image_dir = seq.root / "images"
    names = [Path(f.image).name for f in seq.frames]
    result = run_colmap(image_dir, names, seq.intrinsics, options, work_dir)
    doc = poses_document(seq, result)
    write_json_atomically(seq.root / "poses.json", doc)
    return doc


def describe(doc: dict) -> str:
    lines = []
    registered = sum(len(c["frames"]) for c in doc["chunks"])
    lines.append(f"registered {registered}/{doc['num_frames']} frames in {len(doc['chunks'])} chunk(s)")
    for i, c in enumerate(doc["chunks"]):
        metric = (f"metric scale {c['scale_to_metric']:.4f}, ATE vs odometry {c['odometry_ate_m']:.3f} m"
                  if c["scale_to_metric"] is not None else "no odometry: scale normalised (depth not metric)")
        lines.append(f"  chunk {i}: frames {c['frames'][0]}..{c['frames'][-1]} ({len(c['frames'])}), {metric}")
    if doc["unregistered"]:
        lines.append(f"  {len(doc['unregistered'])} frame(s) unregistered, excluded from training: "
                     f"{doc['unregistered'][:20]}{' ...' if len(doc['unregistered']) > 20 else ''}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="depth-poses", description=__doc__.split("\n")[0])
    parser.add_argument("sequences", nargs="+", type=Path, help="sequence folders written by depth-extract")
    parser.add_argument("--preset", choices=["driving", "low-texture"], default="driving",
                        help="COLMAP settings: driving (fast, sequential) or low-texture (indoor, exhaustive)")
    for f in fields(ColmapOptions):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default) if f.type != "bool" else None,
                            default=None, help=f"COLMAP option (preset default: {f.default})")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep COLMAP databases/models here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    base = ColmapOptions.low_texture() if args.preset == "low-texture" else ColmapOptions()
    for f in fields(ColmapOptions):
        value = getattr(args, f.name)
        if value is not None:
            if isinstance(f.default, bool):
                value = str(value).lower() in ("1", "true", "yes")
            setattr(base, f.name, value)
    status = 0
    for root in args.sequences:
        try:
            work = None if args.work_dir is None else args.work_dir / root.name
            doc = compute_sequence_poses(root, base, work)
            print(f"{root}: {describe(doc)}")
            if not doc["chunks"]:
                print(f"{root}: no frames registered: this sequence cannot be trained with COLMAP poses "
                      "(try --preset low-texture, or pose_mode: posenet)", file=sys.stderr)
                status = 1
        except (SequenceError, ColmapError) as exc:
            print(f"depth-poses: error: {root}: {exc}", file=sys.stderr)
            status = 2
    return status


if __name__ == "__main__":
    sys.exit(main())
