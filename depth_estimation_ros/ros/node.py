"""depth_estimation_node: camera images in; metric depth, depth camera_info, point cloud, colourised depth and
diagnostics out.

The node only wires ROS to plain objects: pairing (camera_info_pairing), a single-slot mailbox (frame_slot), the
frame processor (depth_frame_processor: engine + range conventions + cloud + colour) and message conversion
(ros.message_conversion). Callbacks never block: they pair and drop the pair into the slot; a worker thread
processes the newest pair and publishes. Every output carries the input image's header.
"""

from __future__ import annotations

import threading
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from depth_estimation_ros.camera_info_pairing import ExactStampPairing, LatestInfoPairing, PairingResult
from depth_estimation_ros.camera_model import CameraModelError, looks_unrectified
from depth_estimation_ros.depth_frame_processor import DepthFrameProcessor, FrameError
from depth_estimation_ros.engines import EngineError, create_engine
from depth_estimation_ros.frame_slot import LatestFrameSlot
from depth_estimation_ros.health import ERROR, OK, WARN, HealthMonitor
from depth_estimation_ros.image_codec import ImageDecodeError
from depth_estimation_ros.model_registry import resolve_model
from depth_estimation_ros.rolling_stats import LatencyWindow, RateMeter
from depth_estimation_ros.ros import message_conversion as conv
from depth_estimation_ros.ros.parameters import DYNAMIC, PARAMETERS, check_choice, processor_settings
from depth_estimation_ros.stage_timer import StageTimer

STAGES = ("decode", "preprocess", "inference", "postprocess", "cloud", "colorize", "publish")
INPUT_ERRORS = (ImageDecodeError, CameraModelError, FrameError)


