"""Files written atomically, and the sweep of the temporaries a killed writer leaves behind.

Every file-writing tool of the package (depth-train, depth-export, depth-build-engine, depth-eval) writes a file
to a temporary beside it and os.replace-s it into place, so a crash or a kill mid-write leaves the previous file
intact, never a truncated one. A SIGKILL still leaves the temporary (up to a whole checkpoint); its name carries
the writer's host and PID, ``.<name>.<host>-<pid>.<random>.tmp``, so the next start can tell a dead writer's
temporary from a live one of a running process and remove only the former (sweep_stale_temporaries). Scratch
folders in the system temporary directory are named the same way (temporary_directory) and swept alike.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

# a temporary of another host (shared file system), or of an older version without a PID in its name, is
# taken as stale once it has not been written for this long: its writer cannot be asked
UNVERIFIABLE_STALE_AFTER_S = 3600.0
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
_SCRATCH = "depth_estimation_ros"  # system temporary folders: .depth_estimation_ros.<host>-<pid>.<random>.tmp


def _temp_prefix(target: Path) -> str:
    return f".{target.name}.{_HOST}-{os.getpid()}."


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temporary_file_for(path: str | os.PathLike) -> Path:
    """A new empty temporary file beside ``path``, named with this host and PID, after sweeping the dead writers'
    temporaries of ``path``. The caller fills it and os.replace-s it onto path (removing it on failure);
    write_atomically does all of that."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temporaries([path])
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def write_atomically(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call write(tmp_path), fsync, then move tmp_path onto path (usual permissions, not mkstemp's 0600).

    The dead writers' temporaries of the same target are swept first. Returns path.
    """
    path = Path(path)
    tmp = temporary_file_for(path)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomically(path: str | os.PathLike, data: bytes) -> Path:
    return write_atomically(path, lambda tmp: tmp.write_bytes(data))


def _stale(entry: Path, target_name: str, now: float) -> bool:
    rest = entry.name[len(target_name) + 2:]  # after ".<name>."
    match = re.fullmatch(r"(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp", rest)
    if match and match["host"] == _HOST:
        return int(match["pid"]) != os.getpid() and not _process_alive(int(match["pid"]))
    # another host's temporary, or one of an older version (mkstemp's random part only): judged by its age
    if match or re.fullmatch(r"[A-Za-z0-9_]{8}\.tmp", rest):
        try:
            return now - entry.stat().st_mtime > UNVERIFIABLE_STALE_AFTER_S
        except FileNotFoundError:
            return False
    return False


def temporary_directory() -> tempfile.TemporaryDirectory:
    """A scratch folder in the system temporary directory (removed on exit), named with this host and PID so that
    sweep_on_start removes it when a kill prevented that."""
    return tempfile.TemporaryDirectory(prefix=f".{_SCRATCH}.{_HOST}-{os.getpid()}.", suffix=".tmp")


def _remove(entry: Path) -> bool:
    try:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    except FileNotFoundError:
        return False  # another process swept it first
    return True


def sweep_stale_temporaries(targets: Iterable[str | os.PathLike]) -> list[Path]:
    """Remove the temporaries of ``targets`` that no running writer owns; returns the removed paths.

    A temporary of this host is removed when the PID in its name is no process (never one of a running
    process); one of another host, or without a PID in its name (older versions), when it has not been written
    for UNVERIFIABLE_STALE_AFTER_S.
    """
    removed = []
    now = time.time()
    for target in targets:
        target = Path(target)
        if not target.parent.is_dir():
            continue
        prefix = f".{target.name}."
        for entry in target.parent.iterdir():
            if entry.name.startswith(prefix) and entry.name.endswith(".tmp") and _stale(entry, target.name, now) \
                    and _remove(entry):
                removed.append(entry)
    return removed


_TEMPORARY_NAME = re.compile(r"\.(?P<name>.+?)\.(?:[A-Za-z0-9-]+-\d+\.[A-Za-z0-9_]+|[A-Za-z0-9_]{8})\.tmp")


def sweep_stale_temporaries_in(folder: str | os.PathLike) -> list[Path]:
    """sweep_stale_temporaries for every target in ``folder`` that has a temporary there (a folder of several
    outputs: a training run, an engine cache, a depth-eval report folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    names = {m["name"] for m in (_TEMPORARY_NAME.fullmatch(e.name) for e in folder.iterdir()) if m}
    return sweep_stale_temporaries(folder / name for name in sorted(names))


def sweep_on_start(tool: str, targets: Iterable[str | os.PathLike] = (),
                   folders: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """What a file-writing tool calls when it starts: sweep its targets' and output folders' stale temporaries and
    the package's dead scratch folders in the system temporary directory, and say on stderr what was removed."""
    removed = sweep_stale_temporaries(targets)
    for folder in folders:
        removed += sweep_stale_temporaries_in(folder)
    removed += sweep_stale_temporaries([Path(tempfile.gettempdir()) / _SCRATCH])
    if removed:
        print(f"{tool}: removed {len(removed)} temporary file(s) left by killed runs: "
              f"{', '.join(str(p) for p in removed)}", file=sys.stderr)
    return removed
