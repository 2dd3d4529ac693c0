"""create_engine backend choice and the depth-build-engine CLI (--onnx-only runs here; TensorRT builds where it
imports)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from shared_data import DATA

from depth_estimation_ros.engines import factory
from depth_estimation_ros.engines.base import EngineError
from depth_estimation_ros.engines.build_engine import main
from depth_estimation_ros.errors import EXIT_ACCURACY, EXIT_CONFIGURATION, EXIT_INPUT, EXIT_MODEL, EXIT_OK

TUM_RGB = DATA / "tum_fr3_cabinet_keyframes" / "rgb"
HEIGHT, WIDTH = 64, 96
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available()


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    from depth_estimation_ros.networks.checkpoint import save_depth_checkpoint
    from depth_estimation_ros.networks.export import export_onnx
    from depth_estimation_ros.networks.factory import DepthNetworkConfig, build_depth_network

    torch.manual_seed(0)
    cfg = DepthNetworkConfig("baseline", "efficientnet_lite0", pretrained=True)
    model = build_depth_network(cfg).eval()
    folder = tmp_path_factory.mktemp("factory")
    save_depth_checkpoint(folder / "ckpt" / "baseline.pt", model, cfg, extra={"input_height": HEIGHT,
                                                                              "input_width": WIDTH})
    return {"onnx": export_onnx(model, cfg, folder / "baseline.onnx", HEIGHT, WIDTH),
            "pt": folder / "ckpt" / "baseline.pt"}


def test_choose_backend_and_unknown_values():
    assert factory.choose_backend("onnxruntime") == "onnxruntime"
    with pytest.raises(EngineError, match="unknown"):
        factory.choose_backend("openvino")
    with pytest.raises(EngineError, match="precision"):
        factory.create_engine("x.onnx", precision="bf16")
    with pytest.raises(EngineError, match="INT8 scope 'encoder' is unknown; choose one of decoder, all"):
        factory.create_engine("x.onnx", int8_scope="encoder")
    with pytest.raises(EngineError, match="INT8 float precision 'bf16' is unknown; choose one of auto, fp16, fp32"):
        factory.create_engine("x.onnx", int8_float="bf16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only choice; this machine has a GPU")
def test_auto_on_a_cpu_machine(models):
    onnx_engine = factory.create_engine(str(models["onnx"]), threads=1)
    assert onnx_engine.info.backend == "onnxruntime" and onnx_engine.info.device == "cpu"
    torch_engine = factory.create_engine(str(models["pt"]))  # a checkpoint runs in torch, here on the CPU
    assert (torch_engine.info.backend, torch_engine.info.device) == ("torch", "cpu")
    rgb = np.full((120, 160, 3), 90, np.uint8)
    a, b = onnx_engine.estimate(rgb, (120, 160)), torch_engine.estimate(rgb, (120, 160))
    np.testing.assert_allclose(a, b, rtol=1e-3)


@pytest.mark.skipif(HAS_TENSORRT, reason="checks the message shown where TensorRT is missing")
def test_tensorrt_requested_without_tensorrt_says_why(models):
    with pytest.raises(EngineError, match="TensorRT is not installed"):
        factory.create_engine(str(models["onnx"]), backend="tensorrt")
    assert main([str(models["onnx"]), "--precision", "fp16"]) == EXIT_MODEL


def test_cli_onnx_only_fp16_writes_a_checked_variant(models, tmp_path, capsys):
    out = tmp_path / "baseline.fp16.onnx"
    code = main([str(models["onnx"]), "--onnx-only", "--precision", "fp16", "--tool", "onnxruntime",
                 "--calibration", str(TUM_RGB), "--max-frames", "4", "--output", str(out)])
    printed = capsys.readouterr().out
    assert code == EXIT_OK, printed
    assert "passes the accuracy gate" in printed and out.is_file()
    assert {p.key: p.value for p in onnx.load(str(out)).metadata_props}["precision"] == "fp16"
    engine = factory.create_engine(str(out), backend="onnxruntime", precision="fp16")
    assert engine.info.precision == "fp16"


def test_cli_gate_refusal_removes_the_variant_and_exits_5(models, tmp_path, capsys):
    out = tmp_path / "refused.int8.onnx"
    code = main([str(models["onnx"]), "--onnx-only", "--precision", "int8", "--tool", "onnxruntime",
                 "--calibration", str(TUM_RGB), "--max-frames", "4", "--accuracy-bound", "1e-9",
                 "--output", str(out)])
    assert code == EXIT_ACCURACY == 5 and not out.exists()
    assert "FAILS the accuracy gate" in capsys.readouterr().out


def test_cli_bad_input_and_options_exit_with_their_codes(models, tmp_path, capsys):
    assert main([str(tmp_path / "missing.onnx"), "--onnx-only"]) == EXIT_INPUT
    assert main([str(models["onnx"]), "--onnx-only", "--precision", "int8"]) == EXIT_CONFIGURATION
    assert main([str(models["onnx"]), "--onnx-only", "--precision", "fp32"]) == EXIT_CONFIGURATION
    assert main([str(models["onnx"]), "--onnx-only", "--precision", "int8",
                 "--calibration", str(tmp_path)]) == EXIT_INPUT
    assert "has no images" in capsys.readouterr().err
