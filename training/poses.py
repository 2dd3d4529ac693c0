"""depth-poses: COLMAP camera poses for sequence folders, split into registered chunks, scaled to metres when the
sequence has odometry.

Writes <sequence>/poses.json:
    {"chunks": [{"frames": [sequence indices], "cam_from_world": [4x4 ...], "scale_to_metric": s | null,
                 "odometry_ate_m": rmse | null, "sfm_depth": [path per frame], "sfm_depth_metric": bool}],
     "unregistered": [indices], "num_frames", "colmap": {"options", "seconds"}, "sfm_points": {...}}
and <sequence>/sfm_depth/NNNNNN.npz per registered frame: "xy" (M, 2) float32 pixel coordinates (the top-left pixel's
centre at (0.5, 0.5), COLMAP's convention) and "depth" (M,) float32, the depth of the COLMAP points the frame
observes (colmap_poses.SfmPointFilter), in metres where the chunk has a metric scale, else in the normalised units.
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
from depth_estimation_training.atomic_files import write_atomically, write_json_atomically
from depth_estimation_training.colmap_poses import ColmapOptions, ColmapResult, run_colmap
from depth_estimation_training.sequence import Sequence, load_sequence
from depth_estimation_training.sim3 import AlignmentError, absolute_trajectory_error

from depth_estimation_ros.errors import EXPECTED_ERRORS, report_error

LOG = logging.getLogger("depth-poses")
ODOMETRY_STEP_TOLERANCE = 0.25  # largest relative disagreement of a metric COLMAP step with the odometry step
ODOMETRY_MIN_STEP_M = 0.05  # steps shorter than this are compared in absolute terms (tolerance x this)


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


def sfm_depth_path(index: int) -> str:
    return f"sfm_depth/{index:06d}.npz"


def write_sfm_depth(path: Path, points: np.ndarray, scale: float) -> None:
    """One frame's (x, y, depth) points as sfm_depth npz, depth multiplied by scale."""
    def _write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, xy=points[:, :2].astype(np.float32),
                                depth=(points[:, 2] * scale).astype(np.float32))

    write_atomically(path, _write)


def odometry_consistent_runs(centres: np.ndarray, odometry_centres: np.ndarray, scale: float,
                             tolerance: float = ODOMETRY_STEP_TOLERANCE, min_step: float = ODOMETRY_MIN_STEP_M
                             ) -> list[list[int]]:
    """Runs of consecutive positions whose metric COLMAP steps agree with the odometry's: a step i -> i+1 whose
    length (COLMAP x scale) differs from the odometry step by more than tolerance x max(odometry step, min_step)
    ends a run. Runs shorter than 3 frames are dropped."""
    colmap_steps = np.linalg.norm(np.diff(centres, axis=0), axis=1) * scale
    odometry_steps = np.linalg.norm(np.diff(odometry_centres, axis=0), axis=1)
    bad = np.abs(colmap_steps - odometry_steps) > tolerance * np.maximum(odometry_steps, min_step)
    runs, current = [], [0]
    for i, broken in enumerate(bad):
        if broken:
            runs.append(current)
            current = []
        current.append(i + 1)
    runs.append(current)
    return [r for r in runs if len(r) >= 3]


def _chunk_document(indices: list[int], cam_from_world: list[np.ndarray], scale: float | None, ate: float | None,
                    normalisation: float | None, has_points: bool) -> dict:
    return {
        "frames": indices,
        "cam_from_world": [np.asarray(m).tolist() for m in cam_from_world],
        "scale_to_metric": scale,
        "scale_normalisation": normalisation,
        "odometry_ate_m": ate,
        "sfm_depth": [sfm_depth_path(i) for i in indices] if has_points else None,
        "sfm_depth_metric": scale is not None,
    }


