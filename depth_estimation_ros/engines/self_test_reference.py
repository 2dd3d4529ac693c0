"""The self-test reference a depth ONNX carries: one real frame's fp32 ONNX Runtime depth, kept small.

Stored as JSON in the ONNX ``metadata_props`` under ``self_test_reference``: where the frame comes from (the bundled
sample bag) and the hash of its decoded pixels, the engine that produced the reference (ONNX Runtime fp32 and its
version), the output size, the depth averaged over square blocks (at most ~1000 values, 6 significant digits, a few
kB), summary statistics and the SHA-256 of the full float32 depth. ``depth-export`` writes it; the
``depth-stamp-reference`` console script adds or refreshes it on an existing ONNX without touching its graph or
weights (atomically, through a temporary file).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from depth_estimation_ros.data.atomic_files import write_atomically
from depth_estimation_ros.data.reference_frame import ReferenceFrame, load_reference_frame
from depth_estimation_ros.errors import EXPECTED_ERRORS, report_error
from depth_estimation_ros.onnx_contract.depth_onnx import load_onnx, model_metadata, replace_metadata

REFERENCE_KEY = "self_test_reference"
REFERENCE_FORMAT = 1
MAX_REFERENCE_VALUES = 1024
BLOCK_SIZES = (1, 2, 4, 8, 16, 32)


def block_size(height: int, width: int) -> int:
    """The smallest block whose grid over height x width has at most MAX_REFERENCE_VALUES cells."""
    for block in BLOCK_SIZES:
        if (height // block) * (width // block) <= MAX_REFERENCE_VALUES:
            return block
    return BLOCK_SIZES[-1]


def block_means(depth: np.ndarray, block: int) -> np.ndarray:
    """Mean over non-overlapping block x block squares (float64; a trailing partial block is left out)."""
    h, w = (depth.shape[0] // block) * block, (depth.shape[1] // block) * block
    cropped = np.asarray(depth[:h, :w], dtype=np.float64)
    return cropped.reshape(h // block, block, w // block, block).mean(axis=(1, 3))


def depth_sha256(depth: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(depth, dtype="<f4").tobytes()).hexdigest()


def make_reference(depth: np.ndarray, frame: ReferenceFrame, onnxruntime_version: str) -> dict:
    """The reference record for the fp32 ONNX Runtime depth (H x W, network size) of ``frame``."""
    depth = np.asarray(depth, dtype=np.float32)
    if not np.all(np.isfinite(depth)):
        raise ValueError(f"the fp32 ONNX Runtime depth of the reference frame has {int(np.sum(~np.isfinite(depth)))} "
                         "non-finite pixels: the model itself is broken, there is nothing to stamp")
    block = block_size(*depth.shape)
    means = block_means(depth, block)
    return {
        "format": REFERENCE_FORMAT,
        "frame": {"source": frame.source, "rgb_sha256": frame.rgb_sha256},
        "reference_engine": {"backend": "onnxruntime", "precision": "fp32", "onnxruntime": onnxruntime_version},
        "output_size": [int(depth.shape[0]), int(depth.shape[1])],
        "block": block,
        "grid": [int(means.shape[0]), int(means.shape[1])],
        "depth_blocks": [float(f"{v:.6g}") for v in means.reshape(-1)],
        "stats": {name: float(f"{fn(depth):.6g}") for name, fn in
                  (("min", np.min), ("median", np.median), ("mean", np.mean), ("max", np.max))},
        "depth_sha256": depth_sha256(depth),
    }


def compute_reference(onnx_path: str | os.PathLike, frame: ReferenceFrame | None = None) -> dict:
    """Run ``frame`` (default: the sample's) through the ONNX on ONNX Runtime's CPU provider in fp32."""
    import onnxruntime

    from depth_estimation_ros.engines.onnxruntime_engine import OnnxRuntimeEngine

    frame = frame or load_reference_frame()
    engine = OnnxRuntimeEngine(str(onnx_path))
    if engine.info.precision != "fp32":
        raise ValueError(f"'{onnx_path}' is a {engine.info.precision} ONNX; the reference comes from the fp32 model "
                         "(stamp the fp32 ONNX; its fp16/INT8 variants are checked against it)")
    return make_reference(engine.estimate(frame.rgb), frame, onnxruntime.__version__)


def set_reference(model, reference: dict) -> None:
    """Put ``reference`` into an onnx.ModelProto's metadata_props (replacing an older one)."""
    entries = {key: value for key, value in model_metadata(model).items() if key != REFERENCE_KEY}
    replace_metadata(model, {**entries, REFERENCE_KEY: json.dumps(reference, separators=(",", ":"))})


def read_reference(onnx_path: str | os.PathLike) -> dict | None:
    """The stored reference of an ONNX, None when it has none; ValueError when it is unreadable."""
    model = load_onnx(onnx_path)
    text = next((p.value for p in model.metadata_props if p.key == REFERENCE_KEY), None)
    if text is None:
        return None
    try:
        reference = json.loads(text)
        if reference.get("format") != REFERENCE_FORMAT:
            raise ValueError(f"format {reference.get('format')}, expected {REFERENCE_FORMAT}")
        needed = ("output_size", "block", "grid", "depth_blocks")
        missing = [k for k in needed if k not in reference]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        if len(reference["depth_blocks"]) != reference["grid"][0] * reference["grid"][1]:
            raise ValueError("depth_blocks does not fill the grid")
    except (ValueError, AttributeError, TypeError, IndexError) as exc:
        raise ValueError(f"the self-test reference in '{onnx_path}' is unreadable ({exc}); re-stamp it with "
                         "depth-stamp-reference") from exc
    return reference


def stamp_reference(onnx_path: str | os.PathLike, output: str | os.PathLike | None = None) -> dict:
    """Compute the reference of ``onnx_path`` and write the model with it to ``output`` (default: in place).

    Only metadata_props change: the graph, its weights and every other field are copied as loaded.
    """
    import onnx

    onnx_path = Path(onnx_path)
    output = Path(output) if output is not None else onnx_path
    reference = compute_reference(onnx_path)
    model = load_onnx(onnx_path, load_external_data=True)
    set_reference(model, reference)
    write_atomically(output, lambda tmp: onnx.save(model, str(tmp)))
    return reference


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="depth-stamp-reference",
        description="Add (or refresh) the engine self-test reference in exported depth ONNX files: the fp32 ONNX "
                    "Runtime depth of the bundled sample frame, downsampled, in metadata_props. The graph and "
                    "weights are not changed. depth-export does this for every new export.")
    parser.add_argument("models", nargs="+", help="fp32 depth .onnx files (rewritten in place, atomically)")
    args = parser.parse_args(argv)
    status = 0
    for path in args.models:
        try:
            reference = stamp_reference(path)
        except EXPECTED_ERRORS as exc:
            status = max(status, report_error("depth-stamp-reference", exc, path))
            continue
        stats = reference["stats"]
        print(f"{path}: reference {reference['grid'][0]}x{reference['grid'][1]} blocks of {reference['block']} px, "
              f"depth {stats['min']:.3g}-{stats['max']:.3g} m (median {stats['median']:.3g}) on "
              f"{reference['frame']['source']}")
    return status


if __name__ == "__main__":
    sys.exit(main())
