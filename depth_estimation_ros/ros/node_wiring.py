"""What both depth nodes (ros/node.py, plain; ros/lifecycle_node.py, managed) do, in the steps a lifecycle has.

``DepthNodeWiring`` wires one rclpy node (plain or lifecycle) to plain objects: pairing (camera_info_pairing), a
single-slot mailbox (frame_slot), the frame processor (depth_frame_processor: engine + range conventions + cloud +
colour), the engine self-test (engines/self_test) and message conversion (ros.message_conversion).

- construction: parameters declared, /diagnostics published (in every state, so a failed configure is visible)
- configure: model resolved, engine built or loaded and self-tested, output publishers created
- activate: subscriptions created, worker started; deactivate: both stopped
- cleanup: publishers destroyed, engine freed

Callbacks never block: they pair and drop the pair into the slot; the worker processes the newest pair and
publishes. Every output carries the input image's header.
"""

from __future__ import annotations

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from depth_estimation_ros.engines import EngineError, create_engine
from depth_estimation_ros.engines.self_test import FAILED, PASSED, SKIPPED, SelfTestResult, checked_engine
from depth_estimation_ros.errors import EXPECTED_ERRORS, ConfigurationError
from depth_estimation_ros.frame.camera_model import CameraModelError, camera_from_camera_info, looks_unrectified
from depth_estimation_ros.frame.stage_timer import StageTimer
from depth_estimation_ros.messages.image_codec import ImageDecodeError
from depth_estimation_ros.messages.message_decoding import header_stamp_ns, stamp_to_ns
from depth_estimation_ros.pipeline.depth_frame_processor import DepthFrameProcessor, FrameError
from depth_estimation_ros.resources.model_registry import resolve_model
from depth_estimation_ros.ros import message_conversion as conv
from depth_estimation_ros.ros.parameters import DYNAMIC, PARAMETERS, check_choice, processor_settings
from depth_estimation_ros.stream.camera_info_pairing import (
    EMPTY_FRAME_ID,
    STAMP_REPEATED,
    ExactStampPairing,
    LatestInfoPairing,
    PairingResult,
    StampCheck,
)
from depth_estimation_ros.stream.frame_slot import LatestFrameSlot
from depth_estimation_ros.stream.health import ERROR, OK, WARN, HealthMonitor, throughput_problem
from depth_estimation_ros.stream.rolling_stats import LatencyWindow, RateMeter

STAGES = ("decode", "preprocess", "inference", "postprocess", "cloud", "colorize", "publish")
INPUT_ERRORS = (ImageDecodeError, CameraModelError, FrameError)
CONFIGURE_ERRORS = EXPECTED_ERRORS  # bad parameters, model or engine: a clear message (errors.py)
CHOICE_PARAMETERS = ("backend", "precision", "image_transport", "sync_mode", "output_resolution",
                     "qos.input.reliability", "qos.output.reliability", "on_gate_fail", "int8_scope", "int8_float",
                     "on_self_test_fail")
UNCONFIGURED, INACTIVE, ACTIVE, FINALIZED = "unconfigured", "inactive", "active", "finalized"
NO_UNCERTAINTY = ("none: the model has no per-pixel depth distribution (no depth_std output: GATDepth, baseline or an "
                  "old export), so depth/uncertainty is not published")


def _qos(reliability: str, depth: int) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort" else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


