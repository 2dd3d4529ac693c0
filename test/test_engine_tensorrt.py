"""TensorRT backend: helpers everywhere; build, cache, gate and runtime where TensorRT and a GPU exist."""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from shared_data import DATA

from depth_estimation_ros.engines import engine_cache, onnx_precision, tensorrt_build, tensorrt_engine, tensorrt_prepare
from depth_estimation_ros.engines.base import EngineError
from depth_estimation_ros.engines.cuda_device import cuda_device_count, gpu_identity
from depth_estimation_ros.onnx_contract.depth_onnx import onnx_input_shape

HEIGHT, WIDTH = 64, 96
TRT_REASON = "TensorRT is not installed (no NVIDIA GPU / TensorRT wheels on this machine)"


def _has_tensorrt_gpu() -> bool:
    return importlib.util.find_spec("tensorrt") is not None and cuda_device_count() > 0


needs_tensorrt = pytest.mark.skipif(not _has_tensorrt_gpu(), reason=TRT_REASON)


@pytest.fixture(scope="module")
def model_onnx(tmp_path_factory) -> Path:
    import torch

    from depth_estimation_ros.networks.export import export_onnx
    from depth_estimation_ros.networks.factory import DepthNetworkConfig, build_depth_network

    torch.manual_seed(0)
    cfg = DepthNetworkConfig("lacdepth", "efficientnet_lite0", pretrained=True, num_bins=16, embed_channels=32)
    return export_onnx(build_depth_network(cfg), cfg, tmp_path_factory.mktemp("trt") / "lacdepth.onnx",
                       HEIGHT, WIDTH)


def test_major_version_detection():
    assert tensorrt_build.tensorrt_major_version("10.3.0.30") == 10
    assert tensorrt_build.tensorrt_major_version("11.4.0.106") == 11
    with pytest.raises(EngineError, match="not supported"):
        tensorrt_build.tensorrt_major_version("8.6.1")


def test_device_index_and_cache_dir(monkeypatch, tmp_path):
    assert tensorrt_build.device_index("cuda:1") == 1 and tensorrt_build.device_index("cuda") == 0
    with pytest.raises(EngineError, match="CUDA device"):
        tensorrt_build.device_index("cpu")
    monkeypatch.setenv("DEPTH_ENGINE_CACHE", str(tmp_path))
    assert tensorrt_prepare.default_cache_dir() == tmp_path


@pytest.mark.skipif(cuda_device_count() > 0, reason="checks the message shown where no GPU is visible")
def test_gpu_identity_without_a_gpu_names_the_problem():
    with pytest.raises(EngineError, match="no CUDA GPU found.*backend:=onnxruntime"):
        gpu_identity(0)


@pytest.mark.skipif(cuda_device_count() == 0, reason="needs a CUDA GPU (none visible to torch or pycuda here)")
def test_gpu_identity_names_the_gpu_and_rejects_a_missing_index():
    name, capability = gpu_identity(0)
    assert name and capability.count(".") == 1 and int(capability.split(".")[0]) >= 5
    with pytest.raises(EngineError, match="requested but this machine has"):
        gpu_identity(cuda_device_count())


def test_onnx_input_shape_is_the_static_export_shape(model_onnx, tmp_path):
    assert onnx_input_shape(model_onnx) == (1, 3, HEIGHT, WIDTH)


def test_int8_variant_is_reused_only_for_the_same_scope_and_calibration_frames(model_onnx, tmp_path):
    """The ONNX variant a TensorRT build starts from (no TensorRT needed to derive it)."""
    from depth_estimation_ros.engines.calibration_frames import load_image_folder

    frames = load_image_folder(DATA / "tum_fr3_cabinet_keyframes" / "rgb", HEIGHT, WIDTH, max_frames=6)

    def variant(scope: str, calibration) -> tuple[Path, int]:
        path = tensorrt_prepare._variant_onnx(model_onnx, "int8", tmp_path, calibration, "onnxruntime", scope)
        return path, path.stat().st_mtime_ns

    with pytest.raises(EngineError, match="needs calibration frames"):
        variant("decoder", None)
    path, first = variant("decoder", frames)
    metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert metadata["int8_scope"] == "decoder" and len(metadata["calibration_sha256"]) == 64
    assert metadata["int8_float_precision"] == "fp32"  # what the ONNX Runtime tool can do
    assert variant("decoder", frames)[1] == first  # same inputs: reused
    assert variant("decoder", None)[1] == first  # no new frames: the calibrated variant stands
    _, other_frames = variant("decoder", frames[:4])
    assert other_frames != first  # other calibration frames: re-quantized
    _, all_scope = variant("all", frames[:4])
    assert all_scope != other_frames
    assert {p.key: p.value for p in onnx.load(str(path)).metadata_props}["int8_scope"] == "all"


