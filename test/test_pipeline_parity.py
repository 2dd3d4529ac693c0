"""One per-frame path: the running node (over DDS) and depth-eval give the same frame bit-identical depth."""

from __future__ import annotations

import cv2
import numpy as np
from node_harness import NodeClient, NodeProcess, camera_info_msg, image_msg

from depth_estimation_ros.data.bag_reading import BagReader
from depth_estimation_ros.data.bag_writing import BagWriter
from depth_estimation_ros.engines.onnxruntime_engine import OnnxRuntimeEngine
from depth_estimation_ros.evaluation.cli import main as depth_eval_main
from depth_estimation_ros.evaluation.replay import PREDICTION_TOPICS
from depth_estimation_ros.frame.camera_model import PinholeCamera
from depth_estimation_ros.messages.image_codec import image_array
from depth_estimation_ros.resources.model_registry import resolve_model

FRAME_ID = "camera_color_optical_frame"
STAMP = 1_700_000_123_000_000_000
MODEL = "lacdepth_indoor"
TOPICS = {"image": "/camera/color/image_raw", "camera_info": "/camera/color/camera_info",
          "depth": "/camera/depth/image"}


def _depth(msg) -> np.ndarray:
    """The 32FC1 payload as it is (NaN and +-Inf kept apart), from an rclpy or a rosbags message."""
    assert msg.encoding == "32FC1"
    return image_array(msg.encoding, msg.width, msg.height, msg.step, bytes(msg.data), msg.is_bigendian)


def test_node_and_depth_eval_publish_bit_identical_depth(shared_data, rclpy_context, tmp_path):
    rgb = cv2.cvtColor(cv2.imread(str(shared_data / "tum_fr3_cabinet_keyframes" / "rgb" / "0000_rgb_raw.jpg")),
                       cv2.COLOR_BGR2RGB)
    camera = PinholeCamera(640, 480, np.array([[535.4, 0, 320.1], [0, 539.2, 247.6], [0, 0, 1]]))
    # a range inside the model's own depths of this frame, so -Inf, finite and +Inf pixels all occur
    estimate = OnnxRuntimeEngine(resolve_model(MODEL), threads=2).estimate(rgb, (480, 640))
    low, high = np.percentile(estimate, [20, 80])
    depth_range = {"min_depth": round(float(low), 3), "max_depth": round(float(high), 3)}
    bag = tmp_path / "one_frame"
    with BagWriter(bag, "mcap") as writer:
        writer.write_image(TOPICS["image"], STAMP, FRAME_ID, rgb, "rgb8")
        writer.write_camera_info(TOPICS["camera_info"], STAMP, FRAME_ID, camera)
        writer.write_depth(TOPICS["depth"], STAMP, FRAME_ID, np.full((480, 640), 1.2, np.float32))
    out_bag = tmp_path / "eval_out"
    rc = depth_eval_main([str(bag), "--model", MODEL, "--backend", "onnxruntime", "--threads", "2",
                          "--image-topic", TOPICS["image"], "--camera-info-topic", TOPICS["camera_info"],
                          "--depth-topic", TOPICS["depth"], "--output-min-depth", str(depth_range["min_depth"]),
                          "--output-max-depth", str(depth_range["max_depth"]), "--output-bag", str(out_bag),
                          "--output-dir", str(tmp_path / "report"), "--no-scene-blind", "--no-progress"])
    assert rc == 0
    with BagReader(out_bag) as reader:
        evaluated = _depth(next(reader.messages([PREDICTION_TOPICS["depth"]])).message)

    node = NodeProcess("/t_parity", overrides={"model": MODEL, "backend": "onnxruntime", "threads": 2,
                                               "output_resolution": "input", **depth_range},
                       log_path=tmp_path / "node.log")
    client = NodeClient(node)
    try:
        client.wait_ready(node)
        client.publish(image_msg(rgb, "rgb8", STAMP, FRAME_ID), camera_info_msg(camera, STAMP, FRAME_ID))
        published = _depth(client.wait_for("depth/image", STAMP))
    finally:
        client.close()
        node.stop()

    assert published.dtype == evaluated.dtype == np.float32 and published.shape == evaluated.shape == (480, 640)
    assert np.isneginf(published).any() and np.isposinf(published).any() and np.isfinite(published).any()
    assert published.tobytes() == evaluated.tobytes(), \
        f"{np.count_nonzero(published.view(np.uint32) != evaluated.view(np.uint32))} pixels differ"