def stamp_ns(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _qos(reliability: str, depth: int) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort" else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


class DepthEstimationNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("depth_estimation_node", **kwargs)
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, spec.descriptor())
        p = {spec.name: self.get_parameter(spec.name).value for spec in PARAMETERS}
        for name in ("backend", "precision", "image_transport", "sync_mode", "output_resolution",
                     "qos.input.reliability", "qos.output.reliability", "on_gate_fail", "int8_scope", "int8_float"):
            problem = check_choice(name, p[name])
            if problem:
                raise ValueError(problem)
        self._params = p
        self.health = HealthMonitor(throttle=5.0)

        model_path = resolve_model(str(p["model"]))
        self.engine = create_engine(
            model_path, backend=str(p["backend"]), precision=str(p["precision"]), device=str(p["device"]),
            threads=int(p["threads"]), cache_dir=str(p["engine_cache_dir"]) or None,
            calibration=str(p["calibration"]) or None, calibration_topic=str(p["calibration_topic"]) or None,
            accuracy_bound=float(p["accuracy_bound"]), on_gate_fail=str(p["on_gate_fail"]),
            int8_scope=str(p["int8_scope"]), int8_float=str(p["int8_float"]))
        info = self.engine.info
        for axis, requested, actual in (("input_width", p["input_width"], info.input_width),
                                        ("input_height", p["input_height"], info.input_height)):
            if requested and requested != actual:
                raise EngineError(f"parameter {axis}={requested} but the model '{model_path}' takes {actual}; "
                                  f"set {axis} to 0 or export the model at that size (depth-export)")
        if info.metadata.get("trained", "true").lower() == "false":
            self.get_logger().warning(
                f"model '{model_path}' is untrained (metadata trained=false): its depth is not meaningful; train "
                "one with depth-train and pass its .onnx as the model parameter")
        self.processor = DepthFrameProcessor(self.engine, processor_settings(p))
        self.add_on_set_parameters_callback(self._on_set_parameters)

        out_qos = _qos(str(p["qos.output.reliability"]), int(p["qos.output.depth"]))
        self.pub_depth = self.create_publisher(Image, "depth/image", out_qos)
        self.pub_info = self.create_publisher(CameraInfo, "depth/camera_info", out_qos)
        self.pub_cloud = self.create_publisher(PointCloud2, "points", out_qos)
        self.pub_color = self.create_publisher(Image, "depth/colored", out_qos)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

        in_qos = _qos(str(p["qos.input.reliability"]), int(p["qos.input.depth"]))
        self.compressed = p["image_transport"] == "compressed"
        image_type, image_topic = (CompressedImage, "image/compressed") if self.compressed else (Image, "image")
        self.exact = p["sync_mode"] == "exact"
        self.pairing = ExactStampPairing(queue_size=10) if self.exact else LatestInfoPairing(
            float(p["camera_info_max_age"]))
        self.sub_image = self.create_subscription(image_type, image_topic, self._on_image, in_qos)
        self.sub_info = self.create_subscription(CameraInfo, "camera_info", self._on_info, in_qos)

        self.slot: LatestFrameSlot[PairingResult] = LatestFrameSlot()
        self.latency = LatencyWindow(size=300)
        self.input_rate = RateMeter()
        self.output_rate = RateMeter()
        self.frames_received = 0
        self.frames_published = 0
        self.frames_failed = 0
        self._last_info_time: float | None = None
        self._first_image_time: float | None = None
        self._last_image_time: float | None = None
        self._last_pair_time: float | None = None
        self._warned_distortion = False
        self._running = True
        self._worker = threading.Thread(target=self._work, name="depth_worker", daemon=True)
        self._worker.start()
        self.create_timer(float(p["diagnostics_period"]), self._publish_diagnostics)
        self.get_logger().info(
            f"depth estimation ready: {info.backend} {info.precision} on {info.device}, model {model_path} "
            f"({info.input_width}x{info.input_height}); subscribed to '{self.sub_image.topic_name}' "
            f"({image_type.__name__}) and '{self.sub_info.topic_name}', sync={p['sync_mode']}")

    # --- callbacks: pair and hand over, never block -------------------------------------------------------
    def _on_image(self, msg) -> None:
        now = time.monotonic()
        self.frames_received += 1
        self.input_rate.tick(now)
        if self._first_image_time is None:
            self._first_image_time = now
        self._last_image_time = now
        self._hand_over(self.pairing.add_image(stamp_ns(msg.header), msg), now)

    def _on_info(self, msg: CameraInfo) -> None:
        self._last_info_time = time.monotonic()
        self._hand_over(self.pairing.add_info(stamp_ns(msg.header), msg), self._last_info_time)

    def _hand_over(self, pair: PairingResult | None, now: float) -> None:
        if pair is not None:
            self._last_pair_time = now
            self.slot.put(pair)

    def _on_set_parameters(self, params) -> SetParametersResult:
        values = dict(self._params)
        for param in params:
            if param.name not in DYNAMIC:
                continue
            problem = check_choice(param.name, param.value)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
            values[param.name] = param.value
        try:
            settings = processor_settings(values)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self._params = values
        self.processor.settings = settings
        return SetParametersResult(successful=True)

    # --- worker ---------------------------------------------------------------------------------------------
    def _work(self) -> None:
        while self._running:
            pair = self.slot.take(timeout=0.2)
            if pair is None:
                continue
            try:
                self._process(pair)
            except INPUT_ERRORS as exc:
                self.frames_failed += 1
                self._problem("input", ERROR, str(exc))
            except Exception as exc:  # keep serving: one bad frame must not stop the node
                self.frames_failed += 1
                self._problem("processing", ERROR, f"{type(exc).__name__}: {exc}")

    def _process(self, pair: PairingResult) -> None:
        image_msg, info_msg = pair.image, pair.info
        timer = StageTimer()
        with timer.stage("decode"):
            camera = conv.camera_at_image_resolution(info_msg)
            if self.compressed:
                rgb = conv.rgb_from_compressed_msg(image_msg)
            else:
                rgb = conv.rgb_from_image_msg(image_msg)
        if not self._warned_distortion and looks_unrectified(camera, self.sub_image.topic_name):
            self._warned_distortion = True
            self.get_logger().warning(
                f"camera_info has non-zero distortion and '{self.sub_image.topic_name}' does not look rectified: "
                "the node treats its input as the rectified image (intrinsics from P, as depth_image_proc does); "
                "remap image to the image_rect topic of image_proc so depth and point cloud geometry are correct")
        frame = self.processor.process(rgb, camera, timer)
        header = image_msg.header
        out_h, out_w = frame.depth.shape
        cloud_wanted = self.pub_cloud.get_subscription_count() > 0
        color_wanted = self.pub_color.get_subscription_count() > 0
        cloud_msg = color_msg = None
        if cloud_wanted:
            with timer.stage("cloud"):
                xyz, rgb_points = self.processor.cloud(frame)
                cloud_msg = conv.cloud_msg(header, xyz, rgb_points)
        if color_wanted:
            with timer.stage("colorize"):
                color_msg = conv.to_image_msg(self.processor.colorized(frame), "rgb8", header)
        with timer.stage("publish"):
            self.pub_depth.publish(conv.to_image_msg(frame.depth, "32FC1", header))
            depth_info = conv.camera_info_scaled(info_msg, out_w, out_h)
            depth_info.header = header  # the image's stamp, also when the CameraInfo is a cached one
            self.pub_info.publish(depth_info)
            if cloud_msg is not None:
                self.pub_cloud.publish(cloud_msg)
            if color_msg is not None:
                self.pub_color.publish(color_msg)
        now_ns = self.get_clock().now().nanoseconds
        self.latency.add("stamp_to_publish", (now_ns - stamp_ns(header)) * 1e-9)
        self.latency.add_all(timer.durations)
        self.frames_published += 1
        self.output_rate.tick(time.monotonic())

    def _problem(self, kind: str, level: int, message: str) -> None:
        if self.health.report(kind, level, message, time.monotonic()):
            log = self.get_logger().error if level == ERROR else self.get_logger().warning
            log(message)

    # --- diagnostics ----------------------------------------------------------------------------------------
    def _check_camera_info(self, now: float) -> None:
        """ERROR while images arrive without CameraInfo; WARN while exact sync finds no identical stamps."""
        timeout = float(self._params["camera_info_timeout"])
        if self._last_image_time is None or now - self._last_image_time > timeout:
            return  # no recent images: nothing waits for a CameraInfo
        since = self._last_info_time if self._last_info_time is not None else self._first_image_time
        if now - since > timeout:
            self._problem("camera_info", ERROR,
                          f"no CameraInfo received on '{self.sub_info.topic_name}' for {now - since:.1f} s while "
                          f"images arrive on '{self.sub_image.topic_name}'; publish CameraInfo or fix the "
                          "camera_info remap")
        elif self.exact and self.pairing.waiting_images >= 5 and (
                self._last_pair_time is None or now - self._last_pair_time > timeout):
            self._problem("camera_info", WARN,
                          f"{self.pairing.waiting_images} images wait for a CameraInfo with the identical stamp; if "
                          "the camera stamps CameraInfo differently, set sync_mode:=latest")

    def dropped_frames(self) -> int:
        unpaired = self.pairing.unpaired_images_dropped if self.exact else self.pairing.stale_images_dropped
        return self.slot.dropped + unpaired

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        self._check_camera_info(now)
        level, message = self.health.status()
        info = self.engine.info
        values = {
            "input_rate_hz": f"{self.input_rate.rate(now):.2f}",
            "output_rate_hz": f"{self.output_rate.rate(now):.2f}",
            "frames_received": str(self.frames_received),
            "frames_published": str(self.frames_published),
            "frames_dropped": str(self.dropped_frames()),
            "frames_failed": str(self.frames_failed),
            "errors": str(self.health.total_errors),
        }
        for name in ("stamp_to_publish", *STAGES):
            pct = self.latency.percentiles(name)
            if pct is not None:
                values[f"latency.{name}.p50_ms"] = f"{pct[0] * 1e3:.2f}"
                values[f"latency.{name}.p99_ms"] = f"{pct[1] * 1e3:.2f}"
        values.update(info.summary())
        status = DiagnosticStatus(
            level={OK: DiagnosticStatus.OK, WARN: DiagnosticStatus.WARN, ERROR: DiagnosticStatus.ERROR}[level],
            name=f"{self.get_fully_qualified_name()}: depth estimation",
            message=message,
            hardware_id=info.device,
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(array)

    def destroy_node(self) -> None:
        # also called by rclpy's shutdown for a node whose __init__ failed half-way
        self._running = False
        if hasattr(self, "slot"):
            self.slot.close()
            self._worker.join(timeout=2.0)
        if hasattr(self, "engine"):
            self.engine.close()
        super().destroy_node()


def main(args=None) -> None:
    rclpy.init(args=args)
    node = None
    try:
        node = DepthEstimationNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (EngineError, FileNotFoundError, ValueError) as exc:
        import sys

        print(f"depth_estimation_node: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    main()
