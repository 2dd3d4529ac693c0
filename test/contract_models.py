"""Tiny ONNX models that honour the depth model contract (input ``image`` (1, 3, 64, 96), output ``depth``, the
metadata engines read), exported from a torch module, for tests that need a real model of known behaviour."""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch

SIZE = (64, 96)


def export_contract_model(module: torch.nn.Module, path: Path, network: str, max_depth: float) -> Path:
    """Export ``module`` (image -> depth) to ``path`` with the contract's metadata; returns path."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is enough for these
        torch.onnx.export(module.eval(), (torch.rand(1, 3, *SIZE),), str(path), input_names=["image"],
                          output_names=["depth"], opset_version=17, dynamo=False)
    proto = onnx.load(str(path))
    for key, value in {"network": network, "encoder": "none", "input_height": str(SIZE[0]),
                       "input_width": str(SIZE[1]), "min_depth": "0.1", "max_depth": f"{max_depth:g}",
                       "training_data_hash": "none"}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    return path
