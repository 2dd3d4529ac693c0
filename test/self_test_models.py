"""Corrupted copies of the bundled LacDepth ONNX for the engine self-test: its metadata (and so its stored
reference) kept, its output made wrong in the ways a broken engine is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from depth_estimation_ros.resources.model_registry import resolve_model

SMALL_SIZE = (64, 96)


def _bundled() -> onnx.ModelProto:
    return onnx.load(resolve_model("lacdepth"))


def wrong_weights_model(path: Path, seed: int = 0, spread: float = 0.3) -> Path:
    """Every convolution kernel scaled by its own random factor in [1 - spread, 1 + spread]; metadata unchanged."""
    model = _bundled()
    rng = np.random.default_rng(seed)
    for i, tensor in enumerate(model.graph.initializer):
        array = numpy_helper.to_array(tensor)
        if array.ndim == 4 and array.dtype == np.float32:
            scaled = array * np.float32(rng.uniform(1 - spread, 1 + spread))
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(scaled, tensor.name))
    onnx.save(model, path)
    return path


def nonfinite_pixel_model(path: Path, value: float = float("nan"), pixel: tuple[int, int] = (5, 7)) -> Path:
    """The depth output multiplied by a constant that is 1 everywhere except ``value`` at one pixel."""
    model = _bundled()
    graph = model.graph
    output = next(o for o in graph.output if o.name == "depth")
    dims = [d.dim_value for d in output.type.tensor_type.shape.dim]
    for node in graph.node:
        node.output[:] = ["depth_clean" if name == "depth" else name for name in node.output]
        node.input[:] = ["depth_clean" if name == "depth" else name for name in node.input]
    mask = np.ones([1, 1, dims[2], dims[3]], np.float32)
    mask[0, 0, pixel[0], pixel[1]] = value
    graph.initializer.append(numpy_helper.from_array(mask, "nonfinite_mask"))
    graph.node.append(helper.make_node("Mul", ["depth_clean", "nonfinite_mask"], ["depth"], name="nonfinite_mul"))
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def export_small_lacdepth(folder: Path) -> tuple[Path, Path, Path]:
    """A small random-init LacDepth exported by export_onnx (which stamps the reference), its checkpoint
    (right.pt) and the checkpoint of another random init (wrong.pt): (onnx, right, wrong)."""
    import torch

    from depth_estimation_ros.networks.checkpoint import save_depth_checkpoint
    from depth_estimation_ros.networks.export import export_onnx
    from depth_estimation_ros.networks.factory import DepthNetworkConfig, build_depth_network

    height, width = SMALL_SIZE
    cfg = DepthNetworkConfig(network="lacdepth", encoder="efficientnet_lite0", pretrained=False)
    size = {"input_height": height, "input_width": width}
    torch.manual_seed(0)
    model = build_depth_network(cfg).eval()
    onnx_path = export_onnx(model, cfg, folder / "small.onnx", height, width)
    right = save_depth_checkpoint(folder / "right.pt", model, cfg, size)
    torch.manual_seed(1)
    wrong = save_depth_checkpoint(folder / "wrong.pt", build_depth_network(cfg).eval(), cfg, size)
    return onnx_path, right, wrong
