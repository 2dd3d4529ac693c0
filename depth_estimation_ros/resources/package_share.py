"""Where the package's non-Python files (config/, launch/) are, however it was installed.

- colcon / ament: share/depth_estimation_ros, through the ament index;
- source tree (``pip install -e``, the tests): the repository root, recognised by its package.xml;
- plain pip install (venv, ``--prefix``, ``--user``): setup.py's data_files land in <prefix>/share/depth_estimation_ros,
  the prefix being four levels above the package folder (<prefix>/lib/pythonX.Y/site-packages/depth_estimation_ros/).
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = "depth_estimation_ros"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the installed or source depth_estimation_ros/ folder


def ament_share_directory() -> Path | None:
    """share/depth_estimation_ros of a colcon install, through the ament index; None without one."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except (ImportError, LookupError, OSError):  # no ament index, or this package is not in it
        return None


def share_directories() -> list[Path]:
    """Candidate share folders, most specific first (see the module docstring)."""
    ament = ament_share_directory()
    candidates: list[Path] = [ament] if ament is not None else []
    if (PACKAGE_DIR.parent / "package.xml").is_file():
        candidates.append(PACKAGE_DIR.parent)
    if len(PACKAGE_DIR.parents) > 3:
        candidates.append(PACKAGE_DIR.parents[3] / "share" / PACKAGE)
    return candidates


def find_share_path(relative: str) -> Path | None:
    """``<share>/<relative>`` (file or folder) from the first candidate that has it, else None."""
    return next((d / relative for d in share_directories() if (d / relative).exists()), None)
