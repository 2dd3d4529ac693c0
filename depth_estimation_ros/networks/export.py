"""Export a depth network to ONNX (the ``depth-export`` console script and :func:`export_onnx`).

The graph: input ``image`` (N, 3, H, W) float32 RGB in [0, 1], output ``depth`` (N, 1, H, W) metres and, for a
network with a per-pixel depth distribution (LacDepth: ``predict_depth_and_std``), a second output ``depth_std``
(N, 1, H, W) metres, the standard deviation of that distribution; opset >= 17, static H, W (optionally dynamic batch),
simplified by onnxslim, checked by onnx.checker, metadata in ``metadata_props``, written atomically (temporary
file + os.replace).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from depth_estimation_ros.data.atomic_files import sweep_on_start, temporary_file_for
from depth_estimation_ros.engines.self_test_reference import compute_reference, set_reference
from depth_estimation_ros.errors import EXPECTED_ERRORS, report_error
from depth_estimation_ros.networks.encoders import (
    ENCODER_NAMES,
    has_packaged_imagenet_weights,
)
from depth_estimation_ros.networks.factory import (
    NETWORK_NAMES,
    DepthNetworkConfig,
    build_depth_network,
)
from depth_estimation_ros.onnx_contract.depth_onnx import DEPTH_OUTPUT, INPUT_NAME, STD_OUTPUT, replace_metadata

DEFAULT_OPSET = 17


def has_depth_distribution(model: nn.Module) -> bool:
    """Whether the network predicts a per-pixel distribution over depth (and so a ``depth_std``)."""
    return callable(getattr(model, "predict_depth_and_std", None))


class DepthOnly(nn.Module):
    """Wraps a depth network so that its forward is ``predict_depth`` (the exported graph without ``depth_std``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.predict_depth(image)


class DepthAndStd(nn.Module):
    """Wraps a depth network so that its forward is ``predict_depth_and_std`` (outputs depth, depth_std)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.predict_depth_and_std(image)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _check_size(height: int, width: int) -> None:
    if height <= 0 or width <= 0 or height % 32 or width % 32:
        raise ValueError(f"--height/--width must be positive multiples of 32, got {height}x{width}")


def export_onnx(model: nn.Module, cfg: DepthNetworkConfig, path: str | os.PathLike, input_height: int,
                input_width: int, dynamic_batch: bool = False, metadata: dict | None = None, simplify: bool = True,
                opset: int = DEFAULT_OPSET, uncertainty: bool = True, self_test_reference: bool = True) -> Path:
    """Export ``model.predict_depth`` to ``path`` and return it. ``metadata`` entries are added as strings.

    With ``uncertainty`` (default) a network with a depth distribution gets the second output ``depth_std``
    (``predict_depth_and_std``; ``depth`` is the same graph either way).

    Metadata always holds network, encoder, input_height, input_width, min_depth, max_depth, training_data_hash
    (default "none"), trained (default "false"), the JSON ``network_config`` and, with ``self_test_reference``,
    the engine self-test's reference (engines/self_test_reference.py).
    """
    import onnx

    _check_size(input_height, input_width)
    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    with_std = uncertainty and has_depth_distribution(model)
    wrapper = (DepthAndStd(model) if with_std else DepthOnly(model)).eval()
    output_names = [DEPTH_OUTPUT, STD_OUTPUT] if with_std else [DEPTH_OUTPUT]
    tmp = str(temporary_file_for(path))
    try:
        graph = _traced_graph(wrapper, tmp, output_names, input_height, input_width, opset, dynamic_batch, simplify)
        props = {
            "network": cfg.network,
            "encoder": cfg.encoder,
            "input_height": input_height,
            "input_width": input_width,
            "min_depth": cfg.min_depth,
            "max_depth": cfg.max_depth,
            "training_data_hash": "none",
            "trained": "false",
            "network_config": json.dumps(asdict(cfg), sort_keys=True),
            "dynamic_batch": str(dynamic_batch).lower(),
            "simplified": str(simplify).lower(),
        }
        props.update(metadata or {})
        replace_metadata(graph, {str(key): _metadata_value(value) for key, value in props.items()})
        graph.producer_name = "depth_estimation_ros.depth-export"
        onnx.checker.check_model(graph, full_check=True)
        onnx.save(graph, tmp)
        if self_test_reference:  # the engine self-test's reference: this graph's fp32 ONNX Runtime depth
            set_reference(graph, compute_reference(tmp))
            onnx.save(graph, tmp)
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        model.train(was_training)
    return path


def _traced_graph(wrapper: nn.Module, tmp: str, output_names: list[str], height: int, width: int, opset: int,
                  dynamic_batch: bool, simplify: bool):
    """The wrapper traced to ONNX through ``tmp`` (TorchScript exporter), simplified, output shapes declared."""
    import onnx

    dummy = torch.rand(1, 3, height, width)
    dynamic_axes = {name: {0: "batch"} for name in (INPUT_NAME, *output_names)} if dynamic_batch else None
    with torch.no_grad(), warnings.catch_warnings():
        # shape reads become constants: intended, H and W are static in the exported graph
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
        # the TorchScript exporter is used on purpose: the dynamo exporter needs onnxscript (not installed)
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export")
        torch.onnx.export(
            wrapper, (dummy,), tmp, input_names=[INPUT_NAME], output_names=output_names,
            opset_version=opset, dynamic_axes=dynamic_axes, do_constant_folding=True, dynamo=False,
        )
    graph = onnx.load(tmp)
    if simplify:
        import onnxslim

        graph = onnxslim.slim(graph)
    _declare_output_shape(graph, height, width, dynamic_batch)
    return graph


def _metadata_value(value) -> str:
    """A metadata value as a string: dicts and lists as JSON, bools lower-case."""
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) \
        else str(value).lower() if isinstance(value, bool) else str(value)


def _declare_output_shape(graph, height: int, width: int, dynamic_batch: bool) -> None:
    """State the outputs' shape (N, 1, H, W) in the graph: the exporter leaves it symbolic when Resize sizes come
    from Shape ops; onnx.checker's full shape inference then confirms it is consistent."""
    for output in graph.graph.output:
        dims = output.type.tensor_type.shape.dim
        del dims[:]
        batch = dims.add()
        if dynamic_batch:
            batch.dim_param = "batch"
        else:
            batch.dim_value = 1
        for value in (1, height, width):
            dims.add().dim_value = value


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="depth-export",
        description="Export a depth network (and checkpoint) to a TensorRT-ready ONNX graph: input 'image' "
                    "(N,3,H,W RGB in [0,1]), output 'depth' (N,1,H,W metres) and, for LacDepth, 'depth_std' "
                    "(N,1,H,W metres, the spread of its per-pixel bin distribution).",
    )
    parser.add_argument("--network", choices=NETWORK_NAMES, help="network (taken from --checkpoint when given)")
    parser.add_argument("--encoder", choices=ENCODER_NAMES, help="encoder (taken from --checkpoint when given)")
    parser.add_argument("--checkpoint", help="depth checkpoint (.pt) from depth-train; without it the weights are "
                                             "ImageNet-initialised/untrained and the metadata says trained=false")
    parser.add_argument("--from-onnx", metavar="ONNX",
                        help="an ONNX written by depth-export: export its network again with this version's graph "
                             "(its weights, input size and metadata kept; written only if both graphs agree on the "
                             "sample frame), e.g. after a change that only reformulates the graph")
    parser.add_argument("--height", type=int, help="input height (multiple of 32)")
    parser.add_argument("--width", type=int, help="input width (multiple of 32)")
    parser.add_argument("--output", required=True, help="output .onnx path (written atomically)")
    parser.add_argument("--min-depth", type=float, default=None, help="without --checkpoint (default 0.1)")
    parser.add_argument("--max-depth", type=float, default=None, help="without --checkpoint (default 80)")
    parser.add_argument("--encoder-weights", default=None, help="ImageNet weight file for the encoder (untrained)")
    parser.add_argument("--dynamic-batch", action="store_true", help="make the batch dimension dynamic")
    parser.add_argument("--no-simplify", action="store_true", help="skip onnxslim simplification")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (>= 17)")
    parser.add_argument("--training-data-hash", default=None, help="override the hash stored in the metadata")
    parser.add_argument("--no-uncertainty", action="store_true",
                        help="export 'depth' only, without LacDepth's 'depth_std' output")
    return parser.parse_args(argv)


