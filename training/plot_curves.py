"""Plot a training run's loss curve and its validation curves (validation.jsonl) into one PNG.

    python -m depth_estimation_training.plot_curves runs/ship/driving_lacdepth --out docs/training_driving_lacdepth.png

Top: the total loss and its SfM SILog part (mean over windows of 25 steps). Below, one panel per validation set:
median-scaled abs_rel of the network (a) and of its mean prediction (b), the structure gain (b) - (a), and the
median scale ratio (ground truth / prediction: 1 is metric).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
from depth_estimation_training.atomic_files import write_atomically


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def window_means(steps: list[int], values: list[float], window: int) -> tuple[np.ndarray, np.ndarray]:
    """Means of consecutive windows of `window` values, at each window's last step."""
    n = len(values) // window
    if n == 0:
        return np.asarray(steps, float), np.asarray(values, float)
    v = np.asarray(values[: n * window], float).reshape(n, window).mean(axis=1)
    s = np.asarray(steps[window - 1: n * window: window], float)
    return s, v


def validation_sets(records: list[dict]) -> list[str]:
    names = []
    for key in records[0] if records else []:
        if key.startswith("val/") and key.endswith("/abs_rel_scaled"):
            names.append(key[len("val/"):-len("/abs_rel_scaled")])
    return names


def plot(run: Path, title: str | None = None) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = read_jsonl(run / "losses.jsonl")
    val = read_jsonl(run / "validation.jsonl")
    sets = validation_sets(val)
    fig, axes = plt.subplots(1 + len(sets), 1, figsize=(8, 2.6 * (1 + len(sets))), squeeze=False)
    ax = axes[0, 0]
    steps = [r["step"] for r in losses]
    for key in ("total", "sfm_silog"):
        if losses and key in losses[0]:
            ax.plot(*window_means(steps, [r[key] for r in losses], 25), label=key)
    ax.set_ylabel("training loss")
    ax.set_title(title or run.name)
    ax.legend(fontsize=8)
    vsteps = [r["step"] for r in val]
    for ax, name in zip(axes[1:, 0], sets, strict=True):
        prefix = f"val/{name}/"
        ax.plot(vsteps, [r[prefix + "abs_rel_scaled"] for r in val], "o-", ms=3, label="abs_rel (a) network")
        if prefix + "mean_prediction_abs_rel_scaled" in val[0]:
            ax.plot(vsteps, [r[prefix + "mean_prediction_abs_rel_scaled"] for r in val], "s--", ms=3,
                    label="abs_rel (b) mean prediction")
            ax.plot(vsteps, [r[prefix + "structure_gain"] for r in val], "^-", ms=3, label="structure gain (b)-(a)")
        ax.axhline(0.05, color="grey", lw=0.5, ls=":")
        ax.set_ylabel(name.split("@")[0][:28], fontsize=8)
        twin = ax.twinx()
        twin.plot(vsteps, [r[prefix + "scale_ratio_median"] for r in val], color="black", lw=0.8,
                  label="median scale ratio")
        twin.set_ylabel("scale ratio", fontsize=8)
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="plot_curves", description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a depth-train output folder")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--title")
    args = parser.parse_args(argv)
    if not (args.run / "losses.jsonl").is_file():
        print(f"plot_curves: error: {args.run} has no losses.jsonl; is it a depth-train output folder?",
              file=sys.stderr)
        return 2
    data = plot(args.run, args.title)
    write_atomically(args.out, lambda tmp: tmp.write_bytes(data))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
