"""End-to-end evaluation by replay on bags built from ../shared/data, with a tiny exported ONNX model.

The model is a real ONNX file (one conv + sigmoid + inverse-depth head) exported with torch and run by the
package's ONNX Runtime engine through ``engine.estimate``, the node's per-frame path.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from contract_models import export_contract_model
from shared_data import DATA

from depth_estimation_ros.data.bag_reading import BagReader, TopicNotFoundError
from depth_estimation_ros.data.bag_writing import BagWriter
from depth_estimation_ros.data.dataset_bags import (
    KITTI_TOPICS,
    TUM_TOPICS,
    write_kitti_lidar_bag,
    write_tum_bag,
)
from depth_estimation_ros.data.datasets import KittiRawSequence, TumRgbdSequence
from depth_estimation_ros.data.stamp_matching import StampPairer
from depth_estimation_ros.data.transform_tree import TransformNotFoundError
from depth_estimation_ros.engines import create_engine
from depth_estimation_ros.evaluation.cli import main as depth_eval_main
from depth_estimation_ros.evaluation.frame_sources import (
    BagTopics,
    EvaluationInputError,
    bag_frames,
    resolve_bag_topics,
)
from depth_estimation_ros.evaluation.metrics import METRIC_NAMES
from depth_estimation_ros.evaluation.replay import (
    PREDICTION_TOPICS,
    EvaluationConfig,
    run_evaluation,
)
from depth_estimation_ros.frame.camera_model import camera_from_camera_info
from depth_estimation_ros.frame.projection import lidar_depth_image
from depth_estimation_ros.messages.message_decoding import depth_from_image_message, xyz_from_point_cloud_message

KITTI_DRIVE = DATA / "kitti_drive0023_tiny" / "KITTI_tiny" / "2011_09_26" / "2011_09_26_drive_0023_sync"
TUM = DATA / "tum_fr3_cabinet_keyframes"
TUM_FRAMES = 4


def _export_tiny_model(path: Path) -> None:
    import torch

    class TinyDepth(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 1, 3, padding=1)
            generator = torch.Generator().manual_seed(0)
            with torch.no_grad():
                self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=generator) * 0.3)
                self.conv.bias.zero_()

        def forward(self, image):
            sigma = torch.sigmoid(self.conv(image))
            return 1.0 / (1.0 / 80.0 + (1.0 / 0.1 - 1.0 / 80.0) * 0.2 * sigma)

    export_contract_model(TinyDepth(), path, "tiny_test", 80.0)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("evaluation")


@pytest.fixture(scope="module")
def model_path(workdir) -> Path:
    path = workdir / "tiny_depth.onnx"
    _export_tiny_model(path)
    return path


@pytest.fixture(scope="module")
def engine(model_path):
    return create_engine(str(model_path), "onnxruntime", threads=1)


@pytest.fixture(scope="module")
def kitti_bag(workdir) -> Path:
    path = workdir / "kitti_lidar.bag"
    write_kitti_lidar_bag(KITTI_DRIVE, path, "ros1", max_frames=3)
    return path


@pytest.fixture(scope="module")
def tum_bag_16u(workdir) -> Path:
    path = workdir / "tum_16u"
    write_tum_bag(TUM, path, "sqlite3", depth_encoding="16UC1", max_frames=TUM_FRAMES)
    return path


def _numbers(result) -> list:
    return [(f.name, f.valid_pixels, f.metric, f.scaled, f.scale_ratio) for f in result.frames]


# ------------------------------------------------------------------------------------------------ lidar


@pytest.mark.parametrize("fmt", ["ros1", "mcap"])
def test_lidar_projection_from_bag_matches_shipped_projected_depth(workdir, kitti_bag, fmt):
    """Cloud in velo_link + /tf_static + CameraInfo from the bag, projected, vs TRI's projected depth npz."""
    path = kitti_bag
    if fmt == "mcap":
        path = workdir / "kitti_lidar_mcap"
        write_kitti_lidar_bag(KITTI_DRIVE, path, "mcap", max_frames=3, compressed="png")
    shipped = [f.depth for f in KittiRawSequence(KITTI_DRIVE, "image_02")][:3]
    with BagReader(path) as bag:
        transforms = bag.read_transforms()
        camera = camera_from_camera_info(next(bag.messages([KITTI_TOPICS["camera_info"]])).message)
        clouds = [m.message for m in bag.messages([KITTI_TOPICS["lidar"]])]
        assert {c.header.frame_id for c in clouds} == {"velo_link"}
        t_cam_velo = transforms.lookup("camera_color_left", "velo_link")
        for cloud, expected in zip(clouds, shipped, strict=True):
            xyz = xyz_from_point_cloud_message(cloud)
            # the points really are in the velodyne frame: x forward, z up (the camera looks along x)
            assert np.median(xyz[:, 0]) > 4 and abs(np.median(xyz[:, 1])) < 10 and np.median(xyz[:, 2]) < 0
            projected = lidar_depth_image(xyz, t_cam_velo, camera)
            both = np.isfinite(projected) & np.isfinite(expected)
            assert both.sum() >= 0.99 * np.isfinite(expected).sum()
            rel = np.abs(projected[both] - expected[both]) / expected[both]
            assert np.median(rel) <= 0.01