@pytest.mark.skipif(not onnx_precision.modelopt_available(), reason="nvidia-modelopt is not installed")
def test_int8_variant_is_tied_to_its_float_precision(model_onnx, tmp_path):
    from depth_estimation_ros.engines.calibration_frames import load_image_folder

    frames = load_image_folder(DATA / "tum_fr3_cabinet_keyframes" / "rgb", HEIGHT, WIDTH, max_frames=4)

    def variant(float_precision):
        path = tensorrt_prepare._variant_onnx(model_onnx, "int8", tmp_path, frames, "modelopt", "decoder",
                                             float_precision)
        metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        return metadata["int8_float_precision"], path.stat().st_mtime_ns

    default, first = variant(None)
    assert default == "fp16" and variant("fp16")[1] == first  # ModelOpt's default is fp16: the same variant
    assert variant("fp32")[0] == "fp32"  # another float precision: re-quantized, never the fp16 file reused


@pytest.mark.skipif(_has_tensorrt_gpu(), reason="checks the message shown where TensorRT is missing")
def test_prepare_without_tensorrt_names_the_reason(model_onnx):
    with pytest.raises(EngineError, match="TensorRT is not installed"):
        tensorrt_prepare.prepare_engine(model_onnx)


@needs_tensorrt
def test_fp32_build_caches_and_matches_onnxruntime(model_onnx, tmp_path):
    from depth_estimation_ros.engines.onnxruntime_engine import OnnxRuntimeEngine

    first = tensorrt_prepare.prepare_engine(model_onnx, "fp32", cache_dir=tmp_path)
    assert first.built and engine_cache.sidecar_path(first.engine_path).is_file()
    second = tensorrt_prepare.prepare_engine(model_onnx, "fp32", cache_dir=tmp_path)
    assert not second.built and second.engine_bytes == first.engine_bytes
    sidecar = engine_cache.sidecar_path(first.engine_path)
    record = json.loads(sidecar.read_text())
    record["key"]["tensorrt_version"] = "0.0.0"
    sidecar.write_text(json.dumps(record))
    assert tensorrt_prepare.prepare_engine(model_onnx, "fp32", cache_dir=tmp_path).built  # mismatch -> rebuild
    engine = tensorrt_engine.TensorRTEngine(tensorrt_prepare.prepare_engine(model_onnx, "fp32", cache_dir=tmp_path))
    batch = np.random.default_rng(0).random((1, 3, HEIGHT, WIDTH), dtype=np.float32)
    reference = OnnxRuntimeEngine(str(model_onnx)).infer(batch)
    np.testing.assert_allclose(engine.infer(batch), reference, rtol=1e-2)
    assert engine.estimate(np.full((100, 150, 3), 100, np.uint8), (100, 150)).shape == (100, 150)
    # the node loads the engine in its main thread and runs it in a worker thread
    in_worker: list[np.ndarray] = []
    worker = threading.Thread(target=lambda: in_worker.append(engine.infer(batch)))
    worker.start()
    worker.join()
    np.testing.assert_allclose(in_worker[0], reference, rtol=1e-2)
    engine.close()


@needs_tensorrt
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_reduced_precision_is_gated(model_onnx, tmp_path, precision):
    from depth_estimation_ros.engines.accuracy_gate import AccuracyGateError
    from depth_estimation_ros.engines.calibration_frames import load_image_folder

    frames = load_image_folder(DATA / "tum_fr3_cabinet_keyframes" / "rgb", HEIGHT, WIDTH, max_frames=8)
    with pytest.raises(AccuracyGateError):
        tensorrt_prepare.prepare_engine(model_onnx, precision, cache_dir=tmp_path, calibration_frames=frames,
                                       accuracy_bound=1e-9)
    fallback = tensorrt_prepare.prepare_engine(model_onnx, precision, cache_dir=tmp_path, calibration_frames=frames,
                                              accuracy_bound=1e-9, on_gate_fail="fallback")
    assert fallback.precision == "fp32" and fallback.gate is not None and not fallback.gate.passed
    loose = tensorrt_prepare.prepare_engine(model_onnx, precision, cache_dir=tmp_path, calibration_frames=frames,
                                           accuracy_bound=0.5)
    assert loose.precision == precision and loose.gate.passed


@needs_tensorrt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_depth_std_passes_through_tensorrt(model_onnx, tmp_path, precision):
    """The second output depth_std is bound by name and returned (infer and the GPU estimate path), close to ONNX
    Runtime's; the fp16 build keeps the std's computation in float32 (onnx_precision)."""
    from depth_estimation_ros.engines.calibration_frames import load_image_folder
    from depth_estimation_ros.engines.onnxruntime_engine import OnnxRuntimeEngine

    frames = load_image_folder(DATA / "tum_fr3_cabinet_keyframes" / "rgb", HEIGHT, WIDTH, max_frames=4)
    engine = tensorrt_engine.TensorRTEngine(tensorrt_prepare.prepare_engine(
        model_onnx, precision, cache_dir=tmp_path, calibration_frames=frames, accuracy_bound=0.5))
    reference = OnnxRuntimeEngine(str(model_onnx))
    assert engine.info.has_std
    for frame in frames:
        _, std = engine.infer_with_std(frame[None])
        _, expected = reference.infer_with_std(frame[None])
        assert np.all(np.isfinite(std)) and np.median(np.abs(std - expected) / expected) < 0.02
    rgb = (frames[0].transpose(1, 2, 0) * 255).astype(np.uint8)
    depth, std = engine.estimate_with_std(rgb, (100, 150))
    assert depth.shape == std.shape == (100, 150) and np.all(std > 0)
    engine.close()
