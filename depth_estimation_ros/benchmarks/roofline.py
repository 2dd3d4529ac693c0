"""Roofline floors of a network's forward pass on a GPU: times no implementation can beat.

- compute floor = FLOPs / the GPU's peak dense throughput for the precision (fp32: the non-tensor FP32 peak, as the
  benchmarks turn TF32 off; fp16: the dense tensor-core peak).
- memory floor = the bytes a perfectly fused engine must move through DRAM (weights + input + output, each once) /
  peak bandwidth. At batch 1 these networks' activations (a few MB) fit in the H100's 50 MB L2, so a fused engine
  need not spill them.
- floor = max(compute floor, memory floor); "gap" = measured / floor.
- unfused traffic (reported beside, not a floor): weights + every aten op's output written once and read once, the
  DRAM traffic of eager PyTorch that fuses nothing; its time says how far eager execution can at best get.

FLOPs: torch.utils.flop_counter (convolutions, transposed convolutions, matmuls; 1 multiply-add = 2 FLOPs;
element-wise ops not counted). Peaks: NVIDIA data sheets, dense (no sparsity). Everything here runs on the CPU, so
floors can be stated without the GPU; only the measured times need it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class GpuPeaks:
    name: str
    fp32_tflops: float  # non-tensor FP32
    fp16_tflops: float  # dense FP16 tensor core
    bandwidth_gbs: float  # DRAM (HBM)

    def tflops(self, precision: str) -> float:
        if precision not in ("fp32", "fp16"):
            raise ValueError(f"precision must be 'fp32' or 'fp16', got '{precision}'")
        return self.fp32_tflops if precision == "fp32" else self.fp16_tflops


# Most specific name first: a device name is matched against these fragments in order.
KNOWN_GPUS = (
    GpuPeaks("H100 PCIe", 51.0, 756.0, 2000.0),
    GpuPeaks("H100 NVL", 60.0, 835.0, 3900.0),
    GpuPeaks("H100", 67.0, 989.0, 3350.0),  # SXM5 (nvidia-smi: "NVIDIA H100 80GB HBM3")
    GpuPeaks("H200", 67.0, 989.0, 4800.0),
)


def gpu_peaks(
    device_name: str,
    fp32_tflops: float | None = None,
    fp16_tflops: float | None = None,
    bandwidth_gbs: float | None = None,
) -> GpuPeaks:
    """Peaks of the GPU whose name contains a known fragment, each overridable; a clear error for an unknown GPU
    without all three overrides."""
    known = next((p for p in KNOWN_GPUS if p.name.lower() in device_name.lower()), None)
    values = (
        fp32_tflops or (known.fp32_tflops if known else None),
        fp16_tflops or (known.fp16_tflops if known else None),
        bandwidth_gbs or (known.bandwidth_gbs if known else None),
    )
    if None in values:
        names = ", ".join(p.name for p in KNOWN_GPUS)
        raise ValueError(f"no peak figures known for GPU '{device_name}' (known: {names}); pass "
                         "--peak-tflops-fp32, --peak-tflops-fp16 and --peak-bandwidth-gbs")
    return GpuPeaks(known.name if known else device_name, *values)


def count_flops(fn: Callable[[torch.Tensor], object], x: torch.Tensor) -> int:
    """FLOPs of fn(x) (2 per multiply-add; convolutions and matmuls)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        fn(x)
    return int(counter.get_total_flops())


class _OpTraffic(TorchDispatchMode):
    """Sums the bytes of every aten op's tensor outputs (views, which allocate nothing, excluded) and notes which of
    the given parameter tensors the ops read."""

    def __init__(self, parameters: list[torch.Tensor]) -> None:
        super().__init__()
        self.output_bytes = 0
        self.ops = 0
        self._parameters = {p.data_ptr(): p for p in parameters}
        self.used_parameters: dict[int, torch.Tensor] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        for arg in list(args) + list((kwargs or {}).values()):
            if isinstance(arg, torch.Tensor) and arg.data_ptr() in self._parameters:
                self.used_parameters[arg.data_ptr()] = self._parameters[arg.data_ptr()]
        out = func(*args, **(kwargs or {}))
        if not getattr(func, "is_view", False) and "view" not in str(func):  # _unsafe_view is no is_view op
            self.ops += 1
            for tensor in out if isinstance(out, (list, tuple)) else [out]:
                if isinstance(tensor, torch.Tensor):
                    self.output_bytes += tensor.numel() * tensor.element_size()
        return out


@dataclass(frozen=True)
class OpTraffic:
    ops: int  # aten ops that are not views: about the kernels eager PyTorch launches
    output_bytes: int  # bytes all those ops write
    weight_bytes: int  # bytes of the module's parameters and buffers the ops read


def trace_traffic(
    fn: Callable[[torch.Tensor], object], x: torch.Tensor, module: torch.nn.Module | None = None
) -> OpTraffic:
    """What fn(x) launches, writes and reads of `module`'s weights."""
    tensors = [] if module is None else [*module.parameters(), *module.buffers()]
    mode = _OpTraffic(tensors)
    with torch.no_grad(), mode:
        fn(x)
    used = sum(t.numel() * t.element_size() for t in mode.used_parameters.values())
    return OpTraffic(mode.ops, mode.output_bytes, used)


@dataclass(frozen=True)
class Floors:
    flops: int
    ops: int  # non-view aten ops: at batch 1 their per-kernel cost, which FLOPs and bytes miss, can dominate
    ideal_bytes: int  # weights + input + output once
    unfused_bytes: int  # weights + 2 x every op output
    compute_ms: float
    memory_ms: float  # ideal_bytes / bandwidth
    unfused_memory_ms: float

    @property
    def floor_ms(self) -> float:
        return max(self.compute_ms, self.memory_ms)

    @property
    def bound(self) -> str:
        return "compute" if self.compute_ms >= self.memory_ms else "memory"


def floors(
    flops: int, ideal_bytes: int, unfused_bytes: int, peaks: GpuPeaks, precision: str, ops: int = 0
) -> Floors:
    """Floors in ms from counted FLOPs and bytes (pure arithmetic)."""
    bandwidth = peaks.bandwidth_gbs * 1e9
    return Floors(
        flops=flops,
        ops=ops,
        ideal_bytes=ideal_bytes,
        unfused_bytes=unfused_bytes,
        compute_ms=1e3 * flops / (peaks.tflops(precision) * 1e12),
        memory_ms=1e3 * ideal_bytes / bandwidth,
        unfused_memory_ms=1e3 * unfused_bytes / bandwidth,
    )


def module_floors(
    module: torch.nn.Module,
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    peaks: GpuPeaks,
    precision: str,
) -> Floors:
    """Floors of fn(x), fn running `module` (only the weights fn reads count: LacDepth's training-only heads do
    not). Counted in the tensors' own dtype: pass a half module and a half x for fp16. Runs fn three times, on
    whatever device x is on (the CPU is fine)."""
    with torch.no_grad():
        out = fn(x)
    traffic = trace_traffic(fn, x, module)
    io = x.numel() * x.element_size() + out.numel() * out.element_size()
    weights = traffic.weight_bytes
    return floors(count_flops(fn, x), weights + io, weights + 2 * traffic.output_bytes, peaks, precision, traffic.ops)
