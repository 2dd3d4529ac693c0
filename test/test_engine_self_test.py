"""Engine start-up self-test: the reference each model carries, and what the test catches (real ONNX Runtime and
torch engines; corrupted models from self_test_models)."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from self_test_models import export_small_lacdepth, nonfinite_pixel_model, wrong_weights_model

from depth_estimation_ros.data.reference_frame import load_reference_frame
from depth_estimation_ros.engines import create_engine
from depth_estimation_ros.engines.accuracy_gate import DEFAULT_ABS_REL_BOUND
from depth_estimation_ros.engines.onnxruntime_engine import OnnxRuntimeEngine
from depth_estimation_ros.engines.self_test import (
    FAILED,
    PASSED,
    SKIPPED,
    SelfTestError,
    checked_engine,
    compare_with_reference,
    run_self_test,
)
from depth_estimation_ros.engines.self_test_reference import (
    REFERENCE_KEY,
    block_means,
    block_size,
    read_reference,
)
from depth_estimation_ros.engines.self_test_reference import (
    main as stamp_main,
)
from depth_estimation_ros.resources.model_registry import BUNDLED_MODELS, resolve_model


def graph_digest(path) -> str:
    return hashlib.sha256(onnx.load(str(path)).graph.SerializeToString()).hexdigest()


@pytest.mark.parametrize("name", sorted(BUNDLED_MODELS))
def test_bundled_models_carry_a_small_reference_and_pass(name):
    path = resolve_model(name)
    reference = read_reference(path)
    assert reference is not None, f"{path} has no {REFERENCE_KEY}: run depth-stamp-reference on it"
    stored = next(p.value for p in onnx.load(path, load_external_data=False).metadata_props if p.key == REFERENCE_KEY)
    assert len(stored) < 8000  # small: block means, not the depth image
    assert reference["reference_engine"]["backend"] == "onnxruntime" and "tum_fr3_cabinet" in \
        reference["frame"]["source"]
    result = run_self_test(OnnxRuntimeEngine(path), path)
    assert result.status == PASSED and result.abs_rel < 1e-5 and "bit-identical" in result.message


def test_block_means_and_block_size():
    depth = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_allclose(block_means(depth, 2), [[2.5, 4.5], [10.5, 12.5]])
    assert block_size(96, 320) == 8 and block_size(192, 256) == 8 and block_size(32, 32) == 1
    assert (96 // block_size(96, 320)) * (320 // block_size(96, 320)) <= 1024


def test_comparison_bound_and_nonfinite():
    depth = np.full((16, 16), 4.0, np.float32)
    reference = {"output_size": [16, 16], "block": 8, "grid": [2, 2], "depth_blocks": [4.0] * 4}
    assert compare_with_reference(depth, reference, 0.01)[0]
    assert not compare_with_reference(depth * 1.02, reference, 0.01)[0]  # 2 % off, bound 1 %
    assert compare_with_reference(depth * 1.02, reference, 0.03)[0]
    inf = depth.copy()
    inf[3, 3] = np.inf
    passed, _, nonfinite, detail = compare_with_reference(inf, reference, 1.0)  # any bound: Inf fails
    assert not passed and nonfinite == 1 and "NaN/Inf" in detail
    passed, _, _, detail = compare_with_reference(np.ones((8, 8), np.float32), reference, 0.01)
    assert not passed and "another model" in detail


def test_stamping_keeps_the_graph_and_reproduces_the_reference(tmp_path):
    source = resolve_model("lacdepth")
    copy = tmp_path / "model.onnx"
    model = onnx.load(source)
    kept = [p for p in model.metadata_props if p.key != REFERENCE_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, copy)
    assert read_reference(copy) is None
    result = run_self_test(OnnxRuntimeEngine(str(copy)), str(copy))
    assert result.status == SKIPPED and "depth-stamp-reference" in result.message
    assert stamp_main([str(copy)]) == 0
    assert graph_digest(copy) == graph_digest(source)  # weights and graph untouched
    assert read_reference(copy) == read_reference(source)  # deterministic: the same frame, the same depth
    assert stamp_main([str(copy)]) == 0  # re-runnable on a stamped model
    assert len([p for p in onnx.load(str(copy)).metadata_props if p.key == REFERENCE_KEY]) == 1


def test_wrong_weights_with_the_right_metadata_are_refused(tmp_path):
    path = wrong_weights_model(tmp_path / "wrong.onnx")
    result = run_self_test(OnnxRuntimeEngine(str(path)), str(path))
    assert result.status == FAILED and result.abs_rel > DEFAULT_ABS_REL_BOUND
    assert "onnxruntime fp32" in result.message and "onnxruntime 1." in result.message
    # fp32 ONNX Runtime is the fallback itself: nothing to fall back to
    with pytest.raises(SelfTestError, match="does not reproduce its own reference"):
        checked_engine(create_engine, str(path), on_fail="fallback", backend="onnxruntime")


def test_a_single_nan_pixel_fails(tmp_path):
    path = nonfinite_pixel_model(tmp_path / "nan.onnx")
    result = run_self_test(OnnxRuntimeEngine(str(path)), str(path), bound=1.0)
    assert result.status == FAILED and result.nonfinite == 1 and "NaN/Inf" in result.message
    assert result.diagnostics()["self_test.nonfinite_pixels"] == "1"


@pytest.fixture(scope="module")
def exported_small_lacdepth(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small_lacdepth")
    onnx_path, _, _ = export_small_lacdepth(folder)
    return onnx_path, folder


def test_depth_export_stamps_the_reference(exported_small_lacdepth):
    onnx_path, _ = exported_small_lacdepth
    reference = read_reference(onnx_path)
    assert reference["output_size"] == [64, 96] and reference["block"] == 4 and reference["grid"] == [16, 24]
    result = run_self_test(OnnxRuntimeEngine(str(onnx_path)), str(onnx_path))
    assert result.status == PASSED


@pytest.mark.parametrize("checkpoint", ["right", "wrong"])
def test_torch_engine_against_the_onnx_reference_and_fallback(exported_small_lacdepth, checkpoint):
    onnx_path, folder = exported_small_lacdepth
    model = folder / f"{checkpoint}_case.onnx"
    shutil.copy(onnx_path, model)
    shutil.copy(folder / f"{checkpoint}.pt", model.with_suffix(".pt"))
    args = dict(backend="torch", device="cpu")
    if checkpoint == "right":  # torch on the CPU agrees with the ONNX Runtime reference
        engine, results = checked_engine(create_engine, str(model), on_fail="refuse", **args)
        assert engine.info.backend == "torch" and [r.status for r in results] == [PASSED]
        assert results[0].abs_rel < 1e-3
        return
    # a checkpoint that does not belong to the ONNX: refused, or replaced by fp32 ONNX Runtime
    with pytest.raises(SelfTestError, match=r"torch fp32 engine .*on_self_test_fail:=fallback"):
        checked_engine(create_engine, str(model), on_fail="refuse", **args)
    engine, results = checked_engine(create_engine, str(model), on_fail="fallback", **args)
    assert engine.info.backend == "onnxruntime" and engine.info.precision == "fp32"
    assert [r.status for r in results] == [FAILED, PASSED] and "torch" in results[0].versions
    frame = load_reference_frame()
    assert np.all(np.isfinite(engine.estimate(frame.rgb)))


def test_reference_json_is_plain(exported_small_lacdepth):
    onnx_path, _ = exported_small_lacdepth
    text = next(p.value for p in onnx.load(str(onnx_path)).metadata_props if p.key == REFERENCE_KEY)
    assert json.loads(text)["format"] == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch CUDA engine)")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_torch_cuda_engine_passes_the_self_test(exported_small_lacdepth, precision):
    """GPU pre/post-processing, fp16 and CUDA graphs against the fp32 ONNX Runtime reference."""
    onnx_path, folder = exported_small_lacdepth
    model = folder / "cuda_case.onnx"
    shutil.copy(onnx_path, model)
    shutil.copy(folder / "right.pt", model.with_suffix(".pt"))
    engine, results = checked_engine(create_engine, str(model), on_fail="refuse", backend="torch",
                                     device="cuda:0", precision=precision)
    assert engine.info.device.startswith("cuda") and [r.status for r in results] == [PASSED]
    print(f"torch CUDA {precision} self-test abs_rel {results[0].abs_rel:.2e}")


def test_missing_sample_bag_skips_the_self_test_with_the_reason(tmp_path, monkeypatch):
    from depth_estimation_ros.engines import self_test

    missing = tmp_path / "not_installed"
    with pytest.raises(FileNotFoundError, match="not installed"):
        load_reference_frame(missing)
    monkeypatch.setattr(self_test, "load_reference_frame", lambda: load_reference_frame(missing))
    path = resolve_model("lacdepth")
    result = run_self_test(OnnxRuntimeEngine(path), path)
    assert result.status == SKIPPED and "not_installed" in result.message and "unchecked" in result.message