def _portable_paths(text: str) -> str:
    """Paths under the working directory written relative to it: metadata must not name the build machine."""
    return text.replace(str(Path.cwd()) + os.sep, "")


def trained_metadata(checkpoint: str | os.PathLike, extra: dict) -> dict[str, str]:
    """The metadata of an export from a training checkpoint: what it was trained on, and how."""
    metadata = {"trained": "true", "checkpoint": Path(checkpoint).name,
                "training_data_hash": str(extra.get("training_data_hash", "none"))}
    for key in ("training_config", "training_frames", "steps"):
        if key in extra:
            metadata[key] = _portable_paths(json.dumps(extra[key], sort_keys=True, default=str))
    return metadata


def export_checkpoint(checkpoint: str | os.PathLike, output: str | os.PathLike, height: int, width: int) -> Path:
    """``depth-export --checkpoint``: the checkpoint's network exported with its training metadata."""
    from depth_estimation_ros.networks.checkpoint import load_depth_checkpoint

    _check_size(height, width)
    model, cfg, extra = load_depth_checkpoint(checkpoint)
    return export_onnx(model, cfg, output, height, width, metadata=trained_metadata(checkpoint, extra))


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    from depth_estimation_ros.networks.tensorrt_readiness import check_tensorrt_ready

    sweep_on_start("depth-export", targets=[args.output])

    metadata: dict = {}
    try:
        if args.from_onnx:
            return _reexport(args)
        if args.height is None or args.width is None:
            raise ValueError("--height and --width are required (or --from-onnx, which takes them from the file)")
        _check_size(args.height, args.width)
        if args.checkpoint:
            from depth_estimation_ros.networks.checkpoint import load_depth_checkpoint

            model, cfg, extra = load_depth_checkpoint(args.checkpoint)
            for flag, given, stored in (("--network", args.network, cfg.network), ("--encoder", args.encoder,
                                                                                   cfg.encoder)):
                if given is not None and given != stored:
                    raise ValueError(f"{flag} {given} contradicts the checkpoint, which holds a {stored}; drop the "
                                     f"flag or pass the matching checkpoint")
            if args.min_depth is not None or args.max_depth is not None:
                raise ValueError("--min-depth/--max-depth are fixed by the checkpoint's configuration; drop them")
            metadata.update(trained_metadata(args.checkpoint, extra))
        else:
            if args.network is None or args.encoder is None:
                raise ValueError("without --checkpoint, --network and --encoder are required")
            pretrained = args.encoder_weights is not None or has_packaged_imagenet_weights(args.encoder)
            cfg = DepthNetworkConfig(
                network=args.network, encoder=args.encoder,
                min_depth=0.1 if args.min_depth is None else args.min_depth,
                max_depth=80.0 if args.max_depth is None else args.max_depth,
                pretrained=pretrained, encoder_weights=args.encoder_weights,
            )
            model = build_depth_network(cfg)
            metadata["trained"] = "false"
            metadata["encoder_init"] = "imagenet" if pretrained else "random"
        if args.training_data_hash is not None:
            metadata["training_data_hash"] = args.training_data_hash
        path = export_onnx(model, cfg, args.output, args.height, args.width, dynamic_batch=args.dynamic_batch,
                           metadata=metadata, simplify=not args.no_simplify, opset=args.opset,
                           uncertainty=not args.no_uncertainty)
    except EXPECTED_ERRORS as exc:
        return report_error("depth-export", exc)
    problems = check_tensorrt_ready(path)
    size_mb = path.stat().st_size / 1e6
    print(f"wrote {path} ({cfg.network}/{cfg.encoder}, {args.height}x{args.width}, {size_mb:.1f} MB, "
          f"trained={metadata['trained']})")
    if problems:
        print("TensorRT-readiness problems:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print("TensorRT-readiness: ok")
    return 0


def _reexport(args: argparse.Namespace) -> int:
    """``depth-export --from-onnx``: everything comes from the file; flags that would change it are refused."""
    from depth_estimation_ros.networks.onnx_weights import reexport_onnx
    from depth_estimation_ros.networks.tensorrt_readiness import check_tensorrt_ready

    given = [flag for flag, value in (("--checkpoint", args.checkpoint), ("--network", args.network),
                                      ("--encoder", args.encoder), ("--min-depth", args.min_depth),
                                      ("--max-depth", args.max_depth), ("--encoder-weights", args.encoder_weights),
                                      ("--height", args.height), ("--width", args.width),
                                      ("--training-data-hash", args.training_data_hash),
                                      ("--dynamic-batch", args.dynamic_batch or None),
                                      ("--no-simplify", args.no_simplify or None),
                                      ("--opset", None if args.opset == DEFAULT_OPSET else args.opset))
             if value is not None]
    if given:
        raise ValueError(f"--from-onnx takes the network, weights, size, graph options and metadata from the file; "
                         f"drop {', '.join(given)}")
    path, worst = reexport_onnx(args.from_onnx, args.output, uncertainty=not args.no_uncertainty)
    print(f"wrote {path} from {args.from_onnx} (outputs within {worst:.1e} relative on the sample frame)")
    problems = check_tensorrt_ready(path)
    if problems:
        print("TensorRT-readiness problems:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print("TensorRT-readiness: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
