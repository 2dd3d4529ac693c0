"""Evaluation outputs: stdout table, JSON (all numbers + configuration), per-frame CSV, PNG plots.

Plots use matplotlib when it is installed, else OpenCV drawing. Every file is written to a temporary name and
moved into place (os.replace), so an interrupted run never leaves a truncated report.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from pathlib import Path

import cv2
import numpy as np

from depth_estimation_ros.data.atomic_files import write_bytes_atomically
from depth_estimation_ros.evaluation.metrics import METRIC_NAMES
from depth_estimation_ros.evaluation.replay import EvaluationResult
from depth_estimation_ros.frame.colorize import colorize_depth
from depth_estimation_ros.frame.contact_sheet import (
    SPARSE_FRACTION,
    depth_colour_range,
    ground_truth_tile,
    labelled,
    stack_rows,
    valid_depths,
)

LATENCY_KEYS = ("decode", "preprocess", "inference", "postprocess", "estimate")
SCENE_BLIND_COLUMNS = ("mean_prediction_abs_rel", "mean_prediction_scaled_abs_rel", "gt_median_abs_rel",
                       "gt_median_scaled_abs_rel", "gt_median_excluded_pixels")


def _fmt(value: float) -> str:
    return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def summary_table(result: EvaluationResult) -> str:
    """Human-readable summary: both protocols, scale ratios, frame counts and latency."""
    s = result.summary()
    header = f"{'protocol':<14}" + "".join(f"{n:>10}" for n in METRIC_NAMES)
    rows = [header, "-" * len(header)]
    for label, key in (("metric", "metric"), ("median-scaled", "median_scaled")):
        rows.append(f"{label:<14}" + "".join(f"{_fmt(s[key][n]):>10}" for n in METRIC_NAMES))
    rows += scene_blind_rows(result)
    rows += uncertainty_rows(result)
    r = s["scale_ratio"]
    cfg = result.config
    rows += [
        (f"frames evaluated: {s['frames_evaluated']} (skipped {s['frames_skipped']}), valid GT pixels: "
        f"{s['valid_pixels']}"),
        (f"median-scaling ratio: median {_fmt(r['median'])}, std {_fmt(r['std'])} "
        f"(std/median {_fmt(r['std_over_median'])})"),
        (f"caps [{cfg['min_depth']}, {cfg['max_depth']}] m, crop {cfg['crop']}; source {result.source.get('kind')}, "
        f"ground truth {result.source.get('ground_truth')}"),
        (f"engine {result.engine.get('backend')} {result.engine.get('precision')} {result.engine.get('device')} "
        f"input {result.engine.get('input_size')}: estimate mean {_fmt(s['latency_ms']['estimate_mean'])} ms, "
        f"p50 {_fmt(s['latency_ms']['estimate_p50'])} ms, p99 {_fmt(s['latency_ms']['estimate_p99'])} ms"),
    ]
    return "\n".join(rows)


def uncertainty_rows(result: EvaluationResult) -> list[str]:
    """Calibration of depth_std: coverage at 1 and 2 sigma, the fitted scale, abs_rel of the pixels kept per
    sigma / depth threshold."""
    u = result.uncertainty
    if u is None:
        return ["uncertainty: none (the model has no depth_std output)"]
    scale = result.engine.get("model.uncertainty_scale", "1.0")
    rows = [f"uncertainty (depth_std x uncertainty_scale {scale}), {u.pixels} pixels, metric protocol: "
            f"|error| <= 1 sigma {_fmt(u.within_1_sigma)} (Gaussian 0.6827), <= 2 sigma {_fmt(u.within_2_sigma)} "
            f"(0.9545); scale for 68.27 % within 1 sigma: {_fmt(u.fitted_scale)}",
            f"{'sigma/depth <=':<16}{'kept':>10}{'abs_rel':>10}"]
    for t, kept, abs_rel in zip(u.thresholds, u.kept_fraction, u.abs_rel_kept):
        rows.append(f"{'all' if math.isinf(t) else f'{t:g}':<16}{_fmt(kept):>10}{_fmt(abs_rel):>10}")
    for label, values in (("lowest sigma/depth", u.ranked_abs_rel), ("lowest sigma", u.ranked_abs_rel_by_sigma),
                          ("nearest (baseline)", u.ranked_abs_rel_by_depth)):
        rows.append(f"abs_rel of the most certain pixels by {label}: " + ", ".join(
            f"{f:.0%} {_fmt(a)}" for f, a in zip(u.ranked_fractions, values)))
    rows.append(f"rank correlation of sigma with the predicted depth: {_fmt(u.sigma_depth_rank_correlation)}")
    return rows


def write_uncertainty_csv(result: EvaluationResult, path: Path) -> None:
    """One row per sigma / depth threshold: fraction of pixels kept, their abs_rel; then the coverage rows."""
    u = result.uncertainty
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["max_relative_uncertainty", "kept_fraction", "abs_rel"])
    for t, kept, abs_rel in zip(u.thresholds, u.kept_fraction, u.abs_rel_kept):
        writer.writerow(["inf" if math.isinf(t) else f"{t:g}", f"{kept:.6f}", f"{abs_rel:.6f}"])
    writer.writerow([])
    writer.writerow(["most_certain_fraction", "abs_rel", "abs_rel_by_sigma", "abs_rel_nearest_first"])
    for row in zip(u.ranked_fractions, u.ranked_abs_rel, u.ranked_abs_rel_by_sigma, u.ranked_abs_rel_by_depth):
        writer.writerow([f"{row[0]:g}", *(f"{v:.6f}" for v in row[1:])])
    writer.writerow([])
    writer.writerow(["pixels", "within_1_sigma", "within_2_sigma", "fitted_scale", "uncertainty_scale_applied"])
    writer.writerow([u.pixels, f"{u.within_1_sigma:.6f}", f"{u.within_2_sigma:.6f}", f"{u.fitted_scale:.6f}",
                     result.engine.get("model.uncertainty_scale", "1.0")])
    write_bytes_atomically(path, buf.getvalue().encode())


def uncertainty_plot(result: EvaluationResult) -> bytes:
    """abs_rel of the most certain pixels against their fraction, and of the pixels each sigma / depth threshold
    keeps."""
    u = result.uncertainty
    labels = ["all" if math.isinf(t) else f"{t:g}" for t in u.thresholds]
    title = (f"abs_rel of pixels kept by sigma/depth threshold (within 1 sigma {u.within_1_sigma:.3f}, "
             f"2 sigma {u.within_2_sigma:.3f})")
    if _have_matplotlib():
        def draw(ax):
            ax.plot(u.ranked_fractions, u.ranked_abs_rel, marker=".", label="most certain by sigma/depth")
            ax.plot(u.ranked_fractions, u.ranked_abs_rel_by_sigma, marker=".", label="most certain by sigma")
            ax.plot(u.ranked_fractions, u.ranked_abs_rel_by_depth, marker=".", linestyle=":",
                    label="nearest first (baseline)")
            ax.plot(u.kept_fraction, u.abs_rel_kept, marker="o", linestyle="none", label="sigma/depth threshold")
            for x, y, label in zip(u.kept_fraction, u.abs_rel_kept, labels):
                ax.annotate(label, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
            ax.legend(fontsize=7)
            ax.set_xlabel("fraction of ground-truth pixels kept")
            ax.set_ylabel("abs_rel of kept pixels")
            ax.set_title(title, fontsize=8)
            ax.grid(alpha=0.3)
        return _matplotlib_png(draw)
    return _opencv_line_plot([("abs_rel of the most certain", list(u.ranked_abs_rel), (31, 119, 180))],
                             [f"{f:.0%}" for f in u.ranked_fractions], title)


def scene_blind_rows(result: EvaluationResult) -> list[str]:
    """(b) mean prediction and (c) leave-one-out ground-truth median rows, the structure gain and its warning."""
    sb = result.scene_blind
    if sb is None:
        return [f"scene-blind references: {result.scene_blind_note}"] if result.scene_blind_note else []
    rows = ["scene-blind references, same frames and protocol: (b) the model's mean prediction, (c) per-pixel "
            "median of the other frames' ground truth"]
    for ref, tag in ((sb.mean_prediction, "(b)"), (sb.ground_truth_median, "(c)")):
        for label, scores in (("metric", ref.metric), ("med-scaled", ref.median_scaled)):
            rows.append(f"{tag + ' ' + label:<14}" + "".join(f"{_fmt(scores[n]):>10}" for n in METRIC_NAMES))
    c = sb.ground_truth_median
    rows.append(f"(c) on {c.frames} frame(s); {c.excluded_pixels} ground-truth pixels without a value in any other "
                f"frame left out of (c)" + (f", {c.frames_without_pixels} frame(s) with none left" if
                                           c.frames_without_pixels else ""))
    gain = sb.structure_gain
    rows.append(f"structure gain = abs_rel(b) - abs_rel(a): median-scaled {_fmt(gain['median_scaled'])}, "
                f"metric {_fmt(gain['metric'])}")
    if sb.warning:
        rows.append(f"WARNING: {sb.warning}")
    return rows


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def write_json(result: EvaluationResult, path: Path) -> None:
    """All numbers (NaN -> null), configuration, source and engine description."""
    data = json.dumps(_json_safe(result.to_json_dict()), indent=2, sort_keys=True)
    write_bytes_atomically(path, data.encode())


def _csv_value(value) -> str:
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else f"{value:.6f}"


def write_frames_csv(result: EvaluationResult, path: Path) -> None:
    """One row per evaluated frame: metrics (metric and median-scaled), scale ratio, latencies in ms, and the
    scene-blind references' abs_rel on that frame (empty when they were not computed)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["index", "name", "stamp_ns", "valid_pixels", *METRIC_NAMES,
                     *(f"scaled_{n}" for n in METRIC_NAMES), "scale_ratio", *(f"{k}_ms" for k in LATENCY_KEYS),
                     *SCENE_BLIND_COLUMNS])
    blind = {(r["index"], r["name"]): r for r in result.scene_blind.per_frame} if result.scene_blind else {}
    for f in result.frames:
        row = blind.get((f.index, f.name), {})
        writer.writerow([f.index, f.name, f.stamp_ns, f.valid_pixels,
                         *(f"{f.metric[n]:.6f}" for n in METRIC_NAMES),
                         *(f"{f.scaled[n]:.6f}" for n in METRIC_NAMES), f"{f.scale_ratio:.6f}",
                         *(f"{f.latency_ms.get(k, float('nan')):.3f}" for k in LATENCY_KEYS),
                         *(_csv_value(row.get(k)) for k in SCENE_BLIND_COLUMNS)])
    write_bytes_atomically(path, buf.getvalue().encode())


