"""The layer rules of docs/architecture.md, checked on every module's imports (parsed, nothing imported).

Each folder of depth_estimation_ros/ is a layer; a module may import its own layer and the layers listed for it in
``MAY_IMPORT`` (function-level imports included). ROS client libraries and message packages are imported by ros/
only; the heavy inference libraries stay out of the per-frame maths, message, stream and install layers.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "depth_estimation_ros"
TRAINING = REPO / "training"

# layer -> the package's layers its modules may import (besides their own); docs/architecture.md draws the same
MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),
    "resources": {"errors"},
    "onnx_contract": {"errors"},
    "frame": {"errors"},
    "stream": {"errors"},
    "messages": {"errors", "frame"},
    "data": {"errors", "frame", "messages", "resources"},
    "networks": {"errors", "frame", "data", "onnx_contract"},
    "engines": {"errors", "frame", "messages", "data", "resources", "onnx_contract", "networks"},
    "pipeline": {"errors", "frame", "engines"},
    "evaluation": {"errors", "frame", "messages", "data", "resources", "onnx_contract", "engines", "pipeline"},
    "ros": {"errors", "frame", "messages", "data", "resources", "stream", "engines", "pipeline"},
    "benchmarks": {"errors", "frame", "messages", "data", "resources", "onnx_contract", "networks", "engines",
                   "pipeline", "training"},
}
# (module, imported module): the documented exceptions (docs/architecture.md says why)
EXCEPTIONS = {
    # depth-export stamps the engine self-test's reference: the fp32 ONNX Runtime depth of the exported graph
    ("depth_estimation_ros.networks.export", "depth_estimation_ros.engines.self_test_reference"),
}
ROS_LIBRARIES = {"rclpy", "rcl_interfaces", "launch", "launch_ros", "cv_bridge", "sensor_msgs_py", "message_filters",
                 "image_geometry", "tf2_ros", "rosidl_runtime_py"}
INFERENCE_LIBRARIES = {"torch", "torchvision", "timm", "onnxruntime", "tensorrt", "pycuda", "modelopt"}
NO_INFERENCE_LAYERS = {"errors", "resources", "onnx_contract", "frame", "stream", "messages", "data", "pipeline"}


def _module_name(path: Path) -> str:
    if path.is_relative_to(TRAINING):
        parts = ("depth_estimation_training",) + path.relative_to(TRAINING).with_suffix("").parts
    else:
        parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[str]:
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    return _parse_imports(path.read_text(), package)


def _parse_imports(source: str, package: str) -> list[str]:
    """Every module name an import statement in ``source`` names (relative imports resolved against package)."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names.append(base)
            if node.module is None or node.level:  # from . import x / from .pkg import x: x may be a module
                names += [f"{base}.{alias.name}" for alias in node.names]
    return names


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "depth_estimation_training":
        return "training"
    if parts[0] != "depth_estimation_ros" or len(parts) < 2:
        return None
    return parts[1]


def _is_ros(module: str) -> bool:
    top = module.split(".")[0]
    return top in ROS_LIBRARIES or top.endswith("_msgs") or top.endswith("_srvs")


PACKAGE_FILES = sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")
TRAINING_FILES = sorted(TRAINING.rglob("*.py"))


def test_every_module_belongs_to_a_layer():
    """Nothing but the package marker and the exception root directly under depth_estimation_ros/."""
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "errors.py")]
    assert loose == [], f"modules directly under depth_estimation_ros/: {loose}; put each in its layer's folder"
    folders = {p.parent.relative_to(PACKAGE).parts[0] for p in PACKAGE_FILES if p.parent != PACKAGE}
    assert folders <= set(MAY_IMPORT), f"folders without a layer rule: {folders - set(MAY_IMPORT)}"


def test_layers_import_only_the_layers_below_them():
    violations = []
    for path in PACKAGE_FILES:
        module = _module_name(path)
        layer = _layer(module)
        allowed = MAY_IMPORT[layer] | {layer}
        for name in _imports(path):
            target = _layer(name)
            if target is not None and target not in allowed and (module, name) not in EXCEPTIONS:
                violations.append(f"{module} imports {name} ({layer} may import {sorted(allowed)})")
    assert violations == [], "\n".join(violations)


def test_only_ros_imports_ros_libraries():
    offenders = [f"{_module_name(p)} imports {name}" for p in PACKAGE_FILES + TRAINING_FILES
                 if _layer(_module_name(p)) != "ros" for name in _imports(p) if _is_ros(name)]
    assert offenders == [], "\n".join(offenders)


def test_per_frame_layers_import_no_inference_library():
    offenders = [f"{_module_name(p)} imports {name}" for p in PACKAGE_FILES
                 if _layer(_module_name(p)) in NO_INFERENCE_LAYERS for name in _imports(p)
                 if name.split(".")[0] in INFERENCE_LIBRARIES]
    assert offenders == [], "\n".join(offenders)


def test_only_data_opens_bags():
    """Bags are read and written by data/ (bag_reading.bag_target: one place a path becomes what rosbags opens)."""
    offenders = [f"{_module_name(p)} imports {name}" for p in PACKAGE_FILES + TRAINING_FILES
                 if _layer(_module_name(p)) != "data" for name in _imports(p) if name.split(".")[0] == "rosbags"]
    assert offenders == [], "\n".join(offenders)


def test_training_never_imports_the_node_layer():
    offenders = [f"{_module_name(p)} imports {name}" for p in TRAINING_FILES for name in _imports(p)
                 if _layer(name) in ("ros", "benchmarks")]
    assert offenders == [], "\n".join(offenders)


def test_setup_lists_every_package_folder():
    setup = (REPO / "setup.py").read_text()
    listed = {"depth_estimation_ros" + ("." + m if m else "") for m in re.findall(r'f"\{PACKAGE\}\.?([\w.]*)"', setup)}
    listed.add("depth_estimation_ros")
    folders = {_module_name(p) for p in PACKAGE.rglob("__init__.py")}
    assert folders <= listed, f"package folders missing from setup.py's packages: {sorted(folders - listed)}"


@pytest.mark.parametrize("source, expected", [
    ("import rclpy\n", ["rclpy"]),
    ("def f():\n    from sensor_msgs.msg import Image\n", ["sensor_msgs.msg"]),
    ("from . import node_wiring\n", ["depth_estimation_ros.ros", "depth_estimation_ros.ros.node_wiring"]),
])
def test_import_parser_sees_top_level_function_level_and_relative_imports(source, expected):
    assert _parse_imports(source, "depth_estimation_ros.ros") == expected
