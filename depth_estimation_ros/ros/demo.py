"""The README's main job: replay the bundled sample bag through depth_estimation_node over DDS.

Three processes talk over real ROS 2 (Fast DDS, loopback only): the bag player publishes the sample's compressed
colour images and CameraInfo, the node estimates depth, and this process records the node's outputs. It writes:

- ``latency.csv`` and ``summary.txt``: per-frame stamp-to-receive latency (the player restamps frames at publish
  time, so this is publish -> depth image received, through DDS twice and the whole node) and the node's own
  per-stage latencies from /diagnostics;
- ``contact_sheet.png``: input | predicted depth | ground-truth depth (from the bag's depth topic);
- ``cloud.ply``: the point cloud of one frame (valid points, xyz + rgb).

No GPU and no ROS install needed (the ROS 2 Python wheels from the package index suffice).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from depth_estimation_ros.data.atomic_files import write_bytes_atomically
from depth_estimation_ros.data.reference_frame import SAMPLE_BAG, SAMPLE_IMAGE_TOPIC
from depth_estimation_ros.errors import EXPECTED_ERRORS, report_error
from depth_estimation_ros.frame.colorize import colorize_depth
from depth_estimation_ros.frame.contact_sheet import (
    depth_colour_range,
    ground_truth_tile,
    labelled,
    stack_rows,
    valid_depths,
)
from depth_estimation_ros.messages.image_codec import image_array
from depth_estimation_ros.messages.message_decoding import header_stamp_ns, organised_points_from_point_cloud_message
from depth_estimation_ros.resources.model_registry import resolve_model
from depth_estimation_ros.resources.package_share import find_share_path
from depth_estimation_ros.ros.background_spin import BackgroundSpinner
from depth_estimation_ros.ros.ros_environment import local_ros_environment

IMAGE_TOPIC = SAMPLE_IMAGE_TOPIC
CAMERA_INFO_TOPIC = "/camera/color/camera_info"
DEPTH_GT_TOPIC = "/camera/depth/image_raw"


def config_dir() -> Path:
    """config/ of a colcon install, a pip install (<prefix>/share) or the source tree (package_share)."""
    found = find_share_path("config")
    if found is None:
        raise FileNotFoundError("cannot find the package's config/ folder; reinstall depth_estimation_ros")
    return found


def write_ply(path: Path, xyz: np.ndarray, rgb: np.ndarray | None) -> int:
    """Binary little-endian PLY of the finite points (atomic write). Returns the number of points."""
    pts = xyz.reshape(-1, 3)
    keep = np.isfinite(pts).all(axis=1)
    pts = pts[keep].astype("<f4")
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(pts)}",
              "property float x", "property float y", "property float z"]
    if rgb is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
        dtype = np.dtype([("xyz", "<f4", 3), ("rgb", "u1", 3)])
        rows = np.empty(len(pts), dtype=dtype)
        rows["xyz"], rows["rgb"] = pts, rgb.reshape(-1, 3)[keep]
    else:
        rows = pts
    write_bytes_atomically(path, ("\n".join([*header, "end_header"]) + "\n").encode("ascii") + rows.tobytes())
    return len(pts)


class OutputRecorder:
    """Subscribes to the node's outputs and to the input images; keeps what the report needs."""

    def __init__(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.node import Node
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

        self.node = Node("depth_demo_recorder")
        self.lock = threading.Lock()
        self.input_order: list[int] = []  # stamps in publish order
        self.depth: dict[int, tuple[float, np.ndarray]] = {}  # stamp -> (receive time, depth)
        self.depth_info: dict[int, object] = {}
        self.clouds: dict[int, object] = {}
        self.diagnostics: dict[str, str] = {}
        sub = self.node.create_subscription
        sub(CompressedImage, IMAGE_TOPIC, self._on_input, 50)
        sub(Image, "/depth/image", self._on_depth, 10)
        sub(CameraInfo, "/depth/camera_info", lambda m: self._keep(self.depth_info, m), 10)
        sub(PointCloud2, "/points", lambda m: self._keep(self.clouds, m), 10)
        sub(Image, "/depth/colored", lambda m: None, 10)
        sub(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    @staticmethod
    def stamp(msg) -> int:
        return header_stamp_ns(msg)

    def _on_input(self, msg) -> None:
        with self.lock:
            self.input_order.append(self.stamp(msg))

    def _on_depth(self, msg) -> None:
        received = time.time_ns()
        depth = image_array(msg.encoding, msg.width, msg.height, msg.step, bytes(msg.data), msg.is_bigendian)
        with self.lock:
            self.depth[self.stamp(msg)] = ((received - self.stamp(msg)) * 1e-9, depth.copy())

    def _keep(self, store: dict, msg) -> None:
        with self.lock:
            store[self.stamp(msg)] = msg

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if "depth estimation" in status.name:
                with self.lock:
                    self.diagnostics = {kv.key: kv.value for kv in status.values}
                    self.diagnostics["level"] = str(int.from_bytes(bytes(status.level), "little"))
                    self.diagnostics["message"] = status.message

    def node_ready(self) -> bool:
        return self.node.count_publishers("/depth/image") > 0 and self.node.count_subscribers(IMAGE_TOPIC) > 0


def ground_truth_depths(bag_path: Path) -> list[np.ndarray]:
    from depth_estimation_ros.data.bag_reading import BagReader
    from depth_estimation_ros.messages.message_decoding import depth_from_image_message

    with BagReader(bag_path) as bag:
        if DEPTH_GT_TOPIC not in bag.topics:
            return []
        return [depth_from_image_message(m.message) for m in bag.messages([DEPTH_GT_TOPIC])]


def input_frames(bag_path: Path) -> list[np.ndarray]:
    from depth_estimation_ros.data.bag_reading import BagReader
    from depth_estimation_ros.messages.message_decoding import rgb_from_image_message

    with BagReader(bag_path) as bag:
        return [rgb_from_image_message(m.message) for m in bag.messages([IMAGE_TOPIC])]


def colour_range(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]], max_depth: float) -> tuple[float, float]:
    """One depth range for every tile: the ground truth's 2nd-98th percentile when there is ground truth (so a
    prediction off in scale shows as off in colour), else the predictions'."""
    values = [valid_depths(gt if gt is not None else pred) for _, pred, gt in rows]
    return depth_colour_range(np.concatenate(values) if values else np.zeros(0), (2, 98), (0.1, max_depth))


