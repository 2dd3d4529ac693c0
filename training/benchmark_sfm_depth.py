"""How good is the SfM depth that depth-poses writes? Its points against sensor ground truth, per frame.

    python -m depth_estimation_training.benchmark_sfm_depth SEQUENCE DATASET_FOLDER [--number-step 4]

SEQUENCE is a sequence folder with poses.json (depth-poses), DATASET_FOLDER the folder it was extracted from (one
depth-eval reads: 7-Scenes, TUM, KITTI raw); sequence index i is the dataset's frame number first + i * step.
For every registered frame with ground truth: the number of SfM points, and the relative error |z - g| / g of each
point against the ground-truth pixel it falls in (points on pixels without ground truth are not scored). Prints a
table: frames, points per frame (median), median / p90 relative error, share of points within 10 %. A chunk without
metric scale (no odometry) is scored after one scale per chunk, the median ground-truth / SfM ratio of its points
(--fit-scale does that for metric chunks too).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from depth_estimation_ros.evaluation.frame_sources import folder_frames


def matched_depths(xy: np.ndarray, depth: np.ndarray, ground_truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(SfM depth, ground truth) of the points (pixel coordinates with the top-left centre at (0.5, 0.5)) that fall on
    a ground-truth pixel of the image (NaN or <= 0 = none)."""
    cols = np.floor(xy[:, 0]).astype(int)
    rows = np.floor(xy[:, 1]).astype(int)
    h, w = ground_truth.shape
    inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    g = ground_truth[rows[inside], cols[inside]]
    z = depth[inside]
    ok = np.isfinite(g) & (g > 0)
    return z[ok], g[ok]


def point_errors(xy: np.ndarray, depth: np.ndarray, ground_truth: np.ndarray) -> np.ndarray:
    """Relative errors |z - g| / g of the points that fall on ground truth (see matched_depths)."""
    z, g = matched_depths(xy, depth, ground_truth)
    return np.abs(z - g) / g


def measure(sequence: Path, dataset: Path, first: int, step: int, fit_scale: bool = False) -> dict[str, float]:
    doc = json.loads((sequence / "poses.json").read_text())
    truth = {f.number if f.number is not None else f.index: f.ground_truth for f in folder_frames(dataset)
             if f.ground_truth is not None}
    counts, errors, frames = [], [], 0
    for chunk in doc["chunks"]:
        pairs = []
        for index, rel in zip(chunk["frames"], chunk.get("sfm_depth") or [], strict=True):
            gt = truth.get(first + index * step)
            if gt is None:
                continue
            with np.load(sequence / rel) as data:
                xy, z = data["xy"], data["depth"]
            frames += 1
            counts.append(len(z))
            pairs.append(matched_depths(xy, z, gt))
        if not pairs:
            continue
        z = np.concatenate([p[0] for p in pairs])
        g = np.concatenate([p[1] for p in pairs])
        if fit_scale or not chunk.get("sfm_depth_metric"):
            z = z * float(np.median(g / z))
        errors.append(np.abs(z - g) / g)
    if not frames:
        raise SystemExit(f"no registered frame of {sequence} has ground truth in {dataset}; "
                         "check --first/--number-step")
    e = np.concatenate(errors)
    return {"frames": frames, "points_per_frame": float(np.median(counts)), "scored_points": int(e.size),
            "median_rel_error": float(np.median(e)), "p90_rel_error": float(np.percentile(e, 90)),
            "within_10pct": float(np.mean(e < 0.10))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmark_sfm_depth", description=__doc__.split("\n")[0])
    parser.add_argument("sequence", type=Path)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--first", type=int, default=0, help="dataset frame number of sequence index 0")
    parser.add_argument("--number-step", type=int, default=1, help="dataset frame numbers per sequence index")
    parser.add_argument("--fit-scale", action="store_true", help="one scale per chunk even where it is metric")
    args = parser.parse_args(argv)
    r = measure(args.sequence, args.dataset, args.first, args.number_step, args.fit_scale)
    print("| sequence | scale | frames with ground truth | SfM points per frame (median) | scored points "
          "| median rel. error | p90 rel. error | within 10 % |")
    print("|---|---|---|---|---|---|---|---|")
    scale = "fitted per chunk" if args.fit_scale else "as written"
    print(f"| {args.sequence.name} | {scale} | {r['frames']} | {r['points_per_frame']:.0f} | {r['scored_points']} | "
          f"{100 * r['median_rel_error']:.1f} % | {100 * r['p90_rel_error']:.1f} % | {100 * r['within_10pct']:.0f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
