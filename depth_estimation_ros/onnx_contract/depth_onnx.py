"""The exported depth ONNX contract: tensor names, metadata keys, and reading a model file against them.

``depth-export`` (networks/export.py) writes models that honour it; the engines, the self-test, the precision
variants and evaluation read them through this module. docs/architecture.md ("Contracts") states it for users.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from depth_estimation_ros.errors import ModelError

INPUT_NAME = "image"  # (N, 3, H, W) RGB in [0, 1], float32 (float16 in fp16 variants)
DEPTH_OUTPUT = "depth"  # (N, 1, H, W) metres
STD_OUTPUT = "depth_std"  # (N, 1, H, W) metres; optional (LacDepth exports)
# metadata_props keys
NETWORK_KEY, ENCODER_KEY = "network", "encoder"
INPUT_HEIGHT_KEY, INPUT_WIDTH_KEY = "input_height", "input_width"  # the network input size
MIN_DEPTH_KEY, MAX_DEPTH_KEY = "min_depth", "max_depth"  # the network's output range (metres)
PRECISION_KEY = "precision"  # fp16 / INT8 variants
UNCERTAINTY_SCALE_KEY = "uncertainty_scale"  # factor on depth_std fitted by depth-eval --fit-uncertainty-scale


class ModelFileError(ModelError):
    """A file is not a depth ONNX honouring the contract; the message names what is wrong and the fix."""


def load_onnx(path: str | os.PathLike, load_external_data: bool = False):
    """The ``onnx.ModelProto`` of ``path``; FileNotFoundError when missing, ModelFileError when not an ONNX model."""
    import onnx

    if not Path(path).is_file():
        raise FileNotFoundError(f"ONNX model '{path}' does not exist; pass a depth .onnx written by depth-export")
    try:
        return onnx.load(str(path), load_external_data=load_external_data)
    except Exception as exc:  # protobuf's DecodeError and friends: the file is not a serialised ModelProto
        raise ModelFileError(f"'{path}' is not an ONNX model ({type(exc).__name__}: {exc}); pass a depth .onnx "
                             "written by depth-export") from exc


def model_metadata(model) -> dict[str, str]:
    """The model's ``metadata_props`` as a dict."""
    return {p.key: p.value for p in model.metadata_props}


def replace_metadata(model, entries: Mapping[str, str]) -> None:
    """Set the model's ``metadata_props`` to exactly ``entries``, in their order."""
    del model.metadata_props[:]
    for key, value in entries.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """``metadata_props`` of the ONNX file at ``path`` (graph weights not loaded)."""
    return model_metadata(load_onnx(path))


def check_tensor_names(inputs: Sequence[str], outputs: Sequence[str], path: str | os.PathLike) -> None:
    """ModelFileError unless the model has the input ``image`` and the output ``depth``."""
    if INPUT_NAME not in inputs or DEPTH_OUTPUT not in outputs:
        raise ModelFileError(
            f"'{path}' has inputs {list(inputs)} and outputs {list(outputs)}; expected input '{INPUT_NAME}' and "
            f"output '{DEPTH_OUTPUT}'. Re-export it with depth-export."
        )


def input_size(dims: Sequence[object], model_metadata: Mapping[str, str], path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of the input ``image`` from its dims (N, 3, H, W), static or named (dynamic: then the
    metadata's input_height / input_width); ModelFileError naming the shape otherwise."""
    try:
        if len(dims) != 4 or dims[1] not in (3, None) and not isinstance(dims[1], str):
            raise ValueError("not (N, 3, H, W)")
        height = int(dims[2]) if isinstance(dims[2], int) else int(model_metadata[INPUT_HEIGHT_KEY])
        width = int(dims[3]) if isinstance(dims[3], int) else int(model_metadata[INPUT_WIDTH_KEY])
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise ModelFileError(
            f"'{path}' input '{INPUT_NAME}' has shape {list(dims)}; expected (N, 3, H, W) with static H, W or "
            f"{INPUT_HEIGHT_KEY}/{INPUT_WIDTH_KEY} in the model metadata. Re-export it with depth-export."
        ) from exc
    return height, width


def onnx_input_shape(onnx_path: str | os.PathLike) -> tuple[int, int, int, int]:
    """(1, 3, H, W) of the ONNX input 'image' (batch pinned to 1; H, W static or from the metadata)."""
    model = load_onnx(onnx_path)
    inputs = {v.name: v for v in model.graph.input}
    check_tensor_names(list(inputs), [v.name for v in model.graph.output], onnx_path)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[INPUT_NAME].type.tensor_type.shape.dim]
    return (1, 3, *input_size(dims, model_metadata(model), onnx_path))
