"""Write files atomically: the package's one helper (depth_estimation_ros.data.atomic_files: a temporary file in the
destination folder, named for the sweep of a killed writer's leftovers, then os.replace), and JSON on top of it.

A crash or a kill mid-write leaves the previous file intact, never a truncated one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from depth_estimation_ros.data.atomic_files import write_atomically

__all__ = ["write_atomically", "write_json_atomically"]


def write_json_atomically(path: Path, data: Any) -> Path:
    """json.dump with indentation, atomically."""
    return write_atomically(path, lambda p: p.write_text(json.dumps(data, indent=1) + "\n"))
