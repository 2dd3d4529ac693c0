"""The real test data: shared/data beside the repository (or $DEPTH_SHARED_DATA)."""

from __future__ import annotations

import os
from pathlib import Path

DATA = Path(os.environ.get("DEPTH_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