class DepthNodeWiring:
    def __init__(self, node: Node) -> None:
        self.node = node
        for spec in PARAMETERS:
            node.declare_parameter(spec.name, spec.default, spec.descriptor())
        self._params = {spec.name: node.get_parameter(spec.name).value for spec in PARAMETERS}
        self.health = HealthMonitor(throttle=5.0)
        self.state = UNCONFIGURED
        self.engine = None
        self.processor: DepthFrameProcessor | None = None
        self.self_test: list[SelfTestResult] = []
        self.configure_error: str | None = None
        self._outputs: list = []
        self._inputs: list = []
        self.latency = LatencyWindow(size=300)
        self.input_rate = RateMeter()
        self.output_rate = RateMeter()
        self.paired_rate = RateMeter()  # pairs handed to the worker
        self.processed_rate = RateMeter()  # pairs the worker finished, published or failed
        self.image_stamps = StampCheck()
        self._previous_image_stamp = 0
        self.frames_received = 0
        self.frames_published = 0
        self.frames_failed = 0
        self.uncertainty_masked_pixels = 0  # depth pixels set to NaN by max_relative_uncertainty, in total
        self.pub_uncertainty = None  # only for a model with depth_std
        self._dropped_earlier = 0  # by the slots and pairings of earlier activations
        self.slot: LatestFrameSlot[PairingResult] | None = None
        self.pairing = None
        self._worker: threading.Thread | None = None
        self._running = False
        node.add_on_set_parameters_callback(self._on_set_parameters)
        self.pub_diag = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        node.create_timer(float(self._params["diagnostics_period"]), self._publish_diagnostics)

    @property
    def log(self):
        return self.node.get_logger()

    # --- lifecycle steps -----------------------------------------------------------------------------------
    def configure(self) -> None:
        """Resolve the model, create and self-test the engine, create the publishers; on error nothing is left."""
        try:
            self._configure()
        except BaseException:
            self.cleanup()
            raise
        self.configure_error = None
        self.state = INACTIVE

    def _configure(self) -> None:
        p = {spec.name: self.node.get_parameter(spec.name).value for spec in PARAMETERS}
        for name in CHOICE_PARAMETERS:
            problem = check_choice(name, p[name])
            if problem:
                raise ConfigurationError(problem)
        self._params = p
        model_path = resolve_model(str(p["model"]))
        engine_args = dict(
            backend=str(p["backend"]), precision=str(p["precision"]), device=str(p["device"]),
            threads=int(p["threads"]), cache_dir=str(p["engine_cache_dir"]) or None,
            calibration=str(p["calibration"]) or None, calibration_topic=str(p["calibration_topic"]) or None,
            accuracy_bound=float(p["accuracy_bound"]), on_gate_fail=str(p["on_gate_fail"]),
            int8_scope=str(p["int8_scope"]), int8_float=str(p["int8_float"]))
        if p["self_test"]:
            self.engine, self.self_test = checked_engine(
                create_engine, model_path, float(p["self_test_bound"]), str(p["on_self_test_fail"]), **engine_args)
        else:
            self.engine, self.self_test = create_engine(model_path, **engine_args), []
        self._log_self_test()
        info = self.engine.info
        for axis, requested, actual in (("input_width", p["input_width"], info.input_width),
                                        ("input_height", p["input_height"], info.input_height)):
            if requested and requested != actual:
                raise EngineError(f"parameter {axis}={requested} but the model '{model_path}' takes {actual}; "
                                  f"set {axis} to 0 or export the model at that size (depth-export)")
        if info.metadata.get("trained", "true").lower() == "false":
            self.log.warning(
                f"model '{model_path}' is untrained (metadata trained=false): its depth is not meaningful; train "
                "one with depth-train and pass its .onnx as the model parameter")
        self.processor = DepthFrameProcessor(self.engine, processor_settings(p))
        out_qos = _qos(str(p["qos.output.reliability"]), int(p["qos.output.depth"]))
        self.pub_depth = self.node.create_publisher(Image, "depth/image", out_qos)
        self.pub_info = self.node.create_publisher(CameraInfo, "depth/camera_info", out_qos)
        self.pub_cloud = self.node.create_publisher(PointCloud2, "points", out_qos)
        self.pub_color = self.node.create_publisher(Image, "depth/colored", out_qos)
        self._outputs = [self.pub_depth, self.pub_info, self.pub_cloud, self.pub_color]
        if info.has_std:
            self.pub_uncertainty = self.node.create_publisher(Image, "depth/uncertainty", out_qos)
            self._outputs.append(self.pub_uncertainty)
        else:
            self.log.info(f"{NO_UNCERTAINTY} ('{model_path}'); max_relative_uncertainty has no effect")
        self.model_path = info.model_path

    def _log_self_test(self) -> None:
        for result in self.self_test:
            if result.status == PASSED:
                self.log.info(result.message)
            elif result.status == SKIPPED:
                self.log.warning(result.message)
        if len(self.self_test) > 1:  # fell back
            self.log.error(f"{self.self_test[0].message}; running the fp32 ONNX Runtime fallback "
                           "(on_self_test_fail:=fallback)")

    def activate(self) -> None:
        """Subscribe and start the worker."""
        p = self._params
        in_qos = _qos(str(p["qos.input.reliability"]), int(p["qos.input.depth"]))
        self.compressed = p["image_transport"] == "compressed"
        image_type, image_topic = (CompressedImage, "image/compressed") if self.compressed else (Image, "image")
        self.exact = p["sync_mode"] == "exact"
        self.pairing = ExactStampPairing(queue_size=10) if self.exact else LatestInfoPairing(
            float(p["camera_info_max_age"]))
        self.slot = LatestFrameSlot()
        self._last_info_time: float | None = None
        self._first_image_time: float | None = None
        self._last_image_time: float | None = None
        self._last_pair_time: float | None = None
        self._warned_distortion = False
        self.sub_image = self.node.create_subscription(image_type, image_topic, self._on_image, in_qos)
        self.sub_info = self.node.create_subscription(CameraInfo, "camera_info", self._on_info, in_qos)
        self._inputs = [self.sub_image, self.sub_info]
        self._running = True
        self._worker = threading.Thread(target=self._work, name="depth_worker", daemon=True)
        self._worker.start()
        self.state = ACTIVE
        info = self.engine.info
        self.log.info(
            f"depth estimation ready: {info.backend} {info.precision} on {info.device}, model {self.model_path} "
            f"({info.input_width}x{info.input_height}); subscribed to '{self.sub_image.topic_name}' "
            f"({image_type.__name__}) and '{self.sub_info.topic_name}', sync={p['sync_mode']}")

    def deactivate(self) -> None:
        """Unsubscribe and stop the worker (after the frame it is processing)."""
        for subscription in self._inputs:
            self.node.destroy_subscription(subscription)
        self._inputs = []
        self._running = False
        if self.slot is not None:
            self.slot.close()
        if self._worker is not None:
            self._worker.join(timeout=30.0)
            self._worker = None
        if self.slot is not None:
            self._dropped_earlier += self._dropped_now()
            self.slot = self.pairing = None
        if self.state == ACTIVE:
            self.state = INACTIVE

    def cleanup(self) -> None:
        """Back to unconfigured: stop, destroy the publishers, free the engine."""
        self.deactivate()
        for publisher in self._outputs:
            self.node.destroy_publisher(publisher)
        self._outputs = []
        self.pub_uncertainty = None
        self.processor = None
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        self.state = UNCONFIGURED

    def shutdown(self) -> None:
        self.cleanup()
        self.state = FINALIZED

    def report_configure_error(self, message: str) -> None:
        """Keep the reason configure failed in diagnostics (ERROR) until the next successful configure."""
        self.configure_error = message
        self.log.error(message)

    # --- callbacks: pair and hand over, never block -------------------------------------------------------
    def _on_image(self, msg) -> None:
        now = time.monotonic()
        self.frames_received += 1
        self.input_rate.tick(now)
        if self._first_image_time is None:
            self._first_image_time = now
        self._last_image_time = now
        self._check_header(msg.header)
        self._hand_over(self.pairing.add_image(header_stamp_ns(msg), msg), now)

    def _on_info(self, msg: CameraInfo) -> None:
        self._last_info_time = time.monotonic()
        self._hand_over(self.pairing.add_info(header_stamp_ns(msg), msg), self._last_info_time)

    def _hand_over(self, pair: PairingResult | None, now: float) -> None:
        if pair is not None:
            self._last_pair_time = now
            self.paired_rate.tick(now)
            self.slot.put(pair)

    def _check_header(self, header) -> None:
        """WARN (counted in diagnostics) for an empty frame_id and image stamps that repeat or go back."""
        stamp, topic = stamp_to_ns(header.stamp), self.sub_image.topic_name
        previous, self._previous_image_stamp = self._previous_image_stamp, stamp
        for anomaly in self.image_stamps.check(stamp, header.frame_id):
            if anomaly == EMPTY_FRAME_ID:
                message = (f"image on '{topic}' has an empty frame_id, and so have the outputs; set the camera "
                           "driver's frame_id to the camera's optical frame")
            elif anomaly == STAMP_REPEATED:
                message = (f"image stamp {stamp} on '{topic}' repeats the previous one; the camera driver or bag "
                           "publishes one stamp twice")
            else:
                message = (f"image stamp on '{topic}' went back in time by {(previous - stamp) * 1e-9:.3f} s (a bag "
                           "loop or a sim-time reset?); pairing goes on with the new timeline")
            self._problem("image_header", WARN, message)

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
        if self.processor is not None:
            self.processor.settings = settings
        return SetParametersResult(successful=True)

    # --- worker ---------------------------------------------------------------------------------------------
    def _work(self) -> None:
        slot = self.slot
        while self._running:
            pair = slot.take(timeout=0.2)
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
            self.processed_rate.tick(time.monotonic())

    def _process(self, pair: PairingResult) -> None:
        image_msg, info_msg = pair.image, pair.info
        timer = StageTimer()
        with timer.stage("decode"):
            camera = camera_from_camera_info(info_msg)
            if self.compressed:
                rgb = conv.rgb_from_compressed_msg(image_msg, int(self._params["max_image_pixels"]),
                                                   (camera.width, camera.height))
            else:
                rgb = conv.rgb_from_image_msg(image_msg)
        if not self._warned_distortion and looks_unrectified(camera, self.sub_image.topic_name):
            self._warned_distortion = True
            self.log.warning(
                f"camera_info has non-zero distortion and '{self.sub_image.topic_name}' does not look rectified: "
                "the node treats its input as the rectified image (intrinsics from P, as depth_image_proc does); "
                "remap image to the image_rect topic of image_proc so depth and point cloud geometry are correct")
        uncertainty_wanted = self.pub_uncertainty is not None and self.pub_uncertainty.get_subscription_count() > 0
        frame = self.processor.process(rgb, camera, timer, with_uncertainty=uncertainty_wanted)
        self.uncertainty_masked_pixels += frame.uncertainty_masked
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
            if frame.uncertainty is not None:
                self.pub_uncertainty.publish(conv.to_image_msg(frame.uncertainty, "32FC1", header))
        now_ns = self.node.get_clock().now().nanoseconds
        self.latency.add("stamp_to_publish", (now_ns - stamp_to_ns(header.stamp)) * 1e-9)
        self.latency.add_all(timer.durations)
        self.frames_published += 1
        self.output_rate.tick(time.monotonic())

    def _problem(self, kind: str, level: int, message: str) -> None:
        line = self.health.report(kind, level, message, time.monotonic())
        # one call site per severity: rclpy refuses a second severity from the same line
        if line and level == ERROR:
            self.log.error(line)
        elif line:
            self.log.warning(line)

    # --- diagnostics ----------------------------------------------------------------------------------------
    def _check_camera_info(self, now: float) -> None:
        """ERROR while images arrive without CameraInfo; WARN while exact sync finds no identical stamps."""
        if self.state != ACTIVE:
            return
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

    def _check_throughput(self, now: float) -> None:
        """WARN while far fewer frames are processed than paired with a CameraInfo (the slot drops the rest);
        images that never pair have their own diagnostics (_check_camera_info)."""
        if self.state != ACTIVE:
            return
        medians = [self.latency.percentiles(name) for name in STAGES]
        frame_seconds = sum(m[0] for m in medians if m is not None) or None
        problem = throughput_problem(self.paired_rate.rate(now), self.processed_rate.rate(now),
                                     float(self._params["throughput_warn_ratio"]), frame_seconds)
        if problem:
            self._problem("throughput", WARN, problem)

    def _dropped_now(self) -> int:
        if self.slot is None:
            return 0
        unpaired = self.pairing.unpaired_images_dropped if self.exact else self.pairing.stale_images_dropped
        return self.slot.dropped + unpaired

    def dropped_frames(self) -> int:
        return self._dropped_earlier + self._dropped_now()

    def _standing_problem(self) -> tuple[int, str] | None:
        """A problem of the configuration rather than of the last period: a failed configure or self-test."""
        if self.configure_error is not None:
            return ERROR, f"configure failed: {self.configure_error}"
        if self.self_test and self.self_test[0].status == FAILED:
            return ERROR, f"{self.self_test[0].message}; running the fp32 ONNX Runtime fallback"
        return None

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        self._check_camera_info(now)
        self._check_throughput(now)
        level, message = self.health.status()
        standing = self._standing_problem()
        if standing is not None:
            message = standing[1] if level == OK else f"{standing[1]}; {message}"
            level = max(level, standing[0])
        values = {
            "state": self.state,
            "input_rate_hz": f"{self.input_rate.rate(now):.2f}",
            "output_rate_hz": f"{self.output_rate.rate(now):.2f}",
            "frames_received": str(self.frames_received),
            "frames_published": str(self.frames_published),
            "frames_dropped": str(self.dropped_frames()),
            "frames_failed": str(self.frames_failed),
            "errors": str(self.health.total_errors),
            **{f"images_{kind}": str(count) for kind, count in self.image_stamps.counts.items()},
        }
        for name in ("stamp_to_publish", *STAGES):
            pct = self.latency.percentiles(name)
            if pct is not None:
                values[f"latency.{name}.p50_ms"] = f"{pct[0] * 1e3:.2f}"
                values[f"latency.{name}.p99_ms"] = f"{pct[1] * 1e3:.2f}"
        for result in self.self_test[:1]:
            values.update(result.diagnostics())
        engine = self.engine
        if engine is not None:
            values.update(engine.info.summary())
            values["uncertainty"] = "depth_std" if engine.info.has_std else NO_UNCERTAINTY
            values["uncertainty_masked_pixels"] = str(self.uncertainty_masked_pixels)
        status = DiagnosticStatus(
            level={OK: DiagnosticStatus.OK, WARN: DiagnosticStatus.WARN, ERROR: DiagnosticStatus.ERROR}[level],
            name=f"{self.node.get_fully_qualified_name()}: depth estimation",
            message=message if self.state == ACTIVE or standing is not None or level != OK else self.state,
            hardware_id=engine.info.device if engine is not None else "",
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.node.get_clock().now().to_msg()
        self.pub_diag.publish(array)