def test_bag_frames_lidar_ground_truth(kitti_bag):
    shipped = [f.depth for f in KittiRawSequence(KITTI_DRIVE, "image_02")][:3]
    with BagReader(kitti_bag) as bag:
        topics = resolve_bag_topics(bag, BagTopics(image=KITTI_TOPICS["image"]))
        assert topics.lidar == KITTI_TOPICS["lidar"] and topics.camera_info == KITTI_TOPICS["camera_info"]
        frames = list(bag_frames(bag, topics))
    assert len(frames) == 3
    for frame, expected in zip(frames, shipped, strict=True):
        assert frame.frame_id == "camera_color_left"
        both = np.isfinite(frame.ground_truth) & np.isfinite(expected)
        assert np.median(np.abs(frame.ground_truth[both] - expected[both]) / expected[both]) <= 0.01


# ------------------------------------------------------------------------------------------------ TUM


def test_tum_folder_and_tum_bag_give_the_same_numbers(workdir, engine, tum_bag_16u):
    config = EvaluationConfig(min_depth=1e-3, max_depth=10.0, max_frames=TUM_FRAMES, contact_sheet_frames=0)
    folder = run_evaluation(TUM, engine, config, progress=False)
    bag16 = run_evaluation(tum_bag_16u, engine, config, BagTopics(depth=TUM_TOPICS["depth"]), progress=False)
    bag32_path = workdir / "tum_32f"
    write_tum_bag(TUM, bag32_path, "mcap", depth_encoding="32FC1", max_frames=TUM_FRAMES)
    bag32 = run_evaluation(bag32_path, engine, config, progress=False)
    assert len(folder.frames) == len(bag16.frames) == len(bag32.frames) == TUM_FRAMES
    # 32FC1 carries the folder's metres exactly -> identical numbers
    for a, b in zip(folder.frames, bag32.frames, strict=True):
        assert (a.valid_pixels, a.metric, a.scaled, a.scale_ratio) == (b.valid_pixels, b.metric, b.scaled,
                                                                        b.scale_ratio)
    # 16UC1 millimetres quantise TUM's 0.2 mm steps to 1 mm -> the same numbers within that quantisation
    for a, b in zip(folder.frames, bag16.frames, strict=True):
        assert a.valid_pixels == b.valid_pixels
        for name in METRIC_NAMES:
            assert b.metric[name] == pytest.approx(a.metric[name], rel=2e-3, abs=2e-4)
            assert b.scaled[name] == pytest.approx(a.scaled[name], rel=2e-3, abs=2e-4)
        assert b.scale_ratio == pytest.approx(a.scale_ratio, rel=1e-3)
    assert folder.summary()["metric"]["abs_rel"] == pytest.approx(bag16.summary()["metric"]["abs_rel"], rel=2e-3)


