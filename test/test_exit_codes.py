"""Every console script exits with the README's code for the kind of failure (depth_estimation_ros/errors.py):
2 input (here a missing file), 4 model (here a file that is not a model)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from depth_estimation_training.extract import main as extract_main
from depth_estimation_training.poses import main as poses_main
from depth_estimation_training.train import main as train_main
from depth_estimation_training.validation import main as validation_main

from depth_estimation_ros.data.dataset_bags import main as dataset_bags_main
from depth_estimation_ros.engines.build_engine import main as build_engine_main
from depth_estimation_ros.engines.self_test_reference import main as stamp_reference_main
from depth_estimation_ros.errors import (
    EXIT_CONFIGURATION,
    EXIT_INPUT,
    EXIT_MODEL,
    ConfigurationError,
    InputError,
    ModelError,
    exit_code,
)
from depth_estimation_ros.evaluation.cli import main as eval_main
from depth_estimation_ros.networks.depth_std_graph import main as depth_std_graph_main
from depth_estimation_ros.networks.export import main as export_main
from depth_estimation_ros.ros.demo import main as demo_main


@pytest.fixture
def paths(tmp_path):
    bad_onnx = tmp_path / "bad.onnx"
    bad_onnx.write_text("this is not an ONNX model")
    bad_checkpoint = tmp_path / "bad.pt"
    bad_checkpoint.write_text("this is not a checkpoint")
    return {"missing": str(tmp_path / "missing"), "missing_onnx": str(tmp_path / "missing.onnx"),
            "bad_onnx": str(bad_onnx), "bad_pt": str(bad_checkpoint), "out": str(tmp_path / "out"),
            "out_onnx": str(tmp_path / "out.onnx")}


def _exit(call) -> int:
    """A main() that returns its code or raises SystemExit with it."""
    try:
        return call()
    except SystemExit as stop:
        return stop.code


MISSING_FILE = {
    "depth-eval": lambda p: eval_main([p["missing"], "--no-progress", "--output-dir", p["out"]]),
    "depth-export": lambda p: export_main(["--checkpoint", p["missing"], "--height", "64", "--width", "64",
                                           "--output", p["out_onnx"]]),
    "depth-stamp-reference": lambda p: stamp_reference_main([p["missing_onnx"]]),
    "depth-build-engine": lambda p: build_engine_main([p["missing_onnx"], "--onnx-only"]),
    "depth-extract": lambda p: extract_main([p["missing"], "--out", p["out"]]),
    "depth-poses": lambda p: poses_main([p["missing"]]),
    "depth-train": lambda p: train_main([p["missing"], "--out", p["out"]]),
    "depth-demo": lambda p: demo_main(["--bag", p["missing"], "--output", p["out"]]),
    "dataset_bags": lambda p: dataset_bags_main(["tum", p["missing"], p["out"]]),
    "depth_std_graph": lambda p: depth_std_graph_main([p["missing_onnx"], p["out_onnx"]]),
    "validation": lambda p: validation_main([p["missing"], "--model", "lacdepth"]),
}
BAD_MODEL = {
    "depth-eval": lambda p: eval_main([p["missing"], "--model", p["bad_onnx"], "--no-progress"]),
    "depth-export": lambda p: export_main(["--checkpoint", p["bad_pt"], "--height", "64", "--width", "64",
                                           "--output", p["out_onnx"]]),
    "depth-stamp-reference": lambda p: stamp_reference_main([p["bad_onnx"]]),
    "depth-build-engine": lambda p: build_engine_main([p["bad_onnx"], "--onnx-only", "--tool", "onnxruntime"]),
    "depth_std_graph": lambda p: depth_std_graph_main([p["bad_onnx"], p["out_onnx"]]),
}


@pytest.mark.parametrize("tool", sorted(MISSING_FILE))
def test_a_missing_file_exits_2(tool, paths, capsys):
    assert _exit(lambda: MISSING_FILE[tool](paths)) == EXIT_INPUT == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("tool", sorted(BAD_MODEL))
def test_a_file_that_is_no_model_exits_4(tool, paths, capsys, shared_data):
    if tool == "depth-eval":  # an input that exists, so that the model is what fails
        paths["missing"] = str(shared_data / "tum_fr3_cabinet_keyframes")
    assert _exit(lambda: BAD_MODEL[tool](paths)) == EXIT_MODEL == 4
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_the_node_and_the_player_exit_with_the_same_codes(rclpy_context, paths):
    """Processes of their own: the node on a file that is not a model, the bag player on a missing bag."""
    node = subprocess.run([sys.executable, "-m", "depth_estimation_ros.ros.node", "--ros-args", "-r",
                           "__ns:=/t_exit_codes", "-p", f"model:={paths['bad_onnx']}"],
                          capture_output=True, text=True, timeout=120)
    assert node.returncode == EXIT_MODEL, node.stderr
    assert "is not an ONNX model" in node.stderr or "cannot load" in node.stderr
    player = subprocess.run([sys.executable, "-m", "depth_estimation_ros.ros.bag_player", paths["missing"]],
                            capture_output=True, text=True, timeout=120)
    assert player.returncode == EXIT_INPUT, player.stderr
    assert "Traceback" not in player.stderr


@pytest.mark.parametrize("error, code", [
    (InputError("x"), 2), (FileNotFoundError("x"), 2), (ValueError("x"), 2), (ConfigurationError("x"), 3),
    (ModelError("x"), 4), (RuntimeError("x"), 1),
])
def test_exit_code_by_kind(error, code):
    assert exit_code(error) == code
    assert EXIT_CONFIGURATION == 3
