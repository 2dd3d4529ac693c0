"""depth_estimation_node under overload: 1280x720 frames at 60 Hz and as fast as a publisher can send, printed as
a table.

The node runs as its own process with its default parameters; a publisher here sends 1280x720 rgb8
frames (TUM RGB-D keyframes, upscaled) with CameraInfo, stamped at publish time, over Fast DDS with sensor-data
QoS, the way a camera driver does. First a reference phase at 1 Hz gives the single-frame figures (inference and
stamp-to-publish p50 when nothing queues); then each overload phase reports what was sent, what the node
received, published, dropped and failed (its diagnostics counters), stamp-to-publish latency (the node's own
p50 / p99 over its last 300 frames, and publish -> depth received here over the whole phase), both as ratios to
the single-frame stamp-to-publish p50, the node's RSS at the start and end of the phase, and its diagnostics
level and message at the end.

    python -m depth_estimation_ros.ros.benchmarks.node_overload --seconds 25
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

from depth_estimation_ros.resources.shared_data import shared_data_dir
from depth_estimation_ros.ros.background_spin import BackgroundSpinner
from depth_estimation_ros.ros.ros_environment import local_ros_environment

WIDTH, HEIGHT = 1280, 720
NAMESPACE = "/overload"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Bench:
    """The publisher / recorder side: one rclpy node spun in a thread."""

    def __init__(self, frames: list[np.ndarray], k: np.ndarray) -> None:
        import rclpy
        import rclpy.executors
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image

        self.node = rclpy.create_node("node_overload_bench")
        self.pub_image = self.node.create_publisher(Image, f"{NAMESPACE}/image", qos_profile_sensor_data)
        self.pub_info = self.node.create_publisher(CameraInfo, f"{NAMESPACE}/camera_info", qos_profile_sensor_data)
        self.received: dict[int, int] = {}
        self.diagnostics: dict[str, str] = {}
        self.status = (0, "")
        self.lock = threading.Lock()
        self.images = [Image(height=HEIGHT, width=WIDTH, encoding="rgb8", step=WIDTH * 3, data=f.tobytes())
                       for f in frames]
        self.info = CameraInfo(height=HEIGHT, width=WIDTH, k=k.reshape(-1).tolist(), distortion_model="plumb_bob",
                               d=[0.0] * 5, r=np.eye(3).reshape(-1).tolist(),
                               p=np.hstack([k, np.zeros((3, 1))]).reshape(-1).tolist())
        for msg in (*self.images, self.info):
            msg.header.frame_id = "camera_color_optical_frame"
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(Image, f"{NAMESPACE}/depth/image", self._on_depth, reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.executor = rclpy.executors.SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.spinner = BackgroundSpinner(self.executor).start()
        self.sent: list[int] = []

    def _on_depth(self, msg) -> None:
        with self.lock:
            self.received[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = time.time_ns()

    def _on_diag(self, msg) -> None:
        for status in msg.status:
            if status.name.startswith(f"{NAMESPACE}/depth_estimation_node"):
                with self.lock:
                    self.diagnostics = {kv.key: kv.value for kv in status.values}
                    self.status = (int.from_bytes(status.level, "little") if isinstance(status.level, bytes)
                                   else int(status.level), status.message)

    def send(self, index: int) -> int:
        image = self.images[index % len(self.images)]
        stamp = time.time_ns()
        for msg in (image, self.info):
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        self.pub_image.publish(image)
        self.pub_info.publish(self.info)
        self.sent.append(stamp)
        return stamp

    def snapshot(self) -> tuple[dict[str, str], tuple[int, str]]:
        with self.lock:
            return dict(self.diagnostics), self.status

    def close(self) -> None:
        self.spinner.stop()
        self.node.destroy_node()


def run_phase(bench: Bench, pid: int, rate_hz: float | None, seconds: float, settle: float) -> dict:
    """Send for `seconds` at rate_hz (None: back to back), let the node settle, and collect the figures."""
    before, _ = bench.snapshot()
    rss_start = rss_mb(pid)
    first = len(bench.sent)
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        bench.send(i)
        i += 1
        if rate_hz:
            next_at = start + i / rate_hz
            time.sleep(max(0.0, next_at - time.monotonic()))
    elapsed = time.monotonic() - start
    rss_end_sending = rss_mb(pid)
    time.sleep(settle)
    after, status = bench.snapshot()
    sent = bench.sent[first:]
    with bench.lock:
        latency = np.array([(bench.received[s] - s) * 1e-6 for s in sent if s in bench.received])

    def delta(key: str) -> int:
        return int(after.get(key, 0)) - int(before.get(key, 0))

    result = {"sent": len(sent), "sent_hz": len(sent) / elapsed, "received": delta("frames_received"),
              "published": delta("frames_published"), "dropped": delta("frames_dropped"),
              "failed": delta("frames_failed"), "rss_start": rss_start, "rss_end": max(rss_end_sending, rss_mb(pid)),
              "here_p50": float(np.percentile(latency, 50)) if len(latency) else float("nan"),
              "here_p99": float(np.percentile(latency, 99)) if len(latency) else float("nan"),
              "node_p50": float(after.get("latency.stamp_to_publish.p50_ms", "nan")),
              "node_p99": float(after.get("latency.stamp_to_publish.p99_ms", "nan")),
              "inference_p50": float(after.get("latency.inference.p50_ms", "nan")),
              "output_hz": delta("frames_published") / elapsed, "level": status[0], "message": status[1]}
    return result


def main(argv: list[str] | None = None) -> None:
    import rclpy

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir())
    parser.add_argument("--seconds", type=float, default=25.0, help="length of each overload phase")
    parser.add_argument("--rate", type=float, default=60.0, help="camera rate of the first overload phase")
    parser.add_argument("--threads", type=int, default=2, help="the node's ONNX Runtime threads")
    parser.add_argument("--model", default="lacdepth")
    args = parser.parse_args(argv)
    folder = args.data / "tum_fr3_cabinet_keyframes" / "rgb"
    frames = [cv2.resize(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB), (WIDTH, HEIGHT),
                         interpolation=cv2.INTER_LINEAR) for p in sorted(folder.glob("*.jpg"))[:10]]
    k = np.array([[535.4 * 2, 0, 320.1 * 2], [0, 539.2 * 1.5, 247.6 * 1.5], [0, 0, 1]])
    env = local_ros_environment()
    os.environ.update(env)
    node_args = [sys.executable, "-m", "depth_estimation_ros.ros.node", "--ros-args", "-r", f"__ns:={NAMESPACE}",
                 "-p", f"model:={args.model}", "-p", f"threads:={args.threads}", "-p", "diagnostics_period:=0.5"]
    proc = subprocess.Popen(node_args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    rclpy.init()
    bench = Bench(frames, k)
    rows = []
    try:
        deadline = time.monotonic() + 180
        while bench.node.count_publishers(f"{NAMESPACE}/depth/image") == 0 or \
                bench.pub_image.get_subscription_count() == 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("depth_estimation_node did not start")
            time.sleep(0.1)
        time.sleep(1.0)
        run_phase(bench, proc.pid, 2.0, 4.0, 1.0)  # warm-up
        reference = run_phase(bench, proc.pid, 1.0, 10.0, 1.5)
        rows.append(("single frames, 1 Hz", reference))
        rows.append((f"{args.rate:g} Hz, {args.seconds:g} s", run_phase(bench, proc.pid, args.rate, args.seconds, 3.0)))
        rows.append((f"max rate, {args.seconds:g} s", run_phase(bench, proc.pid, None, args.seconds, 3.0)))
    finally:
        bench.close()
        rclpy.shutdown()
        proc.terminate()
        proc.wait(timeout=20)
    single = reference["node_p50"]
    print(f"\nnode overload: {WIDTH}x{HEIGHT} rgb8 + CameraInfo, sensor-data QoS, model {args.model}, ONNX Runtime "
          f"CPU ({args.threads} threads); single-frame inference p50 {reference['inference_p50']:.1f} ms, "
          f"stamp->publish p50 {single:.1f} ms")
    print("| phase | sent (Hz) | node received | published (Hz) | dropped | failed | stamp->publish p50 / p99 ms "
          "(x single frame) | publish->received here p50 / p99 ms | RSS start -> end MB | diagnostics at the end |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        level = {0: "OK", 1: "WARN", 2: "ERROR"}.get(r["level"], str(r["level"]))
        print(f"| {name} | {r['sent']} ({r['sent_hz']:.1f}) | {r['received']} | {r['published']} "
              f"({r['output_hz']:.1f}) | {r['dropped']} | {r['failed']} | {r['node_p50']:.0f} / {r['node_p99']:.0f} "
              f"({r['node_p50'] / single:.1f}x / {r['node_p99'] / single:.1f}x) | {r['here_p50']:.0f} / "
              f"{r['here_p99']:.0f} | {r['rss_start']:.0f} -> {r['rss_end']:.0f} | {level}: {r['message']} |")


if __name__ == "__main__":
    main()
