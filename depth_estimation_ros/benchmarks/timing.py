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


def cpu_reference_gflops(size: int = 1024, repeats: int = 20) -> float:
    """Single-thread float32 matrix-product throughput (GFLOP/s) of this CPU right now.

    Printed beside CPU latency tables: the development VMs share hosts of different speed (the same model name),
    so figures from two runs compare only through this reference.
    """
    import time

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, b = torch.rand(size, size), torch.rand(size, size)
        for _ in range(3):
            a @ b
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        seconds = (time.perf_counter() - start) / repeats
    finally:
        torch.set_num_threads(threads)
    return 2 * size**3 / seconds / 1e9
