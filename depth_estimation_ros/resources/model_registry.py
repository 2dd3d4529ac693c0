"""Resolve the node's ``model`` parameter (a bundled model name or a file path) to a model file."""

from __future__ import annotations

import os
from importlib import resources

from depth_estimation_ros.resources.package_share import ament_share_directory

BUNDLED_MODELS = {
    # name -> file in depth_estimation_ros/models (models/README.md says how each was trained)
    "lacdepth": "lacdepth_lite0.onnx",  # outdoor: KITTI odometry 00, 07, 06, 01
    "lacdepth_indoor": "lacdepth_lite0_indoor.onnx",  # indoor: 7-Scenes redkitchen + TUM fr3 cabinet
    "gatdepth": "gatdepth_lite0.onnx",  # outdoor, as lacdepth
}


def bundled_models_dir() -> str:
    """share/depth_estimation_ros/models of a colcon install, else the models folder inside the Python package."""
    ament = ament_share_directory()
    if ament is not None and (ament / "models").is_dir():
        return str(ament / "models")
    return str(resources.files("depth_estimation_ros") / "models")


def resolve_model(model: str) -> str:
    """Return the path of a model file; raise FileNotFoundError naming the choices."""
    if model in BUNDLED_MODELS:
        path = os.path.join(bundled_models_dir(), BUNDLED_MODELS[model])
        if os.path.isfile(path):
            return path
        raise FileNotFoundError(
            f"bundled model '{model}' ({path}) is not installed; reinstall the package or pass a model file path"
        )
    path = os.path.expanduser(model)
    if os.path.isfile(path):
        return os.path.abspath(path)
    raise FileNotFoundError(
        f"model '{model}' is neither a bundled model ({', '.join(sorted(BUNDLED_MODELS))}) nor an existing file"
    )
