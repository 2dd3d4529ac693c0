"""Training state checkpoints: model(s), optimiser, scheduler, AMP scaler, step and every RNG state, written
atomically, so that --resume continues exactly (the next step's loss equals the uninterrupted run's)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from depth_estimation_training.atomic_files import write_atomically


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(path: Path, state: dict) -> Path:
    """torch.save(state + RNG states) to a temporary file, then os.replace onto path."""
    payload = dict(state)
    payload["rng"] = rng_state()
    return write_atomically(Path(path), lambda tmp: torch.save(payload, tmp))


def load_training_state(path: Path, map_location="cpu") -> dict:
    """Read a training state (RNG states are restored by the caller with restore_rng_state)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training checkpoint at {path}; start without --resume")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise ValueError(f"cannot read training checkpoint {path} ({exc}); it may be from another version") from exc
