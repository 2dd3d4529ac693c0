"""depth-train: self-supervised training of LacDepth / GATDepth / baseline on sequence folders.

    depth-train training/configs/kitti_lacdepth_lite0.yaml --out runs/kitti [--resume] [--set key=value ...]
    torchrun --nproc_per_node=8 -m depth_estimation_training.train CONFIG --out DIR     (multi-GPU, DDP)
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml
from depth_estimation_training.config import ConfigError, TrainConfig

from depth_estimation_ros.data.atomic_files import sweep_on_start
from depth_estimation_ros.errors import EXPECTED_ERRORS, report_error


def parse_overrides(items: list[str]) -> dict:
    """key=value pairs, values parsed as YAML (numbers, lists, booleans)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got '{item}'")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="depth-train", description=__doc__.split("\n")[0])
    parser.add_argument("config", type=Path, help="training YAML (see training/configs/)")
    parser.add_argument("--out", type=Path, required=True, help="output folder: checkpoints, logs, ONNX")
    parser.add_argument("--resume", action="store_true", help="continue exactly from <out>/checkpoints/last.pt")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config entries")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        if not args.config.is_file():  # a missing file is an input error (exit 2), a bad one a configuration error
            raise FileNotFoundError(f"config {args.config} not found; see training/configs/ for examples")
        cfg = TrainConfig.from_yaml(args.config, parse_overrides(args.set))
        from depth_estimation_training.trainer import Trainer

        sweep_on_start("depth-train", folders=[args.out, args.out / "checkpoints"])

        trainer = Trainer(cfg, args.out, resume=args.resume)
        trainer.fit(progress=not args.no_progress)
        written = trainer.finish()
    except EXPECTED_ERRORS as exc:  # ConfigError is a ConfigurationError: exit 3
        return report_error("depth-train", exc)
    for key, path in written.items():
        print(f"{key}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
