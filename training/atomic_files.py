"""Write files atomically: a temporary file in the destination folder, then os.replace.

A crash or a kill mid-write leaves the previous file intact, never a truncated one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """Call write(tmp_path) then move tmp_path onto path. Returns path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomically(path: Path, data: Any) -> Path:
    """json.dump with indentation, atomically."""
    return write_atomically(path, lambda p: p.write_text(json.dumps(data, indent=1) + "\n"))