def contact_sheet(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]], max_depth: float) -> np.ndarray:
    """Rows of input | prediction | ground truth, colourised on one shared depth range (see colour_range)."""
    low, high = colour_range(rows, max_depth)
    tiles = []
    for rgb, pred, gt in rows:
        h, w = rgb.shape[:2]
        pred_img = cv2.resize(colorize_depth(pred, low, high), (w, h), interpolation=cv2.INTER_NEAREST)
        row = [labelled(rgb, "input", 0.7), labelled(pred_img, "predicted depth", 0.7)]
        if gt is not None:
            row.append(labelled(ground_truth_tile(gt, low, high), "ground truth", 0.7))
        tiles.append(np.hstack(row))
    sheet = stack_rows(tiles)
    cv2.putText(sheet, f"colour: {low:.2f} m (red) .. {high:.2f} m (blue), inverse depth", (8, sheet.shape[0] - 12),
                cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    scale = min(1.0, 1600 / sheet.shape[1])
    return cv2.resize(sheet, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def write_png(path: Path, rgb: np.ndarray) -> None:
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"OpenCV cannot encode {path}")
    write_bytes_atomically(path, png.tobytes())


def run_demo(output: Path, model: str, bag: Path, rate: float, max_depth: float, timeout: float,
             resolution: str = "model") -> int:
    import rclpy
    import rclpy.executors

    output.mkdir(parents=True, exist_ok=True)
    env = local_ros_environment(domain_id=int(os.environ.get("ROS_DOMAIN_ID", 40 + os.getpid() % 50)))
    os.environ.update(env)
    node_cmd = [
        sys.executable, "-m", "depth_estimation_ros.ros.node", "--ros-args",
        "--params-file", str(config_dir() / "lacdepth_indoor.yaml"),
        "-p", f"model:={model}", "-p", "image_transport:=compressed", "-p", f"max_depth:={max_depth}",
        "-p", f"output_resolution:={resolution}", "-p", "diagnostics_period:=0.5",
        "-p", "qos.input.reliability:=reliable",  # a replay should lose nothing; live cameras keep best effort
        "-r", f"image/compressed:={IMAGE_TOPIC}", "-r", f"camera_info:={CAMERA_INFO_TOPIC}",
    ]
    topics = [IMAGE_TOPIC, CAMERA_INFO_TOPIC]  # the node and this recorder both subscribe to the images
    player_cmd = [sys.executable, "-m", "depth_estimation_ros.ros.bag_player", str(bag), "--restamp",
                  "--rate", str(rate), "--topics", *topics, "--wait-for", f"{IMAGE_TOPIC}:2", CAMERA_INFO_TOPIC]
    rclpy.init()
    recorder = OutputRecorder()
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(recorder.node)
    spinner = BackgroundSpinner(executor).start()
    node_log = open(output / "node.log", "w")
    node_proc = subprocess.Popen(node_cmd, env=env, stdout=node_log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while not recorder.node_ready():
            if node_proc.poll() is not None:
                node_log.flush()
                tail = "".join((output / "node.log").read_text().splitlines(keepends=True)[-5:])
                print(f"depth-demo: error: depth_estimation_node exited with {node_proc.returncode}:\n{tail}",
                      file=sys.stderr)
                return node_proc.returncode  # the node's exit code names the kind of failure (errors.py)
            if time.monotonic() > deadline:
                raise RuntimeError(f"depth_estimation_node did not come up in {timeout:.0f} s; see {output}/node.log")
            time.sleep(0.1)
        time.sleep(1.0)  # let the outputs' reliable readers finish matching
        player = subprocess.run(player_cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if player.returncode != 0:
            raise RuntimeError(f"bag player failed:\n{player.stdout}{player.stderr}")
        expected = len(recorder.input_order)
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:
            with recorder.lock:
                done = len(recorder.depth) >= expected and len(recorder.clouds) >= expected
            if done:
                break
            time.sleep(0.1)
        time.sleep(0.6)  # one more diagnostics period
    finally:
        node_proc.terminate()
        try:
            node_proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            node_proc.kill()
        node_log.close()
        spinner.stop()
        recorder.node.destroy_node()
        rclpy.shutdown()
    return report(output, recorder, bag, max_depth)


def report(output: Path, recorder: OutputRecorder, bag: Path, max_depth: float) -> int:
    if not recorder.depth:
        raise RuntimeError(f"no depth image came back from the node; see {output}/node.log")
    gts = ground_truth_depths(bag)
    rgbs = input_frames(bag)
    # the node publishes in input order and the stamps grow with it (the player restamps at publish time): with a
    # depth image for every bag frame, their stamps give the order even when this recorder's own input subscription
    # missed a frame
    order = sorted(recorder.depth) if len(recorder.depth) == len(rgbs) else recorder.input_order
    lines = ["frame,stamp_ns,stamp_to_receive_ms"]
    latencies = []
    rows = []
    for index, stamp in enumerate(order):
        if stamp not in recorder.depth:
            lines.append(f"{index},{stamp},")
            continue
        latency, depth = recorder.depth[stamp]
        latencies.append(latency)
        lines.append(f"{index},{stamp},{latency * 1e3:.2f}")
        rows.append((rgbs[index], depth, gts[index] if index < len(gts) else None))
    write_bytes_atomically(output / "latency.csv", ("\n".join(lines) + "\n").encode())
    write_png(output / "contact_sheet.png", contact_sheet(rows, max_depth))
    middle = sorted(recorder.clouds)[len(recorder.clouds) // 2] if recorder.clouds else None
    n_points = 0
    if middle is not None:
        xyz, rgb = organised_points_from_point_cloud_message(recorder.clouds[middle])
        n_points = write_ply(output / "cloud.ply", xyz, rgb)
    ms = np.asarray(latencies) * 1e3
    diag = recorder.diagnostics
    summary = [
        f"frames played: {len(rgbs)}; depth images received: {len(recorder.depth)}; "
        f"missing here: {len(rgbs) - len(recorder.depth)} (the node received {diag.get('frames_received', '?')}, "
        f"published {diag.get('frames_published', '?')}, dropped {diag.get('frames_dropped', '?')}, "
        f"{diag.get('errors', '?')} errors)",
        f"stamp-to-receive latency (player publish -> depth image here) ms: p50 {np.percentile(ms, 50):.1f}  "
        f"p90 {np.percentile(ms, 90):.1f}  p99 {np.percentile(ms, 99):.1f}  max {ms.max():.1f}",
        f"node: backend {diag.get('backend', '?')} {diag.get('precision', '?')} on {diag.get('device', '?')}, "
        f"model {diag.get('model.network', '?')}/{diag.get('model.encoder', '?')} "
        f"input {diag.get('input_size', '?')}",
        "node per-stage latency p50 ms: " + "  ".join(
            f"{k.split('.')[1]} {v}" for k, v in diag.items() if k.startswith("latency.") and k.endswith("p50_ms")),
        f"point cloud: {n_points} valid points written",
    ]
    text = "\n".join(summary)
    (output / "summary.txt").write_text(text + "\n")
    print(text)
    print(f"\nwrote {output / 'contact_sheet.png'}\n      {output / 'cloud.ply'}\n      {output / 'latency.csv'}\n"
          f"      {output / 'summary.txt'}\n      {output / 'node.log'}")
    published = int(diag.get("frames_published", len(recorder.depth)))
    return 0 if latencies and len(recorder.depth) >= published else 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Replay the bundled sample bag through depth_estimation_node.")
    parser.add_argument("--output", type=Path, default=Path("demo_output"), help="folder for the results")
    parser.add_argument("--model", default="lacdepth_indoor", help="bundled model name or .onnx path")
    parser.add_argument("--bag", type=Path, default=SAMPLE_BAG, help="bag with compressed images + CameraInfo")
    parser.add_argument("--rate", type=float, default=2.0, help="playback rate factor")
    parser.add_argument("--max-depth", type=float, default=10.0, help="metres; beyond is +Inf")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the node / the player")
    args = parser.parse_args(argv)
    try:  # inputs checked before any process starts
        if not args.bag.exists():
            raise FileNotFoundError(f"bag '{args.bag}' does not exist; give a bag with compressed images and "
                                    "CameraInfo (default: the bundled sample)")
        resolve_model(args.model)
    except EXPECTED_ERRORS as exc:
        sys.exit(report_error("depth-demo", exc))
    sys.exit(run_demo(args.output.resolve(), args.model, args.bag, args.rate, args.max_depth, args.timeout))


if __name__ == "__main__":
    main()
