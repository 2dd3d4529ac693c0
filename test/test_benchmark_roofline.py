"""Roofline floors: FLOP and byte counting on known layers, the arithmetic, GPU peak lookup, a real network."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from depth_estimation_ros.benchmarks.networks import precision_floors
from depth_estimation_ros.benchmarks.roofline import (
    GpuPeaks,
    count_flops,
    floors,
    gpu_peaks,
    module_floors,
    trace_traffic,
)
from depth_estimation_ros.networks.factory import DepthNetworkConfig, build_depth_network


class _ConvWithUnusedHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=True)
        self.training_head = nn.Conv2d(8, 1, 1)  # not run by forward: its weights must not count

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


def test_conv_flops_are_two_per_multiply_add():
    module = _ConvWithUnusedHead().eval()
    x = torch.rand(1, 3, 10, 12)
    assert count_flops(module, x) == 2 * 8 * 3 * 3 * 3 * 10 * 12


def test_traffic_counts_outputs_and_only_the_weights_that_run():
    module = _ConvWithUnusedHead().eval()
    x = torch.rand(1, 3, 10, 12)
    traffic = trace_traffic(module, x, module)
    out_bytes = 8 * 10 * 12 * 4
    assert traffic.ops == 2  # convolution, relu
    assert traffic.output_bytes == 2 * out_bytes
    assert traffic.weight_bytes == (8 * 3 * 3 * 3 + 8) * 4


def test_floors_arithmetic_and_bound():
    peaks = GpuPeaks("test", fp32_tflops=10.0, fp16_tflops=100.0, bandwidth_gbs=1000.0)
    f = floors(flops=2_000_000_000, ideal_bytes=50_000_000, unfused_bytes=400_000_000, peaks=peaks, precision="fp16")
    assert f.compute_ms == pytest.approx(0.02)
    assert f.memory_ms == pytest.approx(0.05)
    assert f.unfused_memory_ms == pytest.approx(0.4)
    assert f.floor_ms == pytest.approx(0.05) and f.bound == "memory"
    f32 = floors(2_000_000_000, 50_000_000, 400_000_000, peaks, "fp32")
    assert f32.compute_ms == pytest.approx(0.2) and f32.bound == "compute"
    with pytest.raises(ValueError, match="precision"):
        floors(1, 1, 1, peaks, "int4")


def test_gpu_peaks_match_the_most_specific_name_and_take_overrides():
    assert gpu_peaks("NVIDIA H100 80GB HBM3").name == "H100"
    assert gpu_peaks("NVIDIA H100 PCIe").bandwidth_gbs == 2000.0
    assert gpu_peaks("NVIDIA H200").bandwidth_gbs == 4800.0
    assert gpu_peaks("NVIDIA H100 80GB HBM3", bandwidth_gbs=3000.0).bandwidth_gbs == 3000.0
    with pytest.raises(ValueError, match="--peak-tflops-fp32"):
        gpu_peaks("Orin (nvgpu)")
    custom = gpu_peaks("Orin (nvgpu)", 5.3, 85.0, 204.8)
    assert custom.name == "Orin (nvgpu)" and custom.fp16_tflops == 85.0


def test_network_floors_scale_with_precision():
    torch.manual_seed(0)
    model = build_depth_network(DepthNetworkConfig("lacdepth", "efficientnet_lite0", pretrained=False)).eval()
    peaks = gpu_peaks("H100")
    result = precision_floors(model, 64, 96, peaks, "cpu")
    f32, f16 = result["fp32"], result["fp16"]
    assert f32.flops == f16.flops == count_flops(model.predict_depth, torch.rand(1, 3, 64, 96))
    assert f16.compute_ms == pytest.approx(f32.compute_ms * 67.0 / 989.0)
    # the fp16 floors are derived (half the bytes): the same as counting a half-precision copy
    half = build_depth_network(DepthNetworkConfig("lacdepth", "efficientnet_lite0", pretrained=False)).eval().half()
    half.load_state_dict(model.state_dict())
    counted = module_floors(half, half.predict_depth, torch.rand(1, 3, 64, 96).half(), peaks, "fp16")
    assert counted == f16
    # the training-only intermediate heads are not read by predict_depth
    all_weights = sum(p.numel() * 4 for p in model.parameters())
    io = (3 + 1) * 64 * 96 * 4
    assert f32.ideal_bytes - io < all_weights + sum(b.numel() * b.element_size() for b in model.buffers())
    assert f32.ops == f16.ops > 100
    assert next(model.parameters()).dtype == torch.float32  # restored
    direct = module_floors(model, model.predict_depth, torch.rand(1, 3, 64, 96), peaks, "fp32")
    assert direct == f32