def _metric_chunks(seq: Sequence, indices: list[int], cam_from_world: list[np.ndarray], has_points: bool,
                   dropped: list[int]) -> list[dict] | None:
    """A chunk with odometry: its metric scale, split where the COLMAP motion disagrees with the odometry, each part
    scaled on its own so that a bad stretch does not bias the scale of the good ones."""
    centres = np.stack([-(m[:3, :3].T @ m[:3, 3]) for m in cam_from_world])
    odo = np.stack([seq.frames[i].odometry[:3, 3] for i in indices])
    # first cut with the median step ratio (robust to a broken stretch, which biases a least-squares scale), then
    # once more with each part's own Sim(3) scale
    colmap_steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    odometry_steps = np.linalg.norm(np.diff(odo, axis=0), axis=1)
    moving = (colmap_steps > 0) & (odometry_steps > ODOMETRY_MIN_STEP_M)
    if moving.any():
        robust_scale = float(np.median(odometry_steps[moving] / colmap_steps[moving]))
    elif np.linalg.norm(odo - odo.mean(axis=0), axis=1).max() > ODOMETRY_MIN_STEP_M:
        # every step shorter than ODOMETRY_MIN_STEP_M (a hand-held camera at 15-30 Hz), the trajectory longer: its
        # Sim(3) scale instead
        robust_scale, _ = metric_scale_of_chunk(centres, odo)
    else:
        robust_scale = None
    if not robust_scale:
        return None  # no motion to take a scale from: the caller normalises the chunk instead
    parts = [list(run) for run in odometry_consistent_runs(centres, odo, robust_scale)]
    refined = []
    for part in parts:
        scale, _ = metric_scale_of_chunk(centres[part], odo[part])
        if scale is not None:
            refined += [[part[j] for j in run] for run in odometry_consistent_runs(centres[part], odo[part], scale)]
    parts = refined
    kept = {j for part in parts for j in part}
    dropped += [indices[j] for j in range(len(indices)) if j not in kept]
    docs = []
    for part in parts:
        scale, ate = metric_scale_of_chunk(centres[part], odo[part])
        if scale is None:
            dropped += [indices[j] for j in part]
            continue
        docs.append(_chunk_document([indices[j] for j in part], [cam_from_world[j] for j in part], scale, ate, None,
                                    has_points))
    return docs


def poses_document(seq: Sequence, result: ColmapResult) -> dict:
    """The poses.json content for a sequence and its COLMAP result."""
    index_of = {Path(f.image).name: i for i, f in enumerate(seq.frames)}
    chunks: list[dict] = []
    dropped: list[int] = []
    counts = []
    for chunk in result.chunks:
        indices = [index_of[n] for n in chunk.names]
        counts += [len(p) for p in chunk.points]
        metric = _metric_chunks(seq, indices, chunk.cam_from_world, bool(chunk.points), dropped) \
            if seq.has_odometry and len(indices) >= 3 else None
        if metric is not None:
            chunks += metric
            continue
        step = median_step(chunk.camera_centres())
        chunks.append(_chunk_document(indices, chunk.cam_from_world, None, None, 1.0 / step if step > 0 else 1.0,
                                      bool(chunk.points)))
    chunks.sort(key=lambda c: c["frames"][0])
    return {
        "num_frames": len(seq.frames),
        "chunks": chunks,
        "unregistered": [index_of[n] for n in result.unregistered],
        "inconsistent_with_odometry": sorted(dropped),
        "colmap": {"options": result.options, "seconds": result.seconds},
        "sfm_points": {"filter": result.point_filter, "median_per_frame": float(np.median(counts)) if counts else 0.0,
                       "total_observations": int(sum(counts))},
    }


def compute_sequence_poses(root: Path, options: ColmapOptions, work_dir: Path | None = None) -> dict:
    """Run COLMAP on one sequence folder, write poses.json (and the SfM depth of every frame in a chunk) and return
    its content."""
    seq = load_sequence(root)
    image_dir = seq.root / "images"
    names = [Path(f.image).name for f in seq.frames]
    result = run_colmap(image_dir, names, seq.intrinsics, options, work_dir)
    doc = poses_document(seq, result)
    points_of = {name: p for chunk in result.chunks for name, p in zip(chunk.names, chunk.points, strict=False)}
    for chunk_doc in doc["chunks"]:
        scale = chunk_doc["scale_to_metric"] or chunk_doc["scale_normalisation"]
        for index, rel in zip(chunk_doc["frames"], chunk_doc["sfm_depth"] or [], strict=True):
            write_sfm_depth(seq.root / rel, points_of[names[index]], scale)
    write_json_atomically(seq.root / "poses.json", doc)
    return doc


def describe(doc: dict) -> str:
    lines = []
    registered = sum(len(c["frames"]) for c in doc["chunks"])
    lines.append(f"registered {registered}/{doc['num_frames']} frames in {len(doc['chunks'])} chunk(s)")
    if "sfm_points" in doc:
        lines.append(f"  SfM depth: median {doc['sfm_points']['median_per_frame']:.0f} points per frame")
    for i, c in enumerate(doc["chunks"]):
        metric = (f"metric scale {c['scale_to_metric']:.4f}, ATE vs odometry {c['odometry_ate_m']:.3f} m"
                  if c["scale_to_metric"] is not None else "no odometry: scale normalised (depth not metric)")
        lines.append(f"  chunk {i}: frames {c['frames'][0]}..{c['frames'][-1]} ({len(c['frames'])}), {metric}")
    if doc.get("inconsistent_with_odometry"):
        bad = doc["inconsistent_with_odometry"]
        lines.append(f"  {len(bad)} frame(s) whose COLMAP motion disagrees with the odometry, excluded: "
                     f"{bad[:20]}{' ...' if len(bad) > 20 else ''}")
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
        except EXPECTED_ERRORS as exc:
            status = max(status, report_error("depth-poses", exc, str(root)))
    return status


if __name__ == "__main__":
    sys.exit(main())
