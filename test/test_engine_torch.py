"""Torch engine on the CPU (for real) and the GPU pre/post-processing conventions; CUDA parts skip without a GPU."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from shared_data import DATA

from depth_estimation_ros.engines import torch_preprocessing
from depth_estimation_ros.engines.base import EngineError
from depth_estimation_ros.engines.onnxruntime_engine import OnnxRuntimeEngine
from depth_estimation_ros.engines.torch_engine import TorchEngine
from depth_estimation_ros.frame import preprocessing

KITTI_RGB = sorted((DATA / "kitti_drive0001_frames50_100" / "rgb").glob("*.png"))
TUM_RGB = sorted((DATA / "tum_fr3_cabinet_keyframes" / "rgb").glob("*.jpg"))
HEIGHT, WIDTH = 64, 96
NO_CUDA = "no CUDA GPU on this machine (torch.cuda.is_available() is False)"


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from depth_estimation_ros.networks.checkpoint import save_depth_checkpoint
    from depth_estimation_ros.networks.export import export_onnx
    from depth_estimation_ros.networks.factory import DepthNetworkConfig, build_depth_network

    torch.manual_seed(0)
    cfg = DepthNetworkConfig("lacdepth", "efficientnet_lite0", pretrained=True, num_bins=16, embed_channels=32)
    model = build_depth_network(cfg).eval()
    folder = tmp_path_factory.mktemp("torch_engine")
    save_depth_checkpoint(folder / "lacdepth.pt", model, cfg, extra={"training_data_hash": "abc123"})
    export_onnx(model, cfg, folder / "lacdepth.onnx", HEIGHT, WIDTH)  # the sibling gives the input size
    return folder / "lacdepth.pt"


@pytest.mark.parametrize("source, size", [(KITTI_RGB[0], (192, 640)), (TUM_RGB[0], (240, 320)),
                                          (TUM_RGB[1], (192, 640)), (TUM_RGB[2], (600, 800))])
def test_device_preprocessing_matches_the_opencv_path(source, size):
    rgb = _rgb(source)
    expected = preprocessing.to_network_input(rgb, *size)
    got = torch_preprocessing.to_network_input(torch_preprocessing.rgb_to_tensor(rgb, "cpu"), *size).numpy()
    diff = np.abs(got - expected) * 255
    assert got.shape == expected.shape and got.dtype == np.float32
    assert diff.max() <= 1.0 + 1e-4  # at most one uint8 level (OpenCV's fixed-point bilinear when enlarging)
    assert diff.mean() < 0.1


def test_area_weights_are_opencv_area_boxes():
    weights = torch_preprocessing.area_weights(5, 2)  # scale 2.5: [0, 2.5) and [2.5, 5)
    np.testing.assert_allclose(weights, [[0.4, 0.4, 0.2, 0, 0], [0, 0, 0.2, 0.4, 0.4]])
    np.testing.assert_allclose(torch_preprocessing.area_weights(375, 192).sum(axis=1), 1.0)


def test_device_depth_resampling_matches_opencv():
    depth = np.random.default_rng(1).uniform(0.5, 80.0, (48, 160)).astype(np.float32)
    for size in ((375, 1242), (24, 80)):
        expected = preprocessing.resize_depth(depth, *size)
        got = torch_preprocessing.resize_depth(torch.from_numpy(depth)[None, None], *size)[0, 0].numpy()
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-3)


def test_cpu_engine_runs_the_checkpoint_like_the_network_and_the_onnx(checkpoint):
    from depth_estimation_ros.networks.checkpoint import load_depth_checkpoint

    engine = TorchEngine(str(checkpoint), device="cpu")
    info = engine.info
    assert (info.backend, info.precision, info.device) == ("torch", "fp32", "cpu")
    assert (info.input_height, info.input_width) == (HEIGHT, WIDTH)
    assert info.metadata["network"] == "lacdepth" and info.metadata["training_data_hash"] == "abc123"
    batch = preprocessing.to_network_input(_rgb(TUM_RGB[3]), HEIGHT, WIDTH)
    depth = engine.infer(np.concatenate([batch, batch]))
    assert depth.shape == (2, 1, HEIGHT, WIDTH) and depth.dtype == np.float32
    model, _, _ = load_depth_checkpoint(checkpoint)
    with torch.no_grad():
        direct = model.predict_depth(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(depth[:1], direct, rtol=1e-5)
    onnx_depth = OnnxRuntimeEngine(str(checkpoint.with_suffix(".onnx"))).infer(batch)
    np.testing.assert_allclose(depth[:1], onnx_depth, rtol=1e-3)
    estimate = engine.estimate(_rgb(KITTI_RGB[0]), (375, 1242))
    assert estimate.shape == (375, 1242) and np.all(np.isfinite(estimate))
    assert 0.1 <= estimate.min() and estimate.max() <= 80.0


def test_onnx_path_resolves_to_the_sibling_checkpoint(checkpoint):
    engine = TorchEngine(str(checkpoint.with_suffix(".onnx")), device="cpu", input_size=(32, 64))
    assert engine.info.model_path == str(checkpoint) and engine.info.input_width == 64


def test_errors_name_the_problem_and_the_fix(checkpoint, tmp_path):
    with pytest.raises(EngineError, match="needs a CUDA device"):
        TorchEngine(str(checkpoint), precision="fp16", device="cpu")
    with pytest.raises(EngineError, match="backend:=tensorrt"):
        TorchEngine(str(checkpoint), precision="int8", device="cpu")
    lone_onnx = tmp_path / "lone.onnx"
    lone_onnx.write_bytes(checkpoint.with_suffix(".onnx").read_bytes())
    with pytest.raises(EngineError, match="no checkpoint"):
        TorchEngine(str(lone_onnx), device="cpu")
    lone_pt = tmp_path / "other" / "lone.pt"  # no ONNX beside it, no size in the checkpoint
    lone_pt.parent.mkdir()
    lone_pt.write_bytes(checkpoint.read_bytes())
    with pytest.raises(EngineError, match="pass input_size"):
        TorchEngine(str(lone_pt), device="cpu")
    with pytest.raises(EngineError, match="expects"):
        TorchEngine(str(checkpoint), device="cpu").infer(np.zeros((1, 3, 10, 10), np.float32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_engine_with_graphs_matches_the_cpu_engine(checkpoint, precision):
    cpu = TorchEngine(str(checkpoint), device="cpu")
    gpu = TorchEngine(str(checkpoint), precision=precision, device="cuda:0", cuda_graphs=True)
    gpu.warmup()
    rgb = _rgb(KITTI_RGB[1])
    reference = cpu.estimate(rgb, (375, 1242))
    for _ in range(2):  # second call replays the captured graph
        got = gpu.estimate(rgb, (375, 1242))
    rel = np.abs(got - reference) / reference
    assert np.mean(rel) < (1e-3 if precision == "fp32" else 1e-2)
    in_worker: list[np.ndarray] = []  # the node builds the engine in its main thread and runs it in a worker
    worker = threading.Thread(target=lambda: in_worker.append(gpu.estimate(rgb, (375, 1242))))
    worker.start()
    worker.join()
    np.testing.assert_allclose(in_worker[0], got, rtol=1e-5)


def test_frame_uploader_on_the_cpu_is_a_plain_conversion():
    rgb = _rgb(TUM_RGB[0])
    uploaded = torch_preprocessing.FrameUploader("cpu")(rgb)
    assert uploaded.shape == (1, 3, *rgb.shape[:2]) and uploaded.dtype == torch.uint8
    np.testing.assert_array_equal(uploaded[0].permute(1, 2, 0).numpy(), rgb)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        torch_preprocessing.FrameUploader("cpu")(rgb[..., 0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
def test_frame_uploader_reuses_its_pinned_buffer_without_corrupting_frames():
    uploader = torch_preprocessing.FrameUploader("cuda:0")
    frames = [_rgb(path) for path in TUM_RGB[:3]]
    uploaded = [uploader(rgb) for rgb in frames]  # each overwrites the one pinned buffer after the last copy
    buffer = uploader._host.data_ptr()
    for rgb, tensor in zip(frames, uploaded, strict=True):
        np.testing.assert_array_equal(tensor[0].permute(1, 2, 0).cpu().numpy(), rgb)
    uploader(frames[0])
    assert uploader._host.data_ptr() == buffer


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_engine_gives_depth_std_like_the_cpu_engine(checkpoint, precision):
    cpu = TorchEngine(str(checkpoint), device="cpu")
    gpu = TorchEngine(str(checkpoint), precision=precision, device="cuda:0", cuda_graphs=True)
    rgb = _rgb(KITTI_RGB[1])
    depth_ref, std_ref = cpu.estimate_with_std(rgb, (375, 1242))
    for _ in range(2):  # second call replays the captured graph (depth and std as one static output)
        depth, std = gpu.estimate_with_std(rgb, (375, 1242))
    tolerance = 1e-3 if precision == "fp32" else 2e-2
    assert np.mean(np.abs(depth - depth_ref) / depth_ref) < tolerance
    assert np.mean(np.abs(std - std_ref) / std_ref) < tolerance
    np.testing.assert_allclose(gpu.estimate(rgb, (375, 1242)), depth, rtol=1e-5)


def test_cpu_engine_gives_depth_std_with_the_scale_of_the_sibling_onnx(checkpoint, tmp_path):
    """depth_std from the checkpoint's network, scaled by the uncertainty_scale stamped into the ONNX beside it."""
    import shutil

    import onnx

    folder = tmp_path / "stamped"
    folder.mkdir()
    shutil.copy(checkpoint, folder / "lacdepth.pt")
    graph = onnx.load(str(checkpoint.with_suffix(".onnx")))
    entry = graph.metadata_props.add()
    entry.key, entry.value = "uncertainty_scale", "0.5"
    onnx.save(graph, str(folder / "lacdepth.onnx"))
    plain = TorchEngine(str(checkpoint), device="cpu")
    scaled = TorchEngine(str(folder / "lacdepth.pt"), device="cpu")
    assert plain.info.has_std and scaled.info.uncertainty_scale == 0.5
    rgb = _rgb(TUM_RGB[0])
    depth, std = plain.estimate_with_std(rgb, (120, 160))
    depth_s, std_s = scaled.estimate_with_std(rgb, (120, 160))
    assert np.array_equal(depth, depth_s) and np.allclose(std_s, 0.5 * std, rtol=1e-6) and np.all(std > 0)
    assert np.array_equal(depth, plain.estimate(rgb, (120, 160)))