# ---------------------------------------------------------------------------------------------------- images


def error_image(ground_truth: np.ndarray, prediction: np.ndarray, max_rel: float = 0.5) -> np.ndarray:
    """|g - p| / g coloured from black (0) to red (>= max_rel); black where there is no ground truth."""
    rel = np.abs(ground_truth - prediction) / ground_truth
    valid = np.isfinite(rel)
    level = np.clip(np.nan_to_num(rel) / max_rel, 0.0, 1.0)
    out = np.zeros((*ground_truth.shape, 3), dtype=np.uint8)
    out[..., 0] = (255 * level).astype(np.uint8)
    out[..., 1] = (255 * (1 - level) * 0.6 * valid).astype(np.uint8)
    out[~valid] = 0
    return out


def contact_sheet(result: EvaluationResult) -> np.ndarray | None:
    """Rows of input | prediction | ground truth | relative error, one per sampled frame."""
    if not result.samples:
        return None
    rows = []
    for s in result.samples:
        gt = s.ground_truth
        # one colour range per row, from the ground truth, shared by prediction and ground truth
        lo, hi = depth_colour_range(valid_depths(gt), (1, 99), (0.1, 10.0))
        err_vis = error_image(gt, s.prediction)
        if np.isfinite(gt).mean() < SPARSE_FRACTION:  # thicken lidar points so they are visible in a thumbnail
            err_vis = cv2.dilate(err_vis, np.ones((3, 3), np.uint8))
        tiles = [s.rgb, colorize_depth(s.prediction, lo, hi), ground_truth_tile(gt, lo, hi), err_vis]
        rows.append(labelled(np.concatenate(tiles, axis=1), s.name, 0.45))
    sheet = stack_rows(rows)
    header = np.zeros((20, sheet.shape[1], 3), np.uint8)
    tile_w = result.samples[0].rgb.shape[1]
    for i, label in enumerate(("input", "prediction", "ground truth", "|error|/gt (red = 50 %)")):
        cv2.putText(header, label, (i * tile_w + 4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return np.concatenate([header, sheet], axis=0)


def _png_bytes(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("OpenCV could not encode the PNG")
    return buf.tobytes()


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _matplotlib_png(draw) -> bytes:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    draw(ax)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _opencv_line_plot(series: list[tuple[str, list[float], tuple[int, int, int]]], x_labels: list[str],
                      title: str, bars: bool = False) -> bytes:
    """Minimal chart with OpenCV for environments without matplotlib."""
    w, h, m = 700, 350, 50
    img = np.full((h, w, 3), 255, np.uint8)
    values = [v for _, ys, _ in series for v in ys if v is not None and np.isfinite(v)]
    top = max(values) * 1.1 if values else 1.0
    n = max(len(ys) for _, ys, _ in series) if series else 1
    cv2.rectangle(img, (m, m // 2), (w - m // 2, h - m), (0, 0, 0), 1)
    cv2.putText(img, title, (m, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"{top:.3f}", (2, m // 2 + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)

    def xy(i: int, v: float) -> tuple[int, int]:
        x = m + int((i + 0.5) * (w - 1.5 * m) / max(n, 1))
        y = h - m - int(v / top * (h - 1.5 * m))
        return x, y

    for s_index, (label, ys, colour) in enumerate(series):
        pts = [xy(i, v) for i, v in enumerate(ys) if v is not None and np.isfinite(v)]
        if bars:
            for (x, y) in pts:
                off = (s_index - len(series) / 2) * 8
                cv2.rectangle(img, (int(x + off), y), (int(x + off + 7), h - m), colour, -1)
        else:
            for a, b in itertools.pairwise(pts):
                cv2.line(img, a, b, colour, 1, cv2.LINE_AA)
        cv2.putText(img, label, (w - 220, 40 + 16 * s_index), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    for i, label in enumerate(x_labels):
        if len(x_labels) <= 12 or i % max(1, len(x_labels) // 10) == 0:
            cv2.putText(img, label, (xy(i, 0)[0] - 10, h - m + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0, 0, 0), 1)
    return _png_bytes(img)


def abs_rel_plot(result: EvaluationResult) -> bytes:
    idx = [f.index for f in result.frames]
    metric = [f.metric["abs_rel"] for f in result.frames]
    scaled = [f.scaled["abs_rel"] for f in result.frames]
    if _have_matplotlib():
        def draw(ax):
            ax.plot(idx, metric, marker=".", label="metric")
            ax.plot(idx, scaled, marker=".", label="median-scaled")
            ax.set_xlabel("frame index")
            ax.set_ylabel("abs_rel")
            ax.set_title("abs_rel per frame")
            ax.grid(alpha=0.3)
            ax.legend()
        return _matplotlib_png(draw)
    return _opencv_line_plot([("metric", metric, (31, 119, 180)), ("median-scaled", scaled, (255, 127, 14))],
                             [str(i) for i in idx], "abs_rel per frame")


def distance_plot(result: EvaluationResult) -> bytes:
    edges = result.distance_edges
    labels = [f"{edges[i]:.0f}-{edges[i + 1]:.0f}" if edges[-1] >= 20 else f"{edges[i]:.1f}-{edges[i + 1]:.1f}"
              for i in range(len(edges) - 1)]
    metric = [v if v is not None else float("nan") for v in result.distance_abs_rel_metric]
    scaled = [v if v is not None else float("nan") for v in result.distance_abs_rel_scaled]
    if _have_matplotlib():
        def draw(ax):
            x = np.arange(len(labels))
            ax.bar(x - 0.2, metric, 0.4, label="metric")
            ax.bar(x + 0.2, scaled, 0.4, label="median-scaled")
            ax.set_xticks(x, labels, rotation=30)
            ax.set_xlabel("ground-truth distance (m)")
            ax.set_ylabel("mean abs_rel")
            ax.set_title("error versus distance")
            for xi, c in zip(x, result.distance_counts):
                ax.annotate(f"{c}", (xi, 0), ha="center", va="bottom", fontsize=6, color="grey")
            ax.grid(alpha=0.3, axis="y")
            ax.legend()
        return _matplotlib_png(draw)
    return _opencv_line_plot([("metric", metric, (31, 119, 180)), ("median-scaled", scaled, (255, 127, 14))],
                             labels, "mean abs_rel versus ground-truth distance (m)", bars=True)


def write_report(result: EvaluationResult, out_dir: str | Path) -> dict[str, Path]:
    """Write summary.json, frames.csv, abs_rel_per_frame.png, error_vs_distance.png, contact_sheet.png and, for a
    model with depth_std, uncertainty.csv and uncertainty_calibration.png."""
    out = Path(out_dir)
    paths = {"json": out / "summary.json", "csv": out / "frames.csv", "abs_rel_plot": out / "abs_rel_per_frame.png",
             "distance_plot": out / "error_vs_distance.png", "contact_sheet": out / "contact_sheet.png"}
    write_json(result, paths["json"])
    write_frames_csv(result, paths["csv"])
    write_bytes_atomically(paths["abs_rel_plot"], abs_rel_plot(result))
    write_bytes_atomically(paths["distance_plot"], distance_plot(result))
    sheet = contact_sheet(result)
    if sheet is not None:
        write_bytes_atomically(paths["contact_sheet"], _png_bytes(sheet))
    else:
        paths.pop("contact_sheet")
    if result.uncertainty is not None:
        paths["uncertainty_csv"] = out / "uncertainty.csv"
        paths["uncertainty_plot"] = out / "uncertainty_calibration.png"
        write_uncertainty_csv(result, paths["uncertainty_csv"])
        write_bytes_atomically(paths["uncertainty_plot"], uncertainty_plot(result))
    return paths
