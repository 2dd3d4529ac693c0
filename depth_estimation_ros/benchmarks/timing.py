"""Timing loops shared by the benchmark scripts."""

from __future__ import annotations

from collections.abc import Callable


def cuda_times_ms(fn: Callable[[], object], iterations: int, warmup: int) -> list[float]:
    """Per-call GPU time of fn in ms, measured with CUDA events after `warmup` untimed calls."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iterations):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times
