"""Training throughput benchmark: samples (target + its sources) per second of the full training step.

    python -m depth_estimation_training.benchmark_throughput --config CONFIG.yaml --out /tmp/bench \
        [--steps 20 --warmup 5] [--profile 3] [--set amp=bf16 batch_size=12 ...]

Prints a table: compute time per step, time waiting for the data loader, samples/s, peak GPU memory; with
--profile N, also torch.profiler tables of N training steps on one batch (loader excluded): where the device time
goes, and how many kernels the host launches.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from depth_estimation_training.config import TrainConfig
from depth_estimation_training.train import parse_overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmark_throughput", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also profile N steps on one batch and print the top operators")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    overrides = {"checkpoint_every": 0, "export_onnx": False, **parse_overrides(args.set)}
    cfg = TrainConfig.from_yaml(args.config, overrides)
    from depth_estimation_training.trainer import Trainer

    out = args.out or Path(tempfile.mkdtemp(prefix="bench_"))
    trainer = Trainer(cfg, out)
    history = trainer.fit(max_steps=args.warmup + args.steps, progress=False)[args.warmup:]
    step = np.array([h["step_s"] for h in history])
    wait = np.array([h["data_wait_s"] for h in history])
    samples = cfg.batch_size * trainer.world
    mem = max((h.get("gpu_mem_gb", 0.0) for h in history), default=0.0)
    print("| device | network/encoder | pose | size | batch | amp | channels_last | step ms | data wait ms "
          "| samples/s | GPU mem GB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {trainer.device} | {cfg.network}/{cfg.encoder} | {cfg.pose_mode} | {cfg.height}x{cfg.width} | "
          f"{samples} | {cfg.amp} | {cfg.channels_last} | {1000 * step.mean():.1f} | {1000 * wait.mean():.1f} | "
          f"{samples / (step + wait).mean():.2f} | {mem:.2f} |")
    if args.profile > 0:
        print_profile(trainer, args.profile)
    return 0


def print_profile(trainer, steps: int) -> None:
    """torch.profiler over `steps` train_step calls on one batch: operators by device time and by host time."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    batch = next(iter(trainer._loader(trainer.step + 1)))
    trainer.train_step(batch)  # warm-up outside the profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if trainer.device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            trainer.train_step(batch)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
    table = prof.key_averages()
    sort = "cuda_time_total" if trainer.device.type == "cuda" else "cpu_time_total"
    print(f"\n{steps} steps profiled; by {sort}:\n")
    print(table.table(sort_by=sort, row_limit=30, max_name_column_width=50))
    print("\nby self CPU time:\n")
    print(table.table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=50))


if __name__ == "__main__":
    sys.exit(main())
