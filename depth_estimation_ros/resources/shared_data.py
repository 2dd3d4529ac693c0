"""Where the benchmarks and the development scripts find the real data (KITTI, TUM) they read."""

from __future__ import annotations

import os
from pathlib import Path

from depth_estimation_ros.resources.package_share import PACKAGE_DIR


def shared_data_dir() -> Path:
    """$DEPTH_SHARED_DATA, else shared/data beside the source checkout (the development layout: the repository and
    shared/ side by side)."""
    if os.environ.get("DEPTH_SHARED_DATA"):
        return Path(os.environ["DEPTH_SHARED_DATA"])
    return PACKAGE_DIR.parent.parent / "shared" / "data"