def test_evaluating_a_bag_twice_gives_identical_results(engine, tum_bag_16u):
    config = EvaluationConfig(max_depth=10.0, contact_sheet_frames=2)
    first = run_evaluation(tum_bag_16u, engine, config, progress=False)
    second = run_evaluation(tum_bag_16u, engine, config, progress=False)
    assert _numbers(first) == _numbers(second)
    np.testing.assert_array_equal(first.distance_abs_rel_metric, second.distance_abs_rel_metric)
    np.testing.assert_array_equal(first.distance_abs_rel_scaled, second.distance_abs_rel_scaled)
    for a, b in zip(first.samples, second.samples, strict=True):
        np.testing.assert_array_equal(a.prediction, b.prediction)


def test_prediction_uses_the_engine_estimate_path(engine, tum_bag_16u):
    """The evaluated prediction is exactly engine.estimate at the ground-truth size (no separate pre/post)."""
    from depth_estimation_ros.evaluation import metrics

    frame = next(iter(TumRgbdSequence(TUM)))
    expected = metrics.evaluate_frame(frame.depth, engine.estimate(frame.rgb, frame.depth.shape), 1e-3, 10.0)
    result = run_evaluation(TUM, engine, EvaluationConfig(max_depth=10.0, max_frames=1, contact_sheet_frames=0),
                            progress=False)
    assert result.frames[0].metric == expected.metric and result.frames[0].scale_ratio == expected.scale_ratio


# ------------------------------------------------------------------------------------------------ CLI + outputs


