"""The package builds with colcon (ament_python) and installs with pip, with its data files in place."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("package.xml", "setup.py", "setup.cfg", "resource", "depth_estimation_ros", "launch", "config", "training")


def _copy_sources(destination: Path) -> None:
    destination.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=ignore)
        else:
            shutil.copy2(source, destination / name)


def test_colcon_build_installs_launch_config_and_models(tmp_path):
    colcon = REPO / ".venv-colcon" / "bin" / "colcon"
    assert colcon.exists(), "colcon is installed into .venv-colcon by .ci/setup; run bash .ci/setup"
    _copy_sources(tmp_path / "src" / "depth_estimation_ros")
    result = subprocess.run([str(colcon), "build", "--packages-select", "depth_estimation_ros"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    prefix = tmp_path / "install" / "depth_estimation_ros"
    share = prefix / "share" / "depth_estimation_ros"
    for relative in ("package.xml", "launch/depth_estimation.launch.py", "config/lacdepth.yaml",
                     "config/gatdepth.yaml", "config/lacdepth_indoor.yaml", "config/fastdds_large_data.xml",
                     "models/lacdepth_lite0.onnx", "models/lacdepth_lite0_indoor.onnx", "models/gatdepth_lite0.onnx"):
        assert (share / relative).is_file(), relative
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "depth_estimation_ros").is_file()
    executables = {p.name for p in (prefix / "lib" / "depth_estimation_ros").iterdir()}
    assert {"depth_estimation_node", "build_engine", "evaluate", "play_bag"} <= executables
    # the installed package resolves its bundled model through the ament index (share/), as `ros2 run` would
    site = next((prefix / "lib").glob("python3*/site-packages"))
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix), PYTHONPATH=str(site))
    probe = subprocess.run([sys.executable, "-c",
                            "from depth_estimation_ros.resources.model_registry import resolve_model;"
                            "print(resolve_model('lacdepth'))"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == str(share / "models" / "lacdepth_lite0.onnx")


def test_pip_install_carries_package_data(tmp_path):
    """A plain (non-editable) pip install: package data inside the package, config/ and launch/ in
    <prefix>/share/depth_estimation_ros, where the demo and the Fast DDS profile lookup find them."""
    _copy_sources(tmp_path / "src")
    prefix = tmp_path / "prefix"
    # --ignore-installed: without it pip first uninstalls the package from the running environment (the editable
    # install the other tests import), even though it installs into another prefix
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet",
                             "--ignore-installed", "--prefix", str(prefix), str(tmp_path / "src")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    target = next((prefix / "lib").glob("python3*/site-packages"))
    package = target / "depth_estimation_ros"
    for relative in ("models/lacdepth_lite0.onnx", "models/gatdepth_lite0.onnx", "sample/README.md",
                     "networks/tensorrt10_onnx_operators.json"):
        assert (package / relative).is_file(), relative
    assert any((package / "sample" / "tum_fr3_cabinet").glob("*.mcap"))
    assert (target / "depth_estimation_training" / "configs").is_dir()
    share = prefix / "share" / "depth_estimation_ros"
    env = {k: v for k, v in os.environ.items() if k not in ("AMENT_PREFIX_PATH", "PYTHONPATH")}
    env["PYTHONPATH"] = str(target)
    probe = subprocess.run([sys.executable, "-c", "from depth_estimation_ros.ros.demo import config_dir;"
                            "from depth_estimation_ros.ros.ros_environment import fastdds_profile_path;"
                            "print(config_dir()); print(fastdds_profile_path())"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [str(share / "config"), str(share / "config" / "fastdds_large_data.xml")]
    still = subprocess.run([sys.executable, "-c", "import depth_estimation_training"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert still.returncode == 0, "installing into another prefix removed this environment's install"
