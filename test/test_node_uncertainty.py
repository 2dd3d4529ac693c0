"""depth/uncertainty over DDS: the node (own process) with a LacDepth model that has depth_std publishes it with the
depth image's header and conventions, masks depth by max_relative_uncertainty; GATDepth publishes none."""

from __future__ import annotations

import itertools
import time

import cv2
import numpy as np
import onnx
import pytest
from node_harness import NodeClient, NodeProcess, camera_info_msg, diagnostics_values, image_msg
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from depth_estimation_ros.engines.onnxruntime_engine import OnnxRuntimeEngine
from depth_estimation_ros.frame.camera_model import PinholeCamera
from depth_estimation_ros.messages.image_codec import image_array
from depth_estimation_ros.networks.depth_std_graph import add_depth_std_output
from depth_estimation_ros.resources.model_registry import resolve_model

FRAME_ID = "camera_color_optical_frame"
_stamps = itertools.count(1_710_000_000_000_000_000, 50_000_000)


class UncertaintyClient(NodeClient):
    """NodeClient that also collects depth/uncertainty."""

    def __init__(self, node: NodeProcess) -> None:
        super().__init__(node)
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(Image, f"{self.ns}/depth/uncertainty",
                                      lambda m: self._keep("depth/uncertainty", m), reliable)


@pytest.fixture(scope="module")
def tum_frame(shared_data):
    bgr = cv2.imread(str(shared_data / "tum_fr3_cabinet_keyframes" / "rgb" / "0000_rgb_raw.jpg"))
    camera = PinholeCamera(640, 480, np.array([[535.4, 0, 320.1], [0, 539.2, 247.6], [0, 0, 1]]))
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), camera


@pytest.fixture(scope="module")
def model_with_std(tmp_path_factory):
    """The bundled indoor LacDepth with depth_std (added from its graph for an export that predates it)."""
    model = onnx.load(resolve_model("lacdepth_indoor"))
    if "depth_std" in [o.name for o in model.graph.output]:
        return resolve_model("lacdepth_indoor")
    path = tmp_path_factory.mktemp("model") / "lacdepth_indoor_std.onnx"
    onnx.save(add_depth_std_output(model), path)
    return path


def _array(msg) -> np.ndarray:
    return image_array(msg.encoding, msg.width, msg.height, msg.step, bytes(msg.data), bool(msg.is_bigendian))


def _send(client: UncertaintyClient, rgb, camera) -> int:
    stamp = next(_stamps)
    client.publish(image_msg(rgb, "rgb8", stamp, FRAME_ID), camera_info_msg(camera, stamp, FRAME_ID))
    return stamp


def test_node_publishes_uncertainty_and_masks_by_relative_uncertainty(rclpy_context, tmp_path, tum_frame,
                                                                       model_with_std):
    rgb, camera = tum_frame
    engine = OnnxRuntimeEngine(str(model_with_std))
    size = (engine.info.input_height, engine.info.input_width)
    depth_ref, std_ref = engine.estimate_with_std(rgb, size)
    lo, hi = (float(v) for v in np.percentile(depth_ref, [10, 90]))  # caps inside the prediction: +-Inf appear
    node = NodeProcess("/t_unc", None, {"model": str(model_with_std), "min_depth": lo, "max_depth": hi,
                                        "diagnostics_period": 0.25}, tmp_path / "node.log")
    client = UncertaintyClient(node)
    try:
        client.wait_ready(node)
        stamp = _send(client, rgb, camera)
        depth_msg = client.wait_for("depth/image", stamp)
        unc_msg = client.wait_for("depth/uncertainty", stamp)
        assert unc_msg.header == depth_msg.header and unc_msg.header.frame_id == FRAME_ID
        assert (unc_msg.encoding, unc_msg.height, unc_msg.width) == ("32FC1", *size)
        depth, unc = _array(depth_msg), _array(unc_msg)
        finite = np.isfinite(depth)
        assert np.isinf(depth).sum() > 0.1 * depth.size and finite.any()
        assert np.all(np.isnan(unc[~finite]))  # NaN wherever the depth is not a finite measurement
        assert np.allclose(unc[finite], std_ref[finite], rtol=1e-4) and np.all(unc[finite] > 0)

        # max_relative_uncertainty (dynamic): depth and cloud NaN above it, counted in diagnostics
        relative = std_ref / depth_ref
        threshold = float(np.median(relative[finite]))
        assert client.set_parameters(max_relative_uncertainty=threshold)[0].successful
        stamp = _send(client, rgb, camera)
        masked = _array(client.wait_for("depth/image", stamp))
        cloud = client.wait_for("points", stamp)
        above = finite & (relative > threshold * (1 + 1e-4))
        below = finite & (relative < threshold * (1 - 1e-4))
        assert above.sum() > 0.2 * finite.sum() and np.all(np.isnan(masked[above]))
        assert np.all(np.isfinite(masked[below])) and np.array_equal(np.isinf(masked), ~finite & ~np.isnan(depth))
        xyz = np.frombuffer(bytes(cloud.data), np.float32).reshape(cloud.height, cloud.width, -1)[..., :3]
        assert np.all(np.isnan(xyz[above])) and np.all(np.isfinite(xyz[below]))
        status = client.latest_diagnostics(time.monotonic(), predicate=lambda s: int(
            diagnostics_values(s).get("uncertainty_masked_pixels", "0")) > 0)
        values = diagnostics_values(status)
        assert values["uncertainty"] == "depth_std" and int(values["uncertainty_masked_pixels"]) >= above.sum()
        assert not client.set_parameters(max_relative_uncertainty=-0.5)[0].successful  # outside its range
        assert client.set_parameters(max_relative_uncertainty=0.0)[0].successful
        stamp = _send(client, rgb, camera)
        assert np.array_equal(np.isnan(_array(client.wait_for("depth/image", stamp))), np.isnan(depth))
    finally:
        client.close()
        node.stop()


def test_gatdepth_publishes_no_uncertainty_and_says_so(rclpy_context, tmp_path, tum_frame):
    rgb, camera = tum_frame
    node = NodeProcess("/t_unc_gat", None, {"model": "gatdepth", "max_relative_uncertainty": 0.1,
                                            "diagnostics_period": 0.25}, tmp_path / "node.log")
    client = UncertaintyClient(node)
    try:
        client.wait_ready(node)
        stamp = _send(client, rgb, camera)
        depth = _array(client.wait_for("depth/image", stamp))
        assert np.isfinite(depth).mean() > 0.5  # the threshold does nothing without depth_std
        assert client.node.count_publishers("/t_unc_gat/depth/uncertainty") == 0
        values = diagnostics_values(client.latest_diagnostics(time.monotonic()))
        assert values["uncertainty"].startswith("none: the model has no per-pixel depth distribution")
        assert "depth/uncertainty is not published" in node.log()
    finally:
        client.close()
        node.stop()
