"""Held-out evaluation without ground-truth depth: warp each held-out frame's successor into it with the predicted
depth and the ground-truth (metric) relative pose, and measure the photometric error (0.85 (1-SSIM)/2 + 0.15 L1).

Metric depth that is right gives a low error at scale 1; the scale s minimising the error (depth x s searched on a
log grid) shows how far the predicted scale is off. Baselines: no warp (identity) and a constant-depth plane.

    python -m depth_estimation_training.evaluate_photometric MODEL.onnx \
        --split training/splits/kitti00_first200_test.txt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from depth_estimation_training.dataset import scale_intrinsics
from depth_estimation_training.geometry import warp_source_to_target
from depth_estimation_training.losses import photometric_error

from depth_estimation_ros.resources.shared_data import shared_data_dir

DATA = shared_data_dir()
SCALES = np.exp(np.linspace(np.log(0.25), np.log(4.0), 25))


def read_kitti_test_frames(split: Path) -> list[int]:
    frames = []
    for line in split.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            frames.append(int(line.split()[1]))
    return frames


def pair_errors(depth: torch.Tensor, target: torch.Tensor, source: torch.Tensor, k: torch.Tensor,
                t_to_s: torch.Tensor) -> np.ndarray:
    """Mean photometric error of the warped source for every depth scale in SCALES."""
    inv_k = torch.linalg.inv(k)
    out = []
    for s in SCALES:
        warped, valid = warp_source_to_target(source, depth * float(s), k, inv_k, t_to_s)
        err = photometric_error(warped, target)
        # no pixel projecting into the source (depth far too small): the scale is infinitely wrong
        out.append(float((err * valid).sum() / valid.sum()) if valid.sum() > 0 else float("inf"))
    return np.array(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="evaluate_photometric", description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", type=Path, help="depth ONNX files (input 'image', output 'depth')")
    parser.add_argument("--split", type=Path, required=True, help="held-out frames of kitti_odometry00_first200")
    parser.add_argument("--constant-depth", type=float, default=15.0, help="depth of the plane baseline (m)")
    args = parser.parse_args(argv)
    import onnxruntime as ort

    folder = DATA / "kitti_odometry00_first200"
    frames = read_kitti_test_frames(args.split)
    gt = np.loadtxt(folder / "poses_gt_00_first200.txt").reshape(-1, 3, 4)
    k_full = np.loadtxt(folder / "calib.txt", comments="#").reshape(3, 3)
    pairs = [(f, f + 1) for f in frames if f + 1 in frames]
    print(f"{len(pairs)} held-out pairs from {args.split}")
    print("| model | input | error at scale 1 | best scale | error at best scale | identity error | plane error |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models:
        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        _, _, h, w = session.get_inputs()[0].shape
        k = torch.from_numpy(scale_intrinsics(k_full, w / 1241, h / 376)).float()[None]
        curves, identity, plane = [], [], []
        for t, s in pairs:
            imgs = []
            for f in (t, s):
                grey = cv2.imread(str(folder / "image_0" / f"{f:06d}.png"))
                rgb = cv2.resize(cv2.cvtColor(grey, cv2.COLOR_BGR2RGB), (w, h), interpolation=cv2.INTER_AREA)
                imgs.append(torch.from_numpy(rgb).permute(2, 0, 1).float()[None] / 255)
            pose_t = np.vstack([gt[t], [0, 0, 0, 1]])
            pose_s = np.vstack([gt[s], [0, 0, 0, 1]])
            t_to_s = torch.from_numpy(np.linalg.inv(pose_s) @ pose_t).float()[None]
            depth = torch.from_numpy(session.run(None, {"image": imgs[0].numpy()})[0])
            curves.append(pair_errors(depth, imgs[0], imgs[1], k, t_to_s))
            identity.append(float(photometric_error(imgs[1], imgs[0]).mean()))
            flat = torch.full_like(depth, args.constant_depth)
            plane.append(pair_errors(flat, imgs[0], imgs[1], k, t_to_s)[len(SCALES) // 2])
        curve = np.mean(curves, axis=0)
        best = int(np.argmin(curve))
        print(f"| {model.name} | {h}x{w} | {curve[len(SCALES) // 2]:.4f} | {SCALES[best]:.2f} | {curve[best]:.4f} | "
              f"{np.mean(identity):.4f} | {np.mean(plane):.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
