"""Test harness: depth_estimation_node in its own process, and a real rclpy client in the test process."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import rclpy
import rclpy.executors
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from depth_estimation_ros.frame.camera_model import PinholeCamera
from depth_estimation_ros.ros.background_spin import BackgroundSpinner

REPO = Path(__file__).resolve().parents[1]
OUTPUTS = {"depth/image": Image, "depth/camera_info": CameraInfo, "points": PointCloud2, "depth/colored": Image}


TOPICS = ("image", "image/compressed", "camera_info", *OUTPUTS)


class NodeProcess:
    """``python -m depth_estimation_ros.ros.node`` (or another node ``module``) in its own process.

    With ``namespace`` the node runs in it. Without, it keeps its plain name so a ``--params-file`` in the
    ``depth_estimation_node: ros__parameters:`` layout applies (the YAML key is the fully qualified name), and its
    topics are remapped under ``topic_prefix`` instead. Only one un-namespaced node should run at a time.
    """

    def __init__(self, topic_prefix: str, params_file: Path | None = None, overrides: dict | None = None,
                 log_path: Path | None = None, namespace: bool = True,
                 module: str = "depth_estimation_ros.ros.node") -> None:
        self.topic_prefix = topic_prefix
        self.fqn = f"{topic_prefix}/depth_estimation_node" if namespace else "/depth_estimation_node"
        args = [sys.executable, "-m", module, "--ros-args"]
        if namespace:
            args += ["-r", f"__ns:={topic_prefix}"]
        else:
            for topic in TOPICS:
                args += ["-r", f"{topic}:={topic_prefix}/{topic}"]
        if params_file is not None:
            args += ["--params-file", str(params_file)]
        for key, value in (overrides or {}).items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            args += ["-p", f"{key}:={text}"]
        self.log_path = log_path
        self._log = open(log_path, "w") if log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path else ""

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not subprocess.DEVNULL:
            self._log.close()
        return self.proc.returncode


def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


class NodeClient:
    """Publishes camera frames to one node namespace and collects every output by header stamp."""

    def __init__(self, node: NodeProcess, compressed: bool = False) -> None:
        self.node = Node(f"test_client_{node.topic_prefix.strip('/').replace('/', '_')}")
        self.ns = node.topic_prefix.rstrip("/")
        self.fqn = node.fqn
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        image_type, image_topic = (CompressedImage, "image/compressed") if compressed else (Image, "image")
        self.pub_image = self.node.create_publisher(image_type, f"{self.ns}/{image_topic}", reliable)
        self.pub_raw = self.node.create_publisher(Image, f"{self.ns}/image", reliable)
        self.pub_info = self.node.create_publisher(CameraInfo, f"{self.ns}/camera_info", reliable)
        self.lock = threading.Lock()
        self.received: dict[str, dict[int, object]] = defaultdict(dict)
        self.diagnostics: list = []
        for topic, msg_type in OUTPUTS.items():
            self.node.create_subscription(msg_type, f"{self.ns}/{topic}",
                                          lambda m, t=topic: self._keep(t, m), reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, reliable)
        self.executor = rclpy.executors.SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.spinner = BackgroundSpinner(self.executor).start()

    def _keep(self, topic: str, msg) -> None:
        with self.lock:
            self.received[topic][stamp_ns(msg)] = msg

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith(f"{self.fqn}:"):
                with self.lock:
                    self.diagnostics.append((time.monotonic(), status))

    def wait_ready(self, node: NodeProcess, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.proc.poll() is not None:
                raise RuntimeError(f"node exited with {node.proc.returncode}:\n{node.log()}")
            if all(self.node.count_publishers(f"{self.ns}/{t}") > 0 for t in OUTPUTS) and \
                    self.pub_info.get_subscription_count() > 0 and self.pub_image.get_subscription_count() > 0:
                time.sleep(1.0)  # matching is asymmetric: let the node's side match us too
                return
            time.sleep(0.1)
        raise TimeoutError(f"node in {self.ns} not ready after {timeout} s:\n{node.log()}")

    def publish(self, image_msg, info_msg: CameraInfo | None, raw_image: bool | None = None) -> None:
        publisher = self.pub_raw if raw_image else self.pub_image
        publisher.publish(image_msg)
        if info_msg is not None:
            self.pub_info.publish(info_msg)

    def wait_for(self, topic: str, stamp: int, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if stamp in self.received[topic]:
                    return self.received[topic][stamp]
            time.sleep(0.02)
        raise TimeoutError(f"no {topic} with stamp {stamp} within {timeout} s")

    def all_outputs(self, stamp: int, timeout: float = 60.0) -> dict[str, object]:
        return {topic: self.wait_for(topic, stamp, timeout) for topic in OUTPUTS}

    def latest_diagnostics(self, after: float, timeout: float = 10.0, predicate=None):
        """The first diagnostics status published after `after` (monotonic) that satisfies predicate."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for when, status in self.diagnostics:
                    if when > after and (predicate is None or predicate(status)):
                        return status
            time.sleep(0.05)
        raise TimeoutError("no matching diagnostics")

    def _call(self, service_type, name: str, request, timeout: float = 10.0):
        client = self.node.create_client(service_type, f"{self.fqn}/{name}")
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f"service {name} not available")
            future = client.call_async(request)
            deadline = time.monotonic() + timeout
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.02)
            return future.result()
        finally:
            self.node.destroy_client(client)

    def set_parameters(self, **values) -> list:
        params = []
        for name, value in values.items():
            if isinstance(value, bool):
                pv = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
            elif isinstance(value, int):
                pv = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
            elif isinstance(value, float):
                pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
            else:
                pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(value))
            params.append(Parameter(name=name, value=pv))
        return self._call(SetParameters, "set_parameters", SetParameters.Request(parameters=params)).results

    def get_parameters(self, *names: str) -> dict[str, object]:
        result = self._call(GetParameters, "get_parameters", GetParameters.Request(names=list(names)))
        out = {}
        for name, value in zip(names, result.values):
            out[name] = {ParameterType.PARAMETER_BOOL: value.bool_value,
                         ParameterType.PARAMETER_INTEGER: value.integer_value,
                         ParameterType.PARAMETER_DOUBLE: value.double_value,
                         ParameterType.PARAMETER_STRING: value.string_value}.get(value.type)
        return out

    def close(self) -> None:
        self.spinner.stop()
        self.node.destroy_node()


def camera_info_msg(camera: PinholeCamera, stamp: int, frame_id: str) -> CameraInfo:
    msg = CameraInfo()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    msg.header.frame_id = frame_id
    msg.width, msg.height = camera.width, camera.height
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = camera.k.reshape(-1).tolist()
    msg.r = np.eye(3).reshape(-1).tolist()
    msg.p = camera.p.reshape(-1).tolist()
    return msg


def image_msg(array: np.ndarray, encoding: str, stamp: int, frame_id: str, step: int | None = None,
              data: bytes | None = None) -> Image:
    """An Image built field by field (independent of the package's conversion code)."""
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    msg.header.frame_id = frame_id
    msg.height, msg.width = array.shape[:2]
    msg.encoding = encoding
    msg.is_bigendian = 0
    row = array.shape[1] * (array.shape[2] if array.ndim == 3 else 1) * array.itemsize
    msg.step = row if step is None else step
    msg.data = array.tobytes() if data is None else data
    return msg


def compressed_msg(payload: bytes, fmt: str, stamp: int, frame_id: str) -> CompressedImage:
    msg = CompressedImage()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    msg.header.frame_id = frame_id
    msg.format = fmt
    msg.data = payload
    return msg


def diagnostics_values(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}
