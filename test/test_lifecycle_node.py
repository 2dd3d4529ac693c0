"""The managed (lifecycle) node driven as users drive it: this process calls the node's real lifecycle_msgs
``change_state`` / ``get_state`` services over DDS and watches its topics appear and stop."""

from __future__ import annotations

import shutil
import time

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from node_harness import OUTPUTS, NodeClient, NodeProcess, camera_info_msg, diagnostics_values, image_msg
from self_test_models import export_small_lacdepth, wrong_weights_model

from depth_estimation_ros.frame.camera_model import PinholeCamera

LIFECYCLE_MODULE = "depth_estimation_ros.ros.lifecycle_node"
FRAME_ID = "camera_color_optical_frame"


@pytest.fixture(scope="module")
def tum_frame(shared_data):
    bgr = cv2.imread(str(shared_data / "tum_fr3_cabinet_keyframes" / "rgb" / "0000_rgb_raw.jpg"))
    camera = PinholeCamera(640, 480, np.array([[535.4, 0, 320.1], [0, 539.2, 247.6], [0, 0, 1]]))
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), camera


class LifecycleClient(NodeClient):
    def state(self) -> tuple[int, str]:
        current = self._call(GetState, "get_state", GetState.Request(), timeout=30.0).current_state
        return current.id, current.label

    def change(self, transition: int) -> bool:
        request = ChangeState.Request()
        request.transition.id = transition
        response = self._call(ChangeState, "change_state", request, timeout=120.0)
        assert response is not None, f"change_state {transition} got no answer"
        return response.success

    def output_publishers(self) -> dict[str, int]:
        return {t: self.node.count_publishers(f"{self.ns}/{t}") for t in OUTPUTS}

    def input_subscribers(self) -> int:
        return self.pub_image.get_subscription_count() + self.pub_info.get_subscription_count()

    def wait_until(self, condition, what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.1)
        raise TimeoutError(f"{what} not reached within {timeout} s")

    def send(self, rgb, camera, stamp: int) -> None:
        self.publish(image_msg(rgb, "rgb8", stamp, FRAME_ID), camera_info_msg(camera, stamp, FRAME_ID))

    def diagnostics_in_state(self, state: str, timeout: float = 10.0):
        return self.latest_diagnostics(time.monotonic(), timeout,
                                       lambda s: diagnostics_values(s).get("state") == state)


@pytest.fixture
def lifecycle_node(rclpy_context, tmp_path):
    nodes = []

    def start(prefix: str, **overrides) -> tuple[NodeProcess, LifecycleClient]:
        node = NodeProcess(prefix, None, {"diagnostics_period": 0.25, **overrides}, tmp_path / f"{prefix[1:]}.log",
                           module=LIFECYCLE_MODULE)
        client = LifecycleClient(node)
        nodes.append((node, client))
        return node, client

    yield start
    for node, client in nodes:
        client.close()
        node.stop()


