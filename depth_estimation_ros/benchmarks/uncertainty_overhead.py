"""What depth_std costs on the CPU: ``python -m depth_estimation_ros.benchmarks.uncertainty_overhead [--threads N]``.

For each bundled LacDepth model: ONNX Runtime latency (median and p90 of interleaved runs on one real frame) of
(a) the bundled ONNX (depth only), (b) the same graph with depth_std added (networks/depth_std_graph.py), asking for
depth only, (c) the same asking for depth and depth_std. Ratios are to (a) of the same run. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnx

from depth_estimation_ros.engines.onnxruntime_engine import OnnxRuntimeEngine
from depth_estimation_ros.frame.preprocessing import to_network_input
from depth_estimation_ros.networks.depth_std_graph import add_depth_std_output
from depth_estimation_ros.resources.model_registry import resolve_model
from depth_estimation_ros.resources.shared_data import shared_data_dir

MODELS = ("lacdepth", "lacdepth_indoor")


def _frame() -> np.ndarray:
    path = shared_data_dir() / "tum_fr3_cabinet_keyframes" / "rgb" / "0000_rgb_raw.jpg"
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def measure(model: str, threads: int, iterations: int, directory: Path) -> list[tuple[str, float, float]]:
    source = resolve_model(model)
    with_std = directory / f"{model}_std.onnx"
    onnx.save(add_depth_std_output(onnx.load(source)), with_std)
    plain, extended = OnnxRuntimeEngine(source, threads), OnnxRuntimeEngine(str(with_std), threads)
    batch = to_network_input(_frame(), plain.info.input_height, plain.info.input_width)
    runs = {"depth only (bundled ONNX)": lambda: plain.infer(batch),
            "with depth_std, depth asked": lambda: extended.infer(batch),
            "with depth_std, both asked": lambda: extended.infer_with_std(batch)}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run()
    for _ in range(iterations):  # interleaved, so load changes on a shared machine hit every row alike
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) * 1e3)
    return [(name, statistics.median(t), float(np.percentile(t, 90))) for name, t in times.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=30)
    args = parser.parse_args(argv)
    print(f"| model | ONNX Runtime, {args.threads} thread(s) | median ms | p90 ms | ratio to depth only |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for model in MODELS:
            rows = measure(model, args.threads, args.iterations, Path(tmp))
            reference = rows[0][1]
            for name, median, p90 in rows:
                print(f"| {model} | {name} | {median:.2f} | {p90:.2f} | {median / reference:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
