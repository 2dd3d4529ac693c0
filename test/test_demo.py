"""The README's main job, end to end: bundled sample bag -> player -> node -> recorder, three processes."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np


def test_demo_replays_the_sample_and_writes_its_reports(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "depth_estimation_ros.ros.demo", "--output", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(out / "contact_sheet.png") in result.stdout

    rows = (out / "latency.csv").read_text().strip().splitlines()
    assert rows[0] == "frame,stamp_ns,stamp_to_receive_ms"
    assert len(rows) == 1 + 10  # the sample's 10 frames were all published by the player
    latencies = [float(r.split(",")[2]) for r in rows[1:] if r.split(",")[2]]
    assert latencies and all(0 < v < 60_000 for v in latencies)

    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] > 100 and sheet.shape[1] > 300

    ply = (out / "cloud.ply").read_bytes()
    header, _, body = ply.partition(b"end_header\n")
    lines = header.decode("ascii").splitlines()
    assert lines[:2] == ["ply", "format binary_little_endian 1.0"]
    vertices = int(next(line for line in lines if line.startswith("element vertex")).split()[-1])
    assert vertices > 1000 and len(body) == vertices * (3 * 4 + 3)
    xyz = np.frombuffer(body, dtype=np.dtype([("xyz", "<f4", 3), ("rgb", "u1", 3)]))["xyz"]
    assert np.isfinite(xyz).all() and (xyz[:, 2] > 0).all()

    summary = (out / "summary.txt").read_text()
    assert "stamp-to-receive latency" in summary and "onnxruntime" in summary
