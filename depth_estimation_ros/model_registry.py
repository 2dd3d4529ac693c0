"""Resolve the node's ``model`` parameter (a bundled model name or a file path) to a model file."""

from __future__ import annotations

import os
from importlib import resources

BUNDLED_MODELS = {
    # name -> file in depth_estimation_ros/models (models/README.md says how each was trained)
    "lacdepth": "lacdepth_lite0.onnx",  # outdoor: KITTI odometry 00 frames 0-159
    "lacdepth_indoor": "lacdepth_lite0_indoor.onnx",  # indoor: TUM fr3 cabinet keyframes 0-39
    "gatdepth": "gatdepth_lite0.onnx",
}


def bundled_models_dir() -> str:
    """share/depth_estimation_ros/models of a colcon install, else the models folder inside the Python package."""
    try:
        from ament_index_python.packages import get_package_share_directory

        share = os.path.join(get_package_share_directory("depth_estimation_ros"), "models")
        if os.path.isdir(share):
            return share
    except (ImportError, LookupError, OSError):
        pass
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
