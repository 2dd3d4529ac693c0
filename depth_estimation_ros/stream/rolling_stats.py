"""Rolling-window statistics for diagnostics: event rates and latency percentiles."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np


class RateMeter:
    """Events per second over the last `window` seconds (monotonic clock supplied by the caller)."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self, now: float) -> None:
        with self._lock:
            self._times.append(now)
            self._trim(now)

    def rate(self, now: float) -> float:
        with self._lock:
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            span = max(now - self._times[0], 1e-9)
            return (len(self._times) - 1) / span if span < self.window else len(self._times) / self.window

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()


class LatencyWindow:
    """The last `size` samples of several named latencies (seconds)."""

    def __init__(self, size: int = 200) -> None:
        self._samples: dict[str, deque[float]] = {}
        self._size = size
        self._lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self._samples.setdefault(name, deque(maxlen=self._size)).append(seconds)

    def add_all(self, durations: dict[str, float]) -> None:
        for name, seconds in durations.items():
            self.add(name, seconds)

    def percentiles(self, name: str, qs: tuple[float, ...] = (50.0, 99.0)) -> tuple[float, ...] | None:
        with self._lock:
            values = list(self._samples.get(name, ()))
        if not values:
            return None
        return tuple(float(v) for v in np.percentile(np.asarray(values), qs))

    def names(self) -> list[str]:
        with self._lock:
            return list(self._samples)
