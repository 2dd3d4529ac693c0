"""Training state checkpoints: model(s), optimiser, scheduler, AMP scaler, step and every RNG state, written
atomically, so that --resume continues exactly (the next step's loss equals the uninterrupted run's).

Everything in a checkpoint is a tensor or a plain type (the RNG states included), so it is read with
torch.load(weights_only=True): a crafted .pt cannot run code when resumed.
"""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path

import numpy as np
import torch
from depth_estimation_training.atomic_files import write_atomically

from depth_estimation_ros.networks.checkpoint import unpickling_reason

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct

# checkpoints of earlier versions hold numpy's RNG state as a pickled uint32 ndarray: rebuilding an ndarray runs no
# code of the file's choosing (torch documents these for weights_only loading of numpy arrays)
LEGACY_NUMPY_GLOBALS = [_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def rng_state() -> dict:
    """Python, numpy, torch (and CUDA) RNG states as tensors and plain types."""
    version, internal, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "python": {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
        "numpy": {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    python, numpy_state = state["python"], state["numpy"]
    if isinstance(python, dict):
        random.setstate((python["version"], tuple(int(x) for x in python["state"].tolist()), python["gauss_next"]))
    else:  # earlier versions: random.getstate() as it is
        random.setstate(python)
    if isinstance(numpy_state, dict):
        np.random.set_state((numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                             numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    else:
        np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(path: Path, state: dict) -> Path:
    """torch.save(state + RNG states) to a temporary file, then os.replace onto path."""
    payload = dict(state)
    payload["rng"] = rng_state()
    return write_atomically(Path(path), lambda tmp: torch.save(payload, tmp))


def load_training_state(path: Path, map_location="cpu") -> dict:
    """Read a training state with weights_only=True (RNG states are restored by the caller with
    restore_rng_state); a file holding anything but tensors and plain types is refused, never unpickled."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training checkpoint at {path}; start without --resume")
    try:
        with torch.serialization.safe_globals(LEGACY_NUMPY_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"refused to read training checkpoint {path}: it holds Python objects other than tensors and plain "
            f"types, which only a crafted or foreign file does ({unpickling_reason(exc)}); resume only from "
            "checkpoints depth-train wrote"
        ) from exc
    except Exception as exc:
        raise ValueError(f"cannot read training checkpoint {path} ({exc}); it may be from another version") from exc


def _logged_step(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):  # a line cut short by a kill, or not a record
        return None


def truncate_loss_log(path: Path, step: int) -> int:
    """Keep the records of the loss log (JSON lines with "step") up to ``step``, the resumed checkpoint's, so
    the steps a killed run logged after its last checkpoint are not repeated; rewritten atomically. Returns the
    number of lines dropped."""
    path = Path(path)
    if not path.is_file():
        return 0
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if (logged := _logged_step(line)) is not None and logged <= step]
    if len(kept) < len(lines):
        write_atomically(path, lambda tmp: tmp.write_text("".join(kept)))
    return len(lines) - len(kept)