def test_every_transition_over_dds(lifecycle_node, tum_frame):
    rgb, camera = tum_frame
    node, client = lifecycle_node("/t_lifecycle")
    stamp = 1_700_000_000_000_000_000

    assert client.state() == (State.PRIMARY_STATE_UNCONFIGURED, "unconfigured")
    status = client.diagnostics_in_state("unconfigured")
    assert status.level == DiagnosticStatus.OK and "backend" not in diagnostics_values(status)
    assert sum(client.output_publishers().values()) == 0 and client.input_subscribers() == 0

    # configure: engine built and self-tested, publishers there, nothing subscribed yet
    assert client.change(Transition.TRANSITION_CONFIGURE)
    assert client.state() == (State.PRIMARY_STATE_INACTIVE, "inactive")
    client.wait_until(lambda: all(client.output_publishers().values()), "output publishers after configure")
    values = diagnostics_values(client.diagnostics_in_state("inactive"))
    assert values["self_test"] == "passed" and values["backend"] == "onnxruntime"
    assert client.input_subscribers() == 0

    # activate: subscribed, frames served
    assert client.change(Transition.TRANSITION_ACTIVATE)
    assert client.state() == (State.PRIMARY_STATE_ACTIVE, "active")
    client.wait_until(lambda: client.pub_image.get_subscription_count() > 0 and
                      client.pub_info.get_subscription_count() > 0, "subscriptions after activate")
    time.sleep(1.0)  # matching is asymmetric: let the node's side match us too
    client.send(rgb, camera, stamp)
    depth = client.wait_for("depth/image", stamp, timeout=60.0)
    assert depth.encoding == "32FC1"

    # deactivate: unsubscribed, a frame sent now gives nothing
    assert client.change(Transition.TRANSITION_DEACTIVATE)
    assert client.state() == (State.PRIMARY_STATE_INACTIVE, "inactive")
    client.wait_until(lambda: client.input_subscribers() == 0, "no subscriptions after deactivate")
    client.send(rgb, camera, stamp + 1)
    time.sleep(2.0)
    with client.lock:
        assert stamp + 1 not in client.received["depth/image"]
    assert all(client.output_publishers().values())  # publishers stay while configured

    # activate again: served again
    assert client.change(Transition.TRANSITION_ACTIVATE)
    client.wait_until(lambda: client.pub_image.get_subscription_count() > 0 and
                      client.pub_info.get_subscription_count() > 0, "subscriptions after the second activate")
    time.sleep(1.0)
    client.send(rgb, camera, stamp + 2)
    client.wait_for("depth/image", stamp + 2, timeout=60.0)

    # deactivate + cleanup: publishers gone, engine freed
    assert client.change(Transition.TRANSITION_DEACTIVATE)
    assert client.change(Transition.TRANSITION_CLEANUP)
    assert client.state() == (State.PRIMARY_STATE_UNCONFIGURED, "unconfigured")
    client.wait_until(lambda: sum(client.output_publishers().values()) == 0, "no output publishers after cleanup")
    assert "backend" not in diagnostics_values(client.diagnostics_in_state("unconfigured"))

    # configure + activate again, then shut down straight from active
    assert client.change(Transition.TRANSITION_CONFIGURE)
    assert client.change(Transition.TRANSITION_ACTIVATE)
    client.wait_until(lambda: client.input_subscribers() > 0, "subscriptions after the third activate")
    assert client.change(Transition.TRANSITION_ACTIVE_SHUTDOWN)
    assert client.state() == (State.PRIMARY_STATE_FINALIZED, "finalized")
    client.wait_until(lambda: sum(client.output_publishers().values()) == 0 and client.input_subscribers() == 0,
                      "no topics after shutdown")
    assert node.proc.poll() is None  # finalized, still answering get_state
    log = node.log()
    assert "self-test passed" in log and "shut down from active" in log and "Traceback" not in log


def test_failed_configure_stays_unconfigured_with_the_reason(lifecycle_node, tmp_path):
    """A model whose weights do not reproduce its stored reference: configure fails, the reason is logged and in
    diagnostics (ERROR), and the node can still be shut down from unconfigured."""
    model = wrong_weights_model(tmp_path / "wrong_weights.onnx")
    node, client = lifecycle_node("/t_lifecycle_bad", model=str(model))
    assert client.state()[0] == State.PRIMARY_STATE_UNCONFIGURED
    assert not client.change(Transition.TRANSITION_CONFIGURE)
    assert client.state() == (State.PRIMARY_STATE_UNCONFIGURED, "unconfigured")
    status = client.latest_diagnostics(time.monotonic(), 10.0, lambda s: s.level == DiagnosticStatus.ERROR)
    assert "configure failed" in status.message and "self-test FAILED" in status.message
    assert "onnxruntime fp32" in status.message and "onnxruntime 1." in status.message  # backend, precision, version
    assert sum(client.output_publishers().values()) == 0
    assert client.change(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
    assert client.state() == (State.PRIMARY_STATE_FINALIZED, "finalized")
    log = node.log()
    assert "self-test FAILED" in log and "abs_rel" in log and "Traceback" not in log


def test_self_test_fallback_serves_fp32_onnxruntime_and_keeps_the_error_visible(lifecycle_node, tmp_path, tum_frame):
    """The torch engine runs a checkpoint that does not belong to the ONNX beside it: with
    on_self_test_fail:=fallback, configure succeeds on fp32 ONNX Runtime, frames are served, and diagnostics stay
    ERROR naming the failed backend."""
    onnx_path, _, wrong = export_small_lacdepth(tmp_path)
    shutil.copy(wrong, onnx_path.with_suffix(".pt"))
    rgb, camera = tum_frame
    node, client = lifecycle_node("/t_lifecycle_fallback", model=str(onnx_path), backend="torch", device="cpu",
                                  on_self_test_fail="fallback")
    assert client.change(Transition.TRANSITION_CONFIGURE)
    assert client.change(Transition.TRANSITION_ACTIVATE)
    status = client.diagnostics_in_state("active")
    values = diagnostics_values(status)
    assert status.level == DiagnosticStatus.ERROR and "self-test FAILED: torch fp32" in status.message
    assert "fp32 ONNX Runtime fallback" in status.message and "torch 2." in values["self_test.versions"]
    assert values["self_test"] == "failed" and values["backend"] == "onnxruntime"
    client.wait_until(lambda: client.input_subscribers() > 0, "subscriptions after activate")
    time.sleep(1.0)
    stamp = 1_700_000_100_000_000_000
    client.send(rgb, camera, stamp)
    assert client.wait_for("depth/image", stamp, timeout=60.0).encoding == "32FC1"
