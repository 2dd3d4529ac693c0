"""A network rebuilt from its own exported ONNX graph, for re-exporting it with the current graph code.

A change that only reformulates the exported graph (the same weights, another op sequence: issue 17's fused forms)
applies to an ONNX file only through a new export, and the bundled files ship without their training checkpoints.
The export folds each batch norm into the convolution before it, so the weights come back as plain convolutions:
every Conv node's weight and bias are loaded into the convolution module its node name scopes
(``/levels.1/reduce/Conv`` -> ``levels.1.reduce``), with a bias added where the module had none, and every batch norm
becomes the identity (its scale and shift already live in the conv); functional convs with fixed weights are left
alone. Parameters the graph does not hold (LacDepth's training-only heads) stay
as built; :func:`check_same_outputs` then compares the two graphs on real input, which is the actual proof.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from depth_estimation_ros.networks.factory import DepthNetworkConfig, build_depth_network
from depth_estimation_ros.onnx_contract.depth_onnx import STD_OUTPUT, load_onnx, model_metadata

# what export_onnx writes itself; everything else of the source file's metadata carries over
REGENERATED_METADATA = ("network", "encoder", "input_height", "input_width", "min_depth", "max_depth",
                        "network_config", "dynamic_batch", "simplified", "self_test_reference")


def module_path(node_name: str) -> str:
    """The module a node was traced in, from its scoped name: ``/encoder/body/blocks.0/blocks.0.0/conv_dw/Conv`` ->
    ``encoder.body.blocks.0.0.conv_dw`` (a scope inside a container repeats the container's name)."""
    parts: list[str] = []
    previous = ""
    for scope in node_name.strip("/").split("/")[:-1]:
        child = scope[len(previous) + 1:] if previous and scope.startswith(previous + ".") else scope
        parts.append(child)
        previous = scope
    return ".".join(parts)


def config_from_onnx(graph) -> DepthNetworkConfig:
    """The DepthNetworkConfig an export stored in its metadata (fields newer than the file take their defaults)."""
    meta = model_metadata(graph)
    if "network_config" not in meta:
        raise ValueError("the ONNX file has no 'network_config' metadata: only files written by depth-export can be "
                         "re-exported; export from the training checkpoint instead (depth-export --checkpoint)")
    stored = json.loads(meta["network_config"])
    known = {field.name for field in fields(DepthNetworkConfig)}
    unknown = sorted(set(stored) - known)
    if unknown:
        raise ValueError(f"the ONNX file's network_config has fields this version does not know ({', '.join(unknown)})"
                         f": re-export it with the version that wrote it")
    stored.update(pretrained=False, encoder_weights=None)  # the weights come from the graph
    return DepthNetworkConfig(**stored)


def load_onnx_weights(model: nn.Module, graph) -> None:
    """Load an exported graph's Conv and ConvTranspose weights into ``model`` (built from the same configuration);
    batch norms become the identity. Raises ValueError when the graph does not fit the model."""
    from onnx import numpy_helper

    if any(node.op_type == "BatchNormalization" for node in graph.graph.node):
        raise ValueError("the graph has BatchNormalization nodes (exported without folding), which --from-onnx cannot "
                         "map back; export from the training checkpoint instead (depth-export --checkpoint)")
    initializers = {init.name: init for init in graph.graph.initializer}
    modules = dict(model.named_modules())
    loaded_any = False
    for node in graph.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose"):
            continue
        name = module_path(node.name)
        module = modules.get(name)
        if name not in modules:
            raise ValueError(f"{node.op_type} node {node.name} names no module of this network ('{name}'): the "
                             f"file was exported by another version of the network code")
        if not isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            continue  # a functional conv with fixed weights (GATDepth's unit-weight gate copies)
        if node.input[1] not in initializers:
            raise ValueError(f"{node.op_type} node {node.name} has a computed weight; only constant weights can be "
                             f"loaded")
        weight = torch.from_numpy(np.array(numpy_helper.to_array(initializers[node.input[1]]), dtype=np.float32))
        if weight.shape != module.weight.shape:
            raise ValueError(f"{name}: weight {tuple(weight.shape)} in the graph, {tuple(module.weight.shape)} in "
                             f"the network: the file was exported by another version of the network code")
        with torch.no_grad():
            module.weight.copy_(weight)
            if len(node.input) > 2 and node.input[2]:
                bias = torch.from_numpy(np.array(numpy_helper.to_array(initializers[node.input[2]]),
                                                 dtype=np.float32))
                if module.bias is None:
                    module.bias = nn.Parameter(bias)
                else:
                    module.bias.copy_(bias)
            elif module.bias is not None:
                module.bias.zero_()
        loaded_any = True
    if not loaded_any:
        raise ValueError("the graph has no convolution to load weights from")
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                if module.affine:
                    module.weight.fill_(1.0)
                    module.bias.zero_()
                if module.track_running_stats:
                    module.running_mean.zero_()
                    module.running_var.fill_(1.0 - module.eps)


def model_from_onnx(graph, name: str) -> tuple[nn.Module, DepthNetworkConfig, dict[str, str], tuple[int, int]]:
    """(network with the graph's weights, its configuration, the metadata to carry over, (height, width)) of a loaded
    export; ``name`` (its file name) goes into ``reexported_from``."""
    cfg = config_from_onnx(graph)
    model = build_depth_network(cfg).eval()
    load_onnx_weights(model, graph)
    meta = model_metadata(graph)
    carried = {key: value for key, value in meta.items() if key not in REGENERATED_METADATA}
    carried["reexported_from"] = name
    return model, cfg, carried, (int(meta["input_height"]), int(meta["input_width"]))


def check_same_outputs(original: str | os.PathLike, reexported: str | os.PathLike, image: np.ndarray,
                       rtol: float = 1e-4) -> float:
    """The largest relative difference between the re-exported graph's outputs and the original's same-named ones
    on ``image`` (1, 3, H, W), ONNX Runtime fp32; raises ValueError above ``rtol`` (the weights did not all come
    back)."""
    import onnxruntime as ort

    outputs = []
    for path in (original, reexported):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [out.name for out in session.get_outputs()]
        outputs.append(dict(zip(names, session.run(None, {session.get_inputs()[0].name: image}))))
    missing = sorted(set(outputs[1]) - set(outputs[0]))
    if missing:
        raise ValueError(f"{reexported} has outputs {missing} that {original} lacks")
    worst = 0.0
    for name, after in outputs[1].items():
        before = outputs[0][name]
        worst = max(worst, float(np.max(np.abs(after - before) / np.maximum(np.abs(before), 1e-6))))
    if not worst <= rtol:
        raise ValueError(f"the re-exported graph differs from {original} by up to {worst:.2e} (relative) on the "
                         f"same input: not all of its weights were recovered; export from the checkpoint instead")
    return worst


def reexport_onnx(source: str | os.PathLike, output: str | os.PathLike, uncertainty: bool = True
                  ) -> tuple[Path, float]:
    """``depth-export --from-onnx``: ``source`` exported again with this version's graph code, its metadata (and
    opset, dynamic batch, simplification) kept, written to ``output`` only once both graphs agree on the sample frame;
    returns (output, largest relative difference)."""
    from depth_estimation_ros.data.atomic_files import temporary_directory, write_bytes_atomically
    from depth_estimation_ros.data.reference_frame import load_reference_frame
    from depth_estimation_ros.frame.preprocessing import to_network_input
    from depth_estimation_ros.networks.export import export_onnx

    source, output = Path(source), Path(output)
    graph = load_onnx(source)
    model, cfg, metadata, (height, width) = model_from_onnx(graph, source.name)
    has_std = any(out.name == STD_OUTPUT for out in graph.graph.output)
    stored = model_metadata(graph)
    opset = next(entry.version for entry in graph.opset_import if entry.domain in ("", "ai.onnx"))
    image = to_network_input(load_reference_frame().rgb, height, width)
    with temporary_directory() as scratch:  # checked there, then written to output atomically
        candidate = export_onnx(model, cfg, Path(scratch) / output.name, height, width, metadata=metadata,
                                uncertainty=uncertainty and has_std,
                                dynamic_batch=stored.get("dynamic_batch") == "true",
                                simplify=stored.get("simplified") != "false", opset=opset)
        worst = check_same_outputs(source, candidate, image)
        write_bytes_atomically(output, candidate.read_bytes())
    return output, worst
