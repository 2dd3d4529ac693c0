"""Where an exported depth network's ONNX Runtime CPU time goes: op counts and per-node profile, by network part.

Each node of the exported graph belongs to the module that made it (the exporter names nodes by module path,
e.g. ``/attractor_layers.2/Exp``); :data:`PARTS` maps the top-level module of each network to the part it is
(encoder, Laplacian residual pyramid, bin centres / attractors, ...). Nodes made outside any module (the glue in
the networks' own forward: Laplacian differences, resizes before a concatenation) count with the part of the node
that consumes them, the last nodes (final resize, clamp) with the part they finish. ONNX Runtime's profile names
the nodes of its optimised graph: fused nodes keep a scoped name or the name of the output they replace
(``..._nchwc``); the layout reorders it inserts have no module and are a part of their own.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ORT_REORDERS = "layout reorders (ONNX Runtime)"
# first module name of a node -> part, per network (the reference U-Net is a baseline)
PARTS: dict[str, dict[str, str]] = {
    "lacdepth": {
        "normalize": "encoder", "encoder": "encoder",
        "widen": "widen + dense dilated context", "context": "widen + dense dilated context",
        "levels": "Laplacian residual pyramid",
        "relative_fuse": "dense scale fusion (R)",
        "seed_bins": "bin centres / attractors", "attractor_layers": "bin centres / attractors",
        "final_head": "log-binomial head",
    },
    "gatdepth": {"normalize": "encoder", "encoder": "encoder", "stages": "decoder", "disp_heads": "decoder"},
    "baseline": {"normalize": "encoder", "encoder": "encoder", "pre_upsample": "decoder",
                 "post_upsample": "decoder", "disp_heads": "decoder"},
}
GAT_WINDOWS = "GAT windows"


def _scope_part(network: str, name: str) -> str | None:
    """Part of a node from its scoped name ('/levels.2/fuse/conv/Conv'), None for an unscoped one."""
    parts = name.strip("/").split("/")
    if len(parts) < 2:
        return None
    if network == "gatdepth" and len(parts) > 2 and parts[1] == "attention":
        return GAT_WINDOWS
    module = parts[0].split(".")[0]
    return PARTS[network].get(module)


def node_parts(graph, network: str) -> dict[str, str]:
    """{node name: part} for every node of an ONNX graph (unscoped nodes take their consumer's part)."""
    consumers = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    parts: dict[str, str] = {}

    def part_of(node, seen: frozenset = frozenset()) -> str:
        if node.name in parts:
            return parts[node.name]
        part = _scope_part(network, node.name)
        if part is None:
            downstream = [c for out in node.output for c in consumers[out] if c.name not in seen]
            candidates = [part_of(c, seen | {node.name}) for c in downstream]
            part = next((p for p in candidates if p != "output"), "output")
        parts[node.name] = part
        return part

    for node in graph.node:
        part_of(node)
    producer = {out: node for node in graph.node for out in node.output}
    for node in graph.node:  # the graph's last nodes (final resize, clamp) belong to what they finish
        upstream = node
        while parts[node.name] == "output" and upstream.input and upstream.input[0] in producer:
            upstream = producer[upstream.input[0]]
            parts[node.name] = parts[upstream.name]
    return parts


def count_ops(path: str | os.PathLike, network: str) -> tuple[int, Counter]:
    """(ONNX node count, nodes per part) of an exported graph."""
    import onnx

    graph = onnx.load(str(path)).graph
    return len(graph.node), Counter(node_parts(graph, network).values())


@dataclass
class PartProfile:
    ops: Counter = field(default_factory=Counter)  # ONNX nodes per part (the exported graph)
    kernels: Counter = field(default_factory=Counter)  # nodes ONNX Runtime ran per frame (its optimised graph)
    ms: dict[str, float] = field(default_factory=dict)  # kernel time per frame, per part
    total_ops: int = 0


def profile_parts(path: str | os.PathLike, network: str, threads: int = 2, warmup: int = 3,
                  iterations: int = 10) -> PartProfile:
    """ONNX Runtime (CPU, ``threads`` intra-op threads) per-node profile of ``iterations`` runs, per part."""
    import onnx
    import onnxruntime as ort

    graph = onnx.load(str(path)).graph
    parts = node_parts(graph, network)
    producer_part = {out: parts[node.name] for node in graph.node for out in node.output}
    result = PartProfile(total_ops=len(graph.node), ops=Counter(parts.values()))
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).random(session.get_inputs()[0].shape, dtype=np.float32)
        for _ in range(warmup):
            session.run(None, {"image": x})
        for _ in range(iterations):
            session.run(None, {"image": x})
        events = json.loads(Path(session.end_profiling()).read_text())
    runs = warmup + iterations
    total: dict[str, float] = defaultdict(float)
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        name = event["name"][: -len("_kernel_time")]
        if name in parts:
            part = parts[name]
        elif name.endswith("_nchwc") and name[: -len("_nchwc")] in producer_part:
            part = producer_part[name[: -len("_nchwc")]]
        else:
            part = _scope_part(network, name) or ORT_REORDERS
        total[part] += event["dur"] / 1e3
        result.kernels[part] += 1
    result.ms = {part: value / runs for part, value in total.items()}
    result.kernels = Counter({part: count // runs for part, count in result.kernels.items()})
    return result
