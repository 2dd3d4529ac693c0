"""A contact sheet comparing models on the same frames: input | model 1 | model 2 | ... | ground truth.

    python -m depth_estimation_ros.evaluation.comparison_sheet ../shared/data/kitti_drive0001_frames50_100 \
        --model before=old.onnx --model after=lacdepth --out docs/images/kitti0001_before_after.png [--frames A:B:C]

Each model runs through its engine's ``estimate`` (ONNX Runtime on the CPU), the path the node and depth-eval use;
every tile of a row shares one colour range, taken from that frame's ground truth (1st-99th percentile), so the
tiles are comparable. Sparse ground truth (lidar) is thickened to be visible.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from depth_estimation_ros.evaluation.frame_sources import folder_frames
from depth_estimation_ros.frame.colorize import colorize_depth
from depth_estimation_ros.frame.contact_sheet import (
    depth_colour_range,
    ground_truth_tile,
    labelled,
    stack_rows,
    valid_depths,
)


def comparison_row(rgb: np.ndarray, predictions: list[tuple[str, np.ndarray]], ground_truth: np.ndarray,
                   tile_width: int = 416) -> np.ndarray:
    """One row of the sheet, every tile resized to tile_width; colours from the ground truth's range."""
    lo, hi = depth_colour_range(valid_depths(ground_truth), (1, 99), (0.5, 80.0))
    tiles = [("input", rgb)] + [(name, colorize_depth(p, lo, hi)) for name, p in predictions] + [
        ("ground truth", ground_truth_tile(ground_truth, lo, hi, dilate=5))]
    height = round(rgb.shape[0] * tile_width / rgb.shape[1])
    return np.concatenate([labelled(cv2.resize(t, (tile_width, height), interpolation=cv2.INTER_AREA), name)
                           for name, t in tiles], axis=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="comparison_sheet", description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="a dataset folder depth-eval reads (KITTI raw, TUM, 7-Scenes)")
    parser.add_argument("--model", action="append", required=True, metavar="LABEL=MODEL",
                        help="bundled model name or .onnx path, labelled; repeat, in column order")
    parser.add_argument("--frames", help="START:STOP[:STEP] of the dataset's own frame numbers")
    parser.add_argument("--max-frames", type=int, default=6, help="rows, evenly spread over the frames")
    parser.add_argument("--tile-width", type=int, default=320, help="pixels per tile")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from depth_estimation_ros.data.atomic_files import write_atomically
    from depth_estimation_ros.engines.factory import create_engine
    from depth_estimation_ros.resources.model_registry import resolve_model

    models = []
    for spec in args.model:
        label, sep, model = spec.partition("=")
        if not sep or not label or not model:
            parser.error(f"--model wants LABEL=MODEL, got '{spec}'")
        models.append((label, create_engine(resolve_model(model), backend="onnxruntime")))
    numbers = range(*[int(x) for x in args.frames.split(":")]) if args.frames else None
    frames = [f for f in folder_frames(args.source) if f.ground_truth is not None
              and (numbers is None or (f.number if f.number is not None else f.index) in numbers)]
    if not frames:
        print(f"comparison_sheet: error: no frame with ground truth in {args.source} (frames {args.frames})",
              file=sys.stderr)
        return 2
    picked = [frames[i] for i in np.unique(np.linspace(0, len(frames) - 1, min(args.max_frames, len(frames)))
                                           .round().astype(int))]
    rows = [comparison_row(f.rgb, [(label, engine.estimate(f.rgb, f.rgb.shape[:2])) for label, engine in models],
                           f.ground_truth, args.tile_width) for f in picked]
    sheet = stack_rows(rows)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        print("comparison_sheet: error: PNG encoding failed", file=sys.stderr)
        return 1
    write_atomically(args.out, lambda tmp: tmp.write_bytes(buf.tobytes()))
    print(f"wrote {args.out} ({len(rows)} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