def test_cli_writes_reports_and_output_bag(workdir, model_path, kitti_bag, capsys):
    out_dir = workdir / "report_kitti"
    out_bag = workdir / "kitti_eval_out.bag"
    rc = depth_eval_main([str(kitti_bag), "--model", str(model_path), "--backend", "onnxruntime", "--preset",
                          "kitti", "--output-dir", str(out_dir), "--output-bag", str(out_bag), "--no-progress"])
    assert rc == 0
    stdout = capsys.readouterr().out
    assert "median-scaled" in stdout and "abs_rel" in stdout and "ground truth lidar" in stdout
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["summary"]["frames_evaluated"] == 3
    assert summary["config"]["crop"] == "garg" and summary["config"]["max_depth"] == 80.0
    assert summary["engine"]["backend"] == "onnxruntime" and summary["source"]["ground_truth"] == "lidar"
    assert set(summary["summary"]["scale_ratio"]) == {"median", "std", "std_over_median"}
    with open(out_dir / "frames.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and float(rows[0]["inference_ms"]) > 0 and "scaled_abs_rel" in rows[0]
    for name in ("abs_rel_per_frame.png", "error_vs_distance.png", "contact_sheet.png"):
        assert (out_dir / name).stat().st_size > 1000
    with BagReader(out_bag) as bag:
        counts = bag.message_counts
        predictions = [t for kind, t in PREDICTION_TOPICS.items() if kind != "uncertainty"]
        for topic in (*KITTI_TOPICS.values(), "/tf_static", *predictions):
            assert counts[topic] == (1 if topic == "/tf_static" else 3), topic
        assert PREDICTION_TOPICS["uncertainty"] not in counts  # the tiny model has no depth_std
        depth_msg = next(bag.messages([PREDICTION_TOPICS["depth"]])).message
        image_msg = next(bag.messages([KITTI_TOPICS["image"]])).message
        assert depth_msg.encoding == "32FC1" and depth_msg.header.stamp == image_msg.header.stamp
        assert depth_msg.header.frame_id == "camera_color_left"
        depth = depth_from_image_message(depth_msg)
        assert depth.shape == (375, 1242)
        info = camera_from_camera_info(next(bag.messages([PREDICTION_TOPICS["camera_info"]])).message)
        assert (info.width, info.height) == (1242, 375)
        points = next(bag.messages([PREDICTION_TOPICS["points"]])).message
        assert points.header.frame_id == "camera_color_left" and points.height * points.width > 0


def test_cli_folder_input_with_ros2_output_bag(workdir, model_path):
    out_bag = workdir / "tum_folder_out"
    rc = depth_eval_main([str(TUM), "--model", str(model_path), "--max-frames", "2", "--output-dir",
                          str(workdir / "report_tum"), "--output-bag", str(out_bag), "--no-progress"])
    assert rc == 0
    summary = json.loads((workdir / "report_tum" / "summary.json").read_text())
    assert summary["config"]["max_depth"] == 10.0  # auto preset: indoor for TUM
    with BagReader(out_bag) as bag:
        assert bag.message_counts[PREDICTION_TOPICS["depth"]] == 2
        assert bag.message_counts["/ground_truth/depth"] == 2


def test_missing_topic_error_lists_topics(engine, kitti_bag, capsys, model_path):
    with pytest.raises(TopicNotFoundError) as err:
        run_evaluation(kitti_bag, engine, topics=BagTopics(image="/camera/nope"), progress=False)
    assert "/kitti/camera_color_left/image_raw" in str(err.value)
    rc = depth_eval_main([str(kitti_bag), "--model", str(model_path), "--depth-topic", "/depth", "--no-progress"])
    assert rc == 2
    assert "topic '/depth' is not in bag" in capsys.readouterr().err


def _small_bag(path: Path, *, camera_info: bool = True, tf: bool = True, cloud_points=None) -> None:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    from depth_estimation_ros.frame.camera_model import PinholeCamera

    camera = PinholeCamera.from_camera_info_fields(64, 48, [40.0, 0, 32, 0, 40, 24, 0, 0, 1])
    with BagWriter(path, "mcap") as bag:
        if tf:
            bag.write_transforms(1, [("base_link", "lidar", np.eye(4))])
        bag.write_image("/cam/image_raw", 10, "cam_optical", rgb, "rgb8")
        if camera_info:
            bag.write_camera_info("/cam/camera_info", 10, "cam_optical", camera)
        else:
            bag.write_camera_info("/other/camera_info", 10, "cam_optical", camera)
            bag.write_camera_info("/another/camera_info", 10, "cam_optical", camera)
        pts = np.array([[0.0, 0.0, 5.0]], np.float32) if cloud_points is None else cloud_points
        bag.write_point_cloud("/points", 10, "lidar", pts)


def test_clear_errors_for_missing_camera_info_transform_and_ground_truth(workdir, engine):
    no_info = workdir / "no_info"
    _small_bag(no_info, camera_info=False)
    with pytest.raises(TopicNotFoundError, match="no CameraInfo topic for image '/cam/image_raw'"):
        run_evaluation(no_info, engine, progress=False)

    no_tf = workdir / "no_tf"
    _small_bag(no_tf, tf=False)
    with pytest.raises(TransformNotFoundError, match="no transform from 'lidar' to 'cam_optical'"):
        run_evaluation(no_tf, engine, progress=False)

    broken_chain = workdir / "broken_chain"
    _small_bag(broken_chain)
    with pytest.raises(TransformNotFoundError, match="the bag has frames: base_link, lidar"):
        run_evaluation(broken_chain, engine, progress=False)

    empty = workdir / "empty_gt"
    _small_bag(empty, cloud_points=np.array([[0.0, 0.0, -5.0]], np.float32))  # behind the camera
    with pytest.raises(EvaluationInputError, match="no frame of .* has usable ground truth"):
        run_evaluation(empty, engine, topics=BagTopics(camera_frame="lidar"), progress=False)


def test_stamp_pairer_nearest_within_tolerance():
    pairer = StampPairer(tolerance_ns=10)
    out = []
    out += pairer.add_image(100, "a")
    out += pairer.add_truth(95, "t95")
    out += pairer.add_truth(104, "t104")
    out += pairer.add_image(200, "b")
    out += pairer.add_truth(150, "t150")  # resolves "a" (150 > 100 + 10): nearest is t104
    out += pairer.add_image(300, "c")
    out += pairer.add_truth(305, "t305")
    out += pairer.finish()
    assert out == [("a", "t104"), ("b", None), ("c", "t305")]
