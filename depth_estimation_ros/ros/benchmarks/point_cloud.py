"""Depth -> PointCloud2 conversion time: the package's vectorised path vs a straightforward per-point loop.

    python -m depth_estimation_ros.ros.benchmarks.point_cloud [--repeats 30] [--baseline-rows 24]

The vectorised path is what the node runs per frame: CloudProjector.points (rays cached) + ros.message_conversion
.cloud_msg (a real sensor_msgs/PointCloud2). The per-point baseline loops over pixels in Python, computing X, Y, Z
and struct.pack-ing each point into the same layout; it builds only the bytes (no message), and to bound its
runtime it converts ``--baseline-rows`` rows spread over the image and is extrapolated to the full height (the
printed figures say so). Its output is checked against the vectorised cloud's rows (same layout, NaN and colour
bits exact, xyz within float32 rounding: the loop computes in float64), so both do the same work.
Input depth: a real TUM RGB-D frame (../shared/data), nearest-neighbour resized for 1280x720.
"""

from __future__ import annotations

import argparse
import math
import platform
import struct
import time

import cv2
import numpy as np
from std_msgs.msg import Header

from depth_estimation_ros.frame.camera_model import PinholeCamera
from depth_estimation_ros.frame.point_cloud import CloudProjector
from depth_estimation_ros.resources.shared_data import shared_data_dir
from depth_estimation_ros.ros import message_conversion

DATA = shared_data_dir()
TUM = DATA / "tum_fr3_cabinet_keyframes"
K_TUM_640 = np.array([[535.4, 0.0, 320.1], [0.0, 539.2, 247.6], [0.0, 0.0, 1.0]])
SIZES = ((640, 480), (1280, 720))


def load_inputs(width: int, height: int) -> tuple[PinholeCamera, np.ndarray, np.ndarray]:
    raw = cv2.imread(str(TUM / "depth" / "0000_depth_raw.png"), cv2.IMREAD_UNCHANGED)
    bgr = cv2.imread(str(TUM / "rgb" / "0000_rgb_raw.jpg"), cv2.IMREAD_COLOR)
    if raw is None or bgr is None:
        raise SystemExit(f"test data not found under {TUM}; clone the repository with shared/ beside it")
    raw = cv2.resize(raw, (width, height), interpolation=cv2.INTER_NEAREST)
    depth = raw.astype(np.float32) / 5000.0
    depth[raw == 0] = np.nan
    rgb = np.ascontiguousarray(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_LINEAR)[..., ::-1])
    camera = PinholeCamera(640, 480, K_TUM_640).scaled(width, height)
    return camera, depth, rgb


def per_point_bytes(camera: PinholeCamera, depth: np.ndarray, rgb: np.ndarray | None, rows) -> bytes:
    """The straightforward implementation: one struct.pack per pixel."""
    fx, fy, cx, cy = camera.fx, camera.fy, camera.cx, camera.cy
    nan = float("nan")
    chunks = []
    for v in rows:
        depth_row = depth[v].tolist()  # Python floats: indexing numpy per pixel would make the loop slower still
        rgb_row = None if rgb is None else rgb[v].tolist()
        for u, z in enumerate(depth_row):
            if math.isfinite(z) and z > 0:
                x = (u - cx) / fx * z
                y = (v - cy) / fy * z
            else:
                x = y = z = nan
            if rgb is None:
                chunks.append(struct.pack("<fff4x", x, y, z))
            else:
                r, g, b = rgb_row[u]
                chunks.append(struct.pack("<fff4xI12x", x, y, z, (r << 16) | (g << 8) | b))
    return b"".join(chunks)


def same_cloud(a: bytes, b: bytes, point_step: int) -> bool:
    """Same length, identical bytes outside xyz (padding, rgb), xyz equal to float32 rounding, NaN in the same
    places."""
    pa = np.frombuffer(a, np.uint8).reshape(-1, point_step)
    pb = np.frombuffer(b, np.uint8).reshape(-1, point_step)
    if pa.shape != pb.shape or not np.array_equal(pa[:, 12:], pb[:, 12:]):
        return False
    xa, xb = pa[:, :12].copy().view("<f4"), pb[:, :12].copy().view("<f4")
    return bool(np.array_equal(np.isnan(xa), np.isnan(xb)) and np.allclose(xa, xb, rtol=1e-6, atol=0, equal_nan=True))


def percentiles(samples: list[float]) -> tuple[float, float]:
    arr = np.asarray(samples) * 1e3
    return float(np.median(arr)), float(np.percentile(arr, 90))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed conversions per case (vectorised)")
    parser.add_argument("--baseline-rows", type=int, default=24, help="rows the per-point loop converts per run")
    parser.add_argument("--baseline-repeats", type=int, default=5)
    args = parser.parse_args()

    header = Header(frame_id="camera_optical_frame")
    path = "sensor_msgs_py.create_cloud" if message_conversion.HAVE_SENSOR_MSGS_PY else "own packing (fallback)"
    print(f"# depth -> PointCloud2, {platform.processor() or platform.machine()}, numpy {np.__version__}, "
          f"PointCloud2 built by: {path}")
    print(f"# per-point baseline: {args.baseline_rows} rows per run, extrapolated to the full height\n")
    print("| input | rgb | vectorised median ms | vectorised p90 ms | per-point median ms (extrap.) | "
          "per-point p90 ms (extrap.) | speed-up (median) |")
    print("|---|---|---|---|---|---|---|")
    for width, height in SIZES:
        camera, depth, rgb = load_inputs(width, height)
        projector = CloudProjector(camera)
        rows = np.linspace(0, height - 1, args.baseline_rows).round().astype(int).tolist()
        for colour in (False, True):
            colours = rgb if colour else None
            times = []
            for i in range(args.repeats + 3):
                start = time.perf_counter()
                msg = message_conversion.cloud_msg(header, projector.points(depth), colours)
                if i >= 3:  # warm-up runs excluded
                    times.append(time.perf_counter() - start)
            step = msg.point_step
            reference = np.frombuffer(bytes(msg.data), np.uint8).reshape(height, width * step)[rows].tobytes()
            base_times = []
            for _ in range(args.baseline_repeats):
                start = time.perf_counter()
                data = per_point_bytes(camera, depth, colours, rows)
                base_times.append((time.perf_counter() - start) * height / len(rows))
            if not same_cloud(data, reference, step):
                raise SystemExit("per-point baseline and vectorised cloud differ: the comparison is not like for like")
            med, p90 = percentiles(times)
            base_med, base_p90 = percentiles(base_times)
            print(f"| {width}x{height} | {'yes' if colour else 'no'} | {med:.2f} | {p90:.2f} | {base_med:.0f} | "
                  f"{base_p90:.0f} | {base_med / med:.0f}x |")


if __name__ == "__main__":
    main()
