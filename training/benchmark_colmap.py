"""COLMAP pose benchmark on the shared real data: frames registered, ATE after Sim(3) alignment (own Umeyama and
evo's), wall and CPU time.

    python -m depth_estimation_training.benchmark_colmap kitti   # ../shared/data/kitti_odometry00_first200
    python -m depth_estimation_training.benchmark_colmap tum     # ../shared/data/tum_fr3_cabinet_keyframes
    [--set overlap=20 max_num_features=1024 ...]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
from depth_estimation_training.colmap_poses import ColmapOptions, run_colmap
from depth_estimation_training.folder_datasets import kitti_odometry_sequence, tum_keyframes_sequence
from depth_estimation_training.sim3 import (
    absolute_trajectory_error,
    path_length,
    relative_rotation_errors,
    rotation_angle_deg,
)

from depth_estimation_ros.resources.shared_data import shared_data_dir

DATA = shared_data_dir()


def evo_ate(estimate: np.ndarray, reference: np.ndarray) -> float:
    """ATE RMSE with Sim(3) alignment computed by evo (independent implementation)."""
    from evo.core.metrics import PoseRelation
    from evo.core.trajectory import PosePath3D
    from evo.main_ape import ape

    quat = np.tile([1.0, 0.0, 0.0, 0.0], (len(estimate), 1))
    ref = PosePath3D(positions_xyz=reference, orientations_quat_wxyz=quat)
    est = PosePath3D(positions_xyz=estimate, orientations_quat_wxyz=quat.copy())
    return float(ape(ref, est, PoseRelation.translation_part, align=True, correct_scale=True).stats["rmse"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmark_colmap", description=__doc__.split("\n")[0])
    parser.add_argument("dataset", choices=["kitti", "tum"])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="ColmapOptions overrides")
    args = parser.parse_args(argv)
    opt = ColmapOptions() if args.dataset == "kitti" else ColmapOptions.low_texture()
    types = {f.name: type(getattr(opt, f.name)) for f in fields(ColmapOptions)}
    for item in args.set:
        key, value = item.split("=", 1)
        setattr(opt, key, types[key](value) if types[key] is not bool else value.lower() == "true")
    with tempfile.TemporaryDirectory() as tmp:
        if args.dataset == "kitti":
            seq = kitti_odometry_sequence(DATA / "kitti_odometry00_first200", Path(tmp) / "seq")
        else:
            seq = tum_keyframes_sequence(DATA / "tum_fr3_cabinet_keyframes", Path(tmp) / "seq")
        names = [Path(f.image).name for f in seq.frames]
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        result = run_colmap(seq.root / "images", names, seq.intrinsics, opt)
        wall = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    truth = np.stack([f.odometry[:3, 3] for f in seq.frames])
    truth_rotations = np.stack([f.odometry[:3, :3] for f in seq.frames])
    position = {n: i for i, n in enumerate(names)}
    print(result.summary())
    print(f"\noptions: {result.options}\n")
    print("| dataset | registered | chunks | chunk frames | ATE own (m) | ATE evo (m) | path (m) | ATE % path "
          "| rotation error deg/frame | turn deg (truth) | wall s | CPU s | features / matching / mapping s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    stages = " / ".join(f"{result.seconds[k]:.0f}" for k in ("features", "matching", "mapping"))
    for chunk in sorted(result.chunks, key=lambda c: -len(c.names)):
        if len(chunk.names) < 3:
            continue
        index = [position[n] for n in chunk.names]
        ref = truth[index]
        own, _ = absolute_trajectory_error(chunk.camera_centres(), ref)
        length = path_length(ref)
        est_rot = np.stack([t[:3, :3].T for t in chunk.cam_from_world])  # world-from-camera
        ref_rot = truth_rotations[index]
        rot_err = relative_rotation_errors(est_rot, ref_rot).mean()
        turn_est = rotation_angle_deg(est_rot[0].T @ est_rot[-1])
        turn = f"{turn_est:.2f} ({rotation_angle_deg(ref_rot[0].T @ ref_rot[-1]):.2f})"
        print(f"| {args.dataset} | {result.num_registered}/{result.num_images} | {len(result.chunks)} | "
              f"{len(chunk.names)} | {own:.3f} | {evo_ate(chunk.camera_centres(), ref):.3f} | {length:.2f} | "
              f"{100 * own / length:.2f} | {rot_err:.3f} | {turn} | {wall:.0f} | {cpu:.0f} | {stages} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
