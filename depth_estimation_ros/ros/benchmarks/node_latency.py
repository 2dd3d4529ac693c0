"""Stamp-to-publish latency of depth_estimation_node over DDS (separate processes), printed as a table.

A publisher here sends 640x480 rgb8 frames (TUM RGB-D keyframes, cycled) with CameraInfo, stamped at publish
time, slower than the node can process them (so the figure is latency, not queueing); the node runs as its own
process. Reported per configuration: the node's own stamp-to-publish latency (from /diagnostics, p50 / p99),
the receive latency here (publish -> depth image received, through DDS twice), and the node's per-stage medians.

    python -m depth_estimation_ros.ros.benchmarks.node_latency --data ../shared/data --frames 40
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from depth_estimation_ros.resources.shared_data import shared_data_dir
from depth_estimation_ros.ros.background_spin import BackgroundSpinner
from depth_estimation_ros.ros.ros_environment import local_ros_environment

STAGES = ("decode", "preprocess", "inference", "postprocess", "cloud", "colorize", "publish")


def run_configuration(frames: list[np.ndarray], k: np.ndarray, overrides: dict[str, str], count: int,
                      period: float, with_cloud: bool) -> dict[str, float]:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    env = local_ros_environment()
    args = [sys.executable, "-m", "depth_estimation_ros.ros.node", "--ros-args", "-r", "__ns:=/bench"]
    for key, value in overrides.items():
        args += ["-p", f"{key}:={value}"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    node = rclpy.create_node("node_latency_bench")
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pub_image = node.create_publisher(Image, "/bench/image", reliable)
    pub_info = node.create_publisher(CameraInfo, "/bench/camera_info", reliable)
    received: dict[int, float] = {}
    diagnostics: dict[str, str] = {}

    def on_depth(msg):
        received[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = time.time_ns()

    def on_diag(msg):
        for status in msg.status:
            if status.name.startswith("/bench/depth_estimation_node"):
                diagnostics.update({kv.key: kv.value for kv in status.values})

    node.create_subscription(Image, "/bench/depth/image", on_depth, reliable)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    if with_cloud:
        node.create_subscription(PointCloud2, "/bench/points", lambda m: None, reliable)
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    spinner = BackgroundSpinner(executor).start()
    try:
        deadline = time.monotonic() + 120
        while node.count_publishers("/bench/depth/image") == 0 or pub_image.get_subscription_count() == 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("depth_estimation_node did not start")
            time.sleep(0.1)
        time.sleep(1.0)
        sent = []
        for i in range(count):
            stamp = time.time_ns()
            image, info = _camera_messages(frames[i % len(frames)], k, stamp)
            pub_image.publish(image)
            pub_info.publish(info)
            sent.append(stamp)
            time.sleep(period)
        time.sleep(max(1.0, 2 * float(overrides.get("diagnostics_period", 0.5))))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        spinner.stop()  # a spin thread alive at interpreter exit aborts it ("terminate called ...")
        node.destroy_node()
    return _summary(sent, received, diagnostics)


def _camera_messages(rgb: np.ndarray, k: np.ndarray, stamp_ns: int) -> tuple:
    """(Image, CameraInfo) of one 640x480 rgb8 frame, both stamped ``stamp_ns`` in the optical frame."""
    from sensor_msgs.msg import CameraInfo, Image

    image = Image(height=480, width=640, encoding="rgb8", step=640 * 3, data=rgb.tobytes())
    info = CameraInfo(height=480, width=640, k=k.reshape(-1).tolist(), distortion_model="plumb_bob",
                      d=[0.0] * 5, r=np.eye(3).reshape(-1).tolist(),
                      p=np.hstack([k, np.zeros((3, 1))]).reshape(-1).tolist())
    for msg in (image, info):
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        msg.header.frame_id = "camera_color_optical_frame"
    return image, info


def _summary(sent: list[int], received: dict[int, float], diagnostics: dict[str, str]) -> dict[str, float]:
    """Receive latency percentiles (send stamp to depth arrival) and the node's own diagnostics latencies."""
    latencies = np.array([(received[s] - s) * 1e-6 for s in sent if s in received])
    result = {"frames": len(sent), "received": len(latencies)}
    if len(latencies):
        result.update(recv_p50=float(np.percentile(latencies, 50)), recv_p99=float(np.percentile(latencies, 99)))
    for key in ("stamp_to_publish", *STAGES):
        for q in ("p50", "p99"):
            value = diagnostics.get(f"latency.{key}.{q}_ms")
            if value is not None:
                result[f"{key}_{q}"] = float(value)
    result["model"] = diagnostics.get("model.network", "?") + "/" + diagnostics.get("model.encoder", "?")
    result["input"] = diagnostics.get("input_size", "?")
    return result


def main(argv: list[str] | None = None) -> None:
    import rclpy
    import rclpy.executors

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir())
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--models", nargs="*", default=["lacdepth", "gatdepth"])
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads")
    args = parser.parse_args(argv)
    folder = args.data / "tum_fr3_cabinet_keyframes" / "rgb"
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(folder.glob("*.jpg"))[:10]]
    k = np.array([[535.4, 0, 320.1], [0, 539.2, 247.6], [0, 0, 1]])
    os.environ.update(local_ros_environment())
    rclpy.init()
    rows = []
    try:
        for model in args.models:
            for resolution, cloud in (("model", False), ("model", True), ("input", True)):
                overrides = {"model": model, "threads": str(args.threads), "output_resolution": resolution,
                             "diagnostics_period": "0.5"}
                # one frame per (p99 inference + margin): measure latency, not queueing
                probe = run_configuration(frames, k, overrides, 5, 1.0, cloud)
                period = 1.5 * probe.get("inference_p99", 500.0) / 1e3 + 0.05
                result = run_configuration(frames, k, overrides, args.frames, period, cloud)
                rows.append((model, resolution, cloud, result))
    finally:
        rclpy.shutdown()
    print(f"\nnode latency, 640x480 rgb8 input, ONNX Runtime CPU ({args.threads} threads), {args.frames} frames each")
    print("| model | network input | output_resolution | cloud | stamp->publish p50 / p99 ms | "
          "publish->received here p50 / p99 ms | stages p50 ms (decode, pre, infer, post, cloud, colour, publish) |")
    print("|---|---|---|---|---|---|---|")
    for _, resolution, cloud, r in rows:
        stages = ", ".join(f"{r.get(f'{s}_p50', float('nan')):.1f}" for s in STAGES)
        print(f"| {r['model']} | {r['input']} | {resolution} | {'yes' if cloud else 'no'} | "
              f"{r.get('stamp_to_publish_p50', float('nan')):.1f} / {r.get('stamp_to_publish_p99', float('nan')):.1f}"
              f" | {r.get('recv_p50', float('nan')):.1f} / {r.get('recv_p99', float('nan')):.1f} | {stages} |")


if __name__ == "__main__":
    main()
