"""One GATDepth attention block per decoder stage, in ONNX Runtime on the CPU, for each way of writing its weighted
sum: which formulation the exported graph should use (docs/networks.md, "GATDepth's attention written three ways").

    python -m depth_estimation_ros.benchmarks.gat_block --sizes 640x192 320x96
    python -m depth_estimation_ros.benchmarks.gat_block --export-gatdepth DIR   # whole networks, for
        benchmarks.networks --networks gatdepth --compare-onnx DIR/*.onnx

Formulations of sum_j e_ij W h_j / sum_j e_ij over the k x k window (all exact up to summation order):
- ``one_by_one``: the shipped CPU/ONNX form, every score and feature op once per neighbour (k*k slices);
- ``all_at_once``: the shipped CUDA form, scores and features of all neighbours gathered by one-hot grouped convs;
- ``scores_at_once``: a candidate between them, the k*k scores gathered and exponentiated at once (a map of heads
  channels, cheap), the features still accumulated one neighbour at a time (k*k maps of C channels, large).
Each block is timed against ``one_by_one`` in one round-robin, so load that comes and goes hits all alike.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from depth_estimation_ros.benchmarks.networks import onnxruntime_run, parse_size, round_robin_ms
from depth_estimation_ros.benchmarks.timing import cpu_reference_gflops
from depth_estimation_ros.networks.gatdepth import DECODER_CHANNELS
from depth_estimation_ros.networks.graph_attention import (
    PADDING_SCORE,
    WeightedSum,
    WindowGraphAttention,
    shifted_neighbours,
)

FORMULATIONS = ("one_by_one", "all_at_once", "scores_at_once")


class BenchmarkAttention(WindowGraphAttention):
    """The block with its weighted sum chosen by name instead of by device."""

    def __init__(self, channels: int, heads: int, formulation: str) -> None:
        super().__init__(channels, heads=heads)
        self.formulation = formulation

    def weighted_sum_for(self, x: torch.Tensor) -> WeightedSum:
        return {"one_by_one": self._weighted_sum_one_by_one, "all_at_once": self._weighted_sum_all_at_once,
                "scores_at_once": self._weighted_sum_scores_at_once}[self.formulation]

    def _weighted_sum_scores_at_once(self, wh: torch.Tensor, centre: torch.Tensor, neighbour: torch.Tensor,
                                     logit_max: torch.Tensor) -> torch.Tensor:
        n, c, h, w = wh.shape
        k, r = self.window, self.window // 2
        scores = F.conv2d(F.pad(neighbour, (r, r, r, r), value=PADDING_SCORE), self.score_taps, groups=self.heads)
        scores = scores.reshape(n, self.heads, k * k, h, w)
        e = torch.exp(F.leaky_relu(centre.unsqueeze(2) + scores, self.negative_slope) - logit_max.unsqueeze(2))
        padded = F.pad(wh, (r, r, r, r)).reshape(n, self.heads, c // self.heads, h + 2 * r, w + 2 * r)
        numerator = None
        for e_j, wh_j in zip(torch.split(e, 1, dim=2), shifted_neighbours(padded, k), strict=True):
            term = e_j * wh_j  # (N, heads, 1, H, W) * (N, heads, C/heads, H, W)
            numerator = term if numerator is None else numerator + term
        return numerator / e.sum(dim=2, keepdim=True)


def with_formulation(model: torch.nn.Module, formulation: str) -> torch.nn.Module:
    """``model`` with every attention block replaced by a :class:`BenchmarkAttention` of the same weights."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is WindowGraphAttention:
                block = BenchmarkAttention(child.project.in_channels, child.heads, formulation)
                block.load_state_dict(child.state_dict())
                setattr(parent, name, block)
    return model


def export_gatdepth_variants(out_dir: Path, sizes: list[tuple[int, int]]) -> list[Path]:
    """GATDepth lite0 with benchmarks.networks' random weights, exported once per formulation and size."""
    from depth_estimation_ros.benchmarks.networks import build_benchmark_network
    from depth_estimation_ros.networks.export import export_onnx

    paths = []
    for formulation in FORMULATIONS:
        for height, width in sizes:
            model, cfg, _ = build_benchmark_network("gatdepth", "efficientnet_lite0")
            path = out_dir / f"gatdepth_{formulation}_{width}x{height}.onnx"
            paths.append(export_onnx(with_formulation(model, formulation), cfg, path, height, width,
                                     self_test_reference=False))
    return paths


def export_block(block: torch.nn.Module, x: torch.Tensor, path: Path) -> int:
    """Export with onnxslim simplification, as the networks are; the graph's node count."""
    import onnx
    import onnxslim

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(block, (x,), str(path), input_names=["image"], output_names=["out"], opset_version=17,
                          do_constant_folding=True, dynamo=False)
    graph = onnxslim.slim(onnx.load(str(path)))
    onnx.save(graph, str(path))
    return len(graph.graph.node)


def stage_shapes(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """(stride, channels, H, W) of GATDepth's five attention blocks at this input size."""
    return [(2**i, DECODER_CHANNELS[i], height // 2**i, width // 2**i) for i in range(len(DECODER_CHANNELS))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=[(192, 640), (96, 320)],
                        help="network input sizes WxH")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--iterations", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--heads", type=int, default=4, help="GATDepth's gat_heads")
    parser.add_argument("--export-gatdepth", type=Path, metavar="DIR",
                        help="instead: export GATDepth lite0 once per formulation and size into DIR")
    args = parser.parse_args(argv)
    if args.export_gatdepth:
        for path in export_gatdepth_variants(args.export_gatdepth, args.sizes):
            print(path)
        return 0
    torch.manual_seed(0)
    print(f"CPU reference {cpu_reference_gflops():.0f} GFLOP/s; ONNX Runtime {args.threads} threads, median of "
          f"{args.iterations} (round-robin)")
    print("| input | stride | C x H x W | " + " | ".join(f"{f}: ops, ms (x one_by_one)" for f in FORMULATIONS)
          + " | max abs diff |")
    print("|---|---:|---|" + "---|" * len(FORMULATIONS) + "---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for height, width in args.sizes:
            for stride, channels, h, w in stage_shapes(width, height):
                x = torch.randn(1, channels, h, w)
                blocks = {f: BenchmarkAttention(channels, min(args.heads, channels), f).eval() for f in FORMULATIONS}
                for block in blocks.values():
                    block.load_state_dict(blocks["one_by_one"].state_dict())
                with torch.no_grad():
                    outputs = {f: block(x) for f, block in blocks.items()}
                diff = max(float((out - outputs["one_by_one"]).abs().max()) for out in outputs.values())
                nodes, runs = {}, {}
                for f, block in blocks.items():
                    path = Path(tmp) / f"{f}_{stride}_{width}.onnx"
                    nodes[f] = export_block(block, x, path)
                    runs[f] = onnxruntime_run(path, args.threads)
                times = round_robin_ms(runs, args.warmup, args.iterations)
                base = times["one_by_one"][0]
                cells = [f"{nodes[f]}, {times[f][0]:.2f} ({times[f][0] / base:.2f}x)" for f in FORMULATIONS]
                print(f"| {width}x{height} | {stride} | {channels} x {h} x {w} | " + " | ".join(cells)
                      + f" | {diff:.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
