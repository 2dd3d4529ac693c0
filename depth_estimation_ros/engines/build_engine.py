"""``depth-build-engine`` (also ``ros2 run depth_estimation_ros build_engine``): build and cache the TensorRT engine
on the target (e.g. a Jetson) ahead of launch, or (``--onnx-only``, no TensorRT needed) write the fp16 / INT8 Q/DQ
ONNX variant and check it against the fp32 model with ONNX Runtime on the CPU.

Exit status (errors.py, README "Exit codes"): 0 done, 2 bad input (a missing model or calibration source), 3 options
that do not go together, 4 conversion or build failure, 5 refused by the accuracy gate.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from depth_estimation_ros.data.atomic_files import sweep_on_start
from depth_estimation_ros.engines.accuracy_gate import (
    DEFAULT_ABS_REL_BOUND,
    ON_FAIL_CHOICES,
    evaluate_gate,
)
from depth_estimation_ros.engines.calibration_frames import load_calibration_frames
from depth_estimation_ros.engines.onnx_precision import (
    INT8_FLOAT_PRECISIONS,
    INT8_SCOPES,
    PRECISIONS,
    TOOLS,
    convert_to_fp16,
    quantize_int8,
    variant_path,
)
from depth_estimation_ros.errors import EXIT_ACCURACY, EXIT_OK, EXPECTED_ERRORS, ConfigurationError, report_error
from depth_estimation_ros.resources.model_registry import resolve_model

PROG = "depth-build-engine"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Build and cache a TensorRT engine for an exported depth ONNX (TensorRT 10 or 11), or with "
        "--onnx-only write the fp16 / INT8 Q/DQ ONNX variant and check it with ONNX Runtime.",
    )
    parser.add_argument("model", help="exported fp32 depth ONNX (depth-export), or an fp16 / Q/DQ ONNX")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp16")
    parser.add_argument("--calibration", help="image folder or rosbag with camera frames (INT8 calibration and "
                        "the accuracy gate)")
    parser.add_argument("--topic", help="image topic in the rosbag (needed when the bag has several)")
    parser.add_argument("--max-frames", type=int, default=32, help="calibration frames, evenly spaced (default 32)")
    parser.add_argument("--int8-scope", choices=INT8_SCOPES, default="decoder",
                        help="INT8: quantize the decoder and heads, leaving the image encoder unquantized (default; "
                        "the encoder is what loses accuracy in INT8), or all learned layers")
    parser.add_argument("--int8-float", choices=INT8_FLOAT_PRECISIONS, default=None,
                        help="INT8: precision of the layers left unquantized (default fp16 with ModelOpt, so a "
                        "strongly typed build does not run them in fp32; fp32 with --tool onnxruntime)")
    parser.add_argument("--accuracy-bound", type=float, default=DEFAULT_ABS_REL_BOUND,
                        help="largest accepted abs_rel vs fp32 ONNX Runtime (fraction; default 0.01 = 1 %%)")
    parser.add_argument("--on-gate-fail", choices=ON_FAIL_CHOICES, default="refuse",
                        help="refuse the engine (exit 5) or fall back to fp32")
    parser.add_argument("--cache-dir", help="engine cache (default $DEPTH_ENGINE_CACHE or "
                        "~/.cache/depth_estimation_ros/engines); the node reads the same")
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--workspace-mb", type=int, default=1024, help="TensorRT workspace memory pool (MiB)")
    parser.add_argument("--legacy-precision-flags", action="store_true",
                        help="TensorRT 10 only: build fp16 from the fp32 ONNX with BuilderFlag.FP16 (weak typing)")
    parser.add_argument("--force", action="store_true", help="rebuild even if a valid cached engine exists")
    parser.add_argument("--onnx-only", action="store_true",
                        help="write the fp16/int8 ONNX variant and check it with ONNX Runtime; no TensorRT needed")
    parser.add_argument("--output", help="--onnx-only: output path (default <model>.<precision>.onnx beside it)")
    parser.add_argument("--tool", choices=TOOLS, default="auto",
                        help="fp16/int8 conversion: NVIDIA ModelOpt, ONNX Runtime tooling, or auto (ModelOpt if "
                        "importable)")
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


def _frames(args: argparse.Namespace):
    if not args.calibration:
        return None
    from depth_estimation_ros.onnx_contract.depth_onnx import onnx_input_shape

    _, _, height, width = onnx_input_shape(args.model)
    return load_calibration_frames(args.calibration, height, width, topic=args.topic, max_frames=args.max_frames)


def _onnx_only(args: argparse.Namespace) -> int:
    from depth_estimation_ros.engines.onnxruntime_engine import OnnxRuntimeEngine

    if args.precision == "fp32":
        raise ConfigurationError("--onnx-only makes an fp16 or int8 variant; the fp32 model is the export itself")
    frames = _frames(args)
    output = Path(args.output) if args.output else variant_path(args.model, args.precision)
    if output.resolve() == Path(args.model).resolve():
        raise ConfigurationError(f"--output {output} would overwrite the input model; choose another path")
    sweep_on_start("depth-build-engine", targets=[output])
    if args.precision == "fp16":
        summary = convert_to_fp16(args.model, output, tool=args.tool)
    else:
        if frames is None:
            raise ConfigurationError("INT8 needs calibration frames: pass --calibration <image folder or rosbag>")
        summary = quantize_int8(args.model, output, frames, tool=args.tool, scope=args.int8_scope,
                                float_precision=args.int8_float)
    print(f"wrote {output}: {summary}")
    if frames is None:
        print("no --calibration frames: the variant was not compared with the fp32 model")
        return EXIT_OK
    reference, candidate = OnnxRuntimeEngine(args.model), OnnxRuntimeEngine(str(output))
    result = evaluate_gate(candidate.infer, reference.infer, frames, args.precision, args.accuracy_bound)
    print(result.describe())
    if not result.passed:
        output.unlink()
        print(f"removed {output}: it does not pass the accuracy gate", file=sys.stderr)
        return EXIT_ACCURACY
    return EXIT_OK


def _tensorrt(args: argparse.Namespace) -> int:
    from depth_estimation_ros.engines.tensorrt_prepare import default_cache_dir, prepare_engine

    sweep_on_start("depth-build-engine", targets=[variant_path(args.model, args.precision)],
                   folders=[args.cache_dir or default_cache_dir()])
    prepared = prepare_engine(
        args.model, args.precision, args.device, args.cache_dir, _frames(args), args.accuracy_bound,
        args.on_gate_fail, args.workspace_mb << 20, args.legacy_precision_flags, args.force, args.tool,
        args.int8_scope, args.int8_float,
    )
    print(json.dumps({
        "engine": str(prepared.engine_path),
        "built": prepared.built,
        "precision": prepared.precision,
        "onnx": str(prepared.onnx_path),
        "key": prepared.key.to_dict(),
        "accuracy_gate": prepared.gate.describe() if prepared.gate else None,
        "notes": prepared.notes,
    }, indent=2))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        args.model = resolve_model(args.model)  # a bundled name (lacdepth, lacdepth_indoor, gatdepth) or a file
        return _onnx_only(args) if args.onnx_only else _tensorrt(args)
    except EXPECTED_ERRORS as exc:  # exit code by kind (errors.py): input 2, options 3, engine 4, accuracy gate 5
        return report_error(PROG, exc)


if __name__ == "__main__":
    sys.exit(main())
