"""The code base stays ruff-clean (rules in .ci/ruff.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is pinned in .ci/requirements.txt; run bash .ci/setup"
    result = subprocess.run([ruff, "check", "--config", str(REPO / ".ci" / "ruff.toml"), "depth_estimation_ros",
                             "training", "test", "launch", "setup.py"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_runs_on_python_3_10():
    """ROS 2 Humble and JetPack 6 (Ubuntu 22.04) ship Python 3.10: no standard-library API newer than that."""
    vermin = shutil.which("vermin", path=str(Path(sys.executable).parent)) or shutil.which("vermin")
    assert vermin, "vermin is pinned in .ci/requirements.txt; run bash .ci/setup"
    result = subprocess.run([vermin, "--target=3.10-", "--no-tips", "--eval-annotations", "--violations",
                             "depth_estimation_ros", "training", "test", "launch", "setup.py"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
