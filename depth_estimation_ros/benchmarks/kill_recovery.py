"""SIGKILL the file-writing tools at random moments and count corrupt outputs and left-over temporaries, printed
as a table.

For each tool (depth-train, depth-export, depth-build-engine --onnx-only, depth-eval --output-dir) one complete
run first writes its outputs (and gives the run time); then `--kills` runs are each killed with SIGKILL after a
random delay within that run time (depth-train: resumed with --resume each time and killed while it checkpoints
every step). After every kill the outputs present must be whole (checkpoints read with weights_only, ONNX files
pass onnx.checker, JSON / CSV parse, PNGs decode, every losses.jsonl record appears once); a kill during a write
leaves its temporary beside the outputs. A final complete run ends each tool's series: its start sweeps what the
kills left, after it nothing but the outputs may remain. Each tool runs with a private TMPDIR, whose left-over
entries beyond those a complete run leaves (system temporaries of killed runs, which no sweep of the output
folder sees) are counted too.

    python -m depth_estimation_ros.benchmarks.kill_recovery --kills 8
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from depth_estimation_ros.resources.shared_data import shared_data_dir

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Series:
    tool: str
    full_run_s: float = 0.0
    kills: int = 0
    kills_leaving_temporaries: int = 0
    temporaries_left_over: int = 0  # of those the kills left, still there after the final complete run
    corrupt: list[str] = field(default_factory=list)
    system_temp_leftovers: list[str] = field(default_factory=list)
    final_temporaries: int = 0


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*.tmp")] if folder.is_dir() else []


def run(args: list[str], env: dict, timeout: float) -> float:
    start = time.monotonic()
    result = subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return time.monotonic() - start


def run_and_kill(args: list[str], env: dict, delay: float) -> bool:
    """Start, SIGKILL after delay; False when the run had already finished."""
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    finished = proc.poll() is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return not finished


# ---- output checks: a list of problems, empty when every output present is whole -----------------------------
def check_onnx(path: Path) -> list[str]:
    import onnx

    if not path.exists():
        return []
    try:
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    except Exception as exc:
        return [f"{path.name}: {exc}"]
    return []


def check_training(out: Path) -> list[str]:
    from depth_estimation_training.checkpointing import load_training_state

    problems = []
    last = out / "checkpoints" / "last.pt"
    if last.exists():
        try:
            load_training_state(last)
        except Exception as exc:
            problems.append(f"last.pt: {exc}")
    model = out / "depth_model.pt"
    if model.exists():
        from depth_estimation_ros.networks.checkpoint import load_depth_checkpoint

        try:
            load_depth_checkpoint(model)
        except Exception as exc:
            problems.append(f"depth_model.pt: {exc}")
    return problems


def logged_steps(out: Path) -> list[int]:
    """Steps of the complete records of losses.jsonl (a kill mid-append may cut the last line short)."""
    steps = []
    log = out / "losses.jsonl"
    for line in log.read_text().splitlines() if log.exists() else []:
        try:
            steps.append(int(json.loads(line)["step"]))
        except (ValueError, KeyError):
            pass
    return steps


def check_report(out: Path) -> list[str]:
    problems = []
    for path in out.glob("*") if out.is_dir() else []:
        try:
            if path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".csv":
                list(csv.reader(path.read_text().splitlines()))
            elif path.suffix == ".png" and cv2.imread(str(path)) is None:
                problems.append(f"{path.name}: not a decodable PNG")
        except Exception as exc:
            problems.append(f"{path.name}: {exc}")
    return problems


# ---- the four tools ----------------------------------------------------------------------------------------------
def training_sequence(work: Path, data: Path) -> Path:
    from depth_estimation_training.sequence import sequence_from_image_folder

    kitti = data / "kitti_odometry00_first200"
    k = np.array([[718.856, 0, 607.1928], [0, 718.856, 185.2157], [0, 0, 1]])
    images = [cv2.cvtColor(cv2.imread(str(kitti / "image_0" / f"{i:06d}.png")), cv2.COLOR_BGR2RGB) for i in range(10)]
    root = work / "kitti00_tiny"
    sequence_from_image_folder(root, "kitti00_tiny", images, k, [0.1 * i for i in range(10)])
    return root


def kill_series(series: Series, command, check, full_timeout: float, kills: int, delay_range, env: dict,
                out: Path, rng: random.Random) -> None:
    series.full_run_s = run(command(resume=False), env, full_timeout)
    system_tmp = Path(env["TMPDIR"])
    normal = {p.name for p in system_tmp.iterdir()}  # what a complete run leaves there by itself
    lo, hi = delay_range(series.full_run_s)
    left_by_kills: set[Path] = set()
    for _ in range(kills):
        before = set(temporaries(out))
        series.kills += run_and_kill(command(resume=True), env, rng.uniform(lo, hi))
        new = set(temporaries(out)) - before
        series.kills_leaving_temporaries += bool(new)
        left_by_kills |= new
        series.corrupt += check()
    run(command(resume=True), env, full_timeout)  # a complete run: its start sweeps what the kills left
    series.corrupt += check()
    series.temporaries_left_over = sum(p.exists() for p in left_by_kills)
    series.final_temporaries = len(temporaries(out))
    series.system_temp_leftovers = sorted(p.name for p in system_tmp.iterdir() if p.name not in normal)


def _kill_training(series: Series, work: Path, out: Path, env: dict, args: argparse.Namespace,
                   rng: random.Random) -> None:
    config = work / "train.yaml"
    config.write_text(json.dumps(dict(
        sequences=[str(training_sequence(work, args.data))], network="lacdepth",
        encoder="efficientnet_lite0", pose_mode="posenet", height=64, width=192, batch_size=1,
        num_workers=0, steps=6, lr=3e-4, lr_final=1e-4, threads=1, checkpoint_every=1,
        export_onnx=False, seed=3)))

    def command(resume: bool) -> list[str]:
        steps = 6 if not resume else max(logged_steps(out), default=0) + 40
        return [sys.executable, "-m", "depth_estimation_training.train", str(config), "--out", str(out),
                "--no-progress", "--set", f"steps={steps}"] + (["--resume"] if resume else [])

    def check() -> list[str]:
        steps = logged_steps(out)
        repeated = ["losses.jsonl repeats steps"] if len(steps) != len(set(steps)) else []
        return check_training(out) + repeated

    # killed within the checkpointing steps after start-up (a checkpoint every step)
    kill_series(series, command, check, 600, args.kills, lambda t: (0.5 * t, 1.5 * t), env, out, rng)
    series.corrupt += [] if logged_steps(out) == sorted(set(logged_steps(out))) else ["log order"]


def _kill_export(series: Series, work: Path, out: Path, env: dict, args: argparse.Namespace,
                 rng: random.Random) -> None:
    target = out / "model.onnx"

    def command(resume: bool) -> list[str]:
        return [sys.executable, "-m", "depth_estimation_ros.networks.export", "--network", "lacdepth",
                "--encoder", "efficientnet_lite0", "--height", "96", "--width", "320", "--output", str(target)]

    kill_series(series, command, lambda: check_onnx(target), 600, args.kills, lambda t: (0.3 * t, 1.05 * t), env,
                out, rng)


def _kill_build_engine(series: Series, work: Path, out: Path, env: dict, args: argparse.Namespace,
                       rng: random.Random) -> None:
    source = out / "model.onnx"
    out.mkdir(parents=True)
    shutil.copy(REPO / "depth_estimation_ros" / "models" / "lacdepth_lite0.onnx", source)
    target = out / "model.fp16.onnx"

    def command(resume: bool) -> list[str]:
        return [sys.executable, "-m", "depth_estimation_ros.engines.build_engine", str(source), "--onnx-only",
                "--precision", "fp16", "--output", str(target)]

    kill_series(series, command, lambda: check_onnx(target), 600, args.kills, lambda t: (0.3 * t, 1.05 * t), env,
                out, rng)


def _kill_evaluation(series: Series, work: Path, out: Path, env: dict, args: argparse.Namespace,
                     rng: random.Random) -> None:
    sample = REPO / "depth_estimation_ros" / "sample" / "tum_fr3_cabinet"

    def command(resume: bool) -> list[str]:
        return [sys.executable, "-m", "depth_estimation_ros.evaluation.cli", str(sample), "--output-dir", str(out),
                "--no-progress", "--threads", "1"]

    kill_series(series, command, lambda: check_report(out), 600, args.kills, lambda t: (0.3 * t, 1.05 * t), env,
                out, rng)


KILLERS = {"depth-train": _kill_training, "depth-export": _kill_export, "depth-build-engine": _kill_build_engine,
           "depth-eval": _kill_evaluation}


def print_results(results: list[Series], kills: int, seed: int) -> None:
    print(f"\nSIGKILL at random moments, {kills} kills per tool (seed {seed})")
    print("| tool | complete run s | kills | kills that left a temporary | of those left after the next complete run "
          "| corrupt outputs | temporaries after the final run | entries left in the tool's TMPDIR |")
    print("|---|---|---|---|---|---|---|---|")
    for s in results:
        corrupt = f"{len(s.corrupt)}" + (": " + "; ".join(s.corrupt[:3]) if s.corrupt else "")
        print(f"| {s.tool} | {s.full_run_s:.1f} | {s.kills} | {s.kills_leaving_temporaries} | "
              f"{s.temporaries_left_over} | {corrupt} | {s.final_temporaries} | {len(s.system_temp_leftovers)} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir())
    parser.add_argument("--kills", type=int, default=8, help="SIGKILLs per tool")
    parser.add_argument("--tools", nargs="*", default=list(KILLERS), choices=list(KILLERS))
    parser.add_argument("--seed", type=int, default=9)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="kill_recovery_"))
    results = []
    try:
        for tool in args.tools:
            series = Series(tool)
            system_tmp = work / f"tmp_{tool}"
            system_tmp.mkdir()
            env = dict(os.environ, TMPDIR=str(system_tmp), OMP_NUM_THREADS="1")
            KILLERS[tool](series, work, work / tool, env, args, rng)
            results.append(series)
            print(f"{tool}: {series}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_results(results, args.kills, args.seed)


if __name__ == "__main__":
    main()
