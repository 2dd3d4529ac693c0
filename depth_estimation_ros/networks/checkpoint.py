"""Depth-network checkpoints: {"config": asdict(cfg), "state_dict": ..., **extra}, written atomically, read with
torch.load(weights_only=True)."""

from __future__ import annotations

import os
import pickle
from dataclasses import asdict, replace
from pathlib import Path

import torch
from torch import nn

from depth_estimation_ros.data.atomic_files import write_atomically
from depth_estimation_ros.errors import ModelError
from depth_estimation_ros.networks.factory import (
    DepthNetworkConfig,
    build_depth_network,
)

RESERVED_KEYS = ("config", "state_dict")


class CheckpointError(ModelError, ValueError):
    """A file is not a depth checkpoint this version can load; the message says why and what to use instead."""


def unpickling_reason(exc: Exception) -> str:
    """The line of torch's weights_only refusal that names what the file holds."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    named = [line for line in lines if "but got" in line or "unsupported" in line.lower()]
    return (named or lines or [""])[0]


def save_depth_checkpoint(path: str | os.PathLike, model: nn.Module, cfg: DepthNetworkConfig,
                          extra: dict | None = None) -> Path:
    """Write the checkpoint to a temporary file beside ``path`` and os.replace it into place."""
    extra = dict(extra or {})
    clash = [k for k in RESERVED_KEYS if k in extra]
    if clash:
        raise ValueError(f"extra must not contain the reserved keys {clash}")
    payload = {"config": asdict(cfg), "state_dict": model.state_dict(), **extra}
    return write_atomically(Path(path), lambda tmp: torch.save(payload, tmp))


def load_depth_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                          ) -> tuple[nn.Module, DepthNetworkConfig, dict]:
    """(model in eval mode, config, extra entries); clear errors for a missing file or a mismatching checkpoint."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"depth checkpoint {path} does not exist; pass the .pt written by depth-train")
    try:  # tensors and plain types only: a crafted .pt cannot run code here
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refused to read depth checkpoint {path}: it holds Python objects other than tensors and plain types, "
            f"which only a crafted or foreign file does ({unpickling_reason(exc)}); use the .pt depth-train wrote"
        ) from exc
    except Exception as exc:
        raise CheckpointError(f"cannot read depth checkpoint {path}: {exc}") from exc
    if not isinstance(payload, dict) or "config" not in payload or "state_dict" not in payload:
        raise CheckpointError(f"{path} is not a depth checkpoint (expected a dict with 'config' and 'state_dict')")
    if "architecture_version" not in payload["config"]:
        raise CheckpointError(
            f"{path} was written by the version-1 networks (before ELU -> ReLU, zero padding and LacDepth's "
            f"half-resolution metric head); its weights do not fit the current networks: retrain"
        )
    cfg = DepthNetworkConfig.from_dict(payload["config"])
    # the state dict carries the encoder weights: no ImageNet file is needed to rebuild
    model = build_depth_network(replace(cfg, pretrained=False, encoder_weights=None))
    try:
        result = model.load_state_dict(payload["state_dict"], strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise CheckpointError(f"{path} does not match a {cfg.network}/{cfg.encoder} network: {exc}") from exc
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{path} does not match a {cfg.network}/{cfg.encoder} network: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]} (was it written by another code version?)"
        )
    model.to(map_location).eval()
    extra = {k: v for k, v in payload.items() if k not in RESERVED_KEYS}
    return model, cfg, extra
