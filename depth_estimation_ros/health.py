"""Problem bookkeeping for diagnostics and throttled logging, free of ROS types.

Each problem has a kind (e.g. 'input', 'camera_info') and a message; report() says whether it should be logged
now (the same message at most once per `throttle` seconds, so a stream of identical bad frames logs one line
while a different problem is logged at once), and status() gives the diagnostics level and message for the
last period: ERROR if an error was reported since the previous status(), else WARN if a warning was, else OK.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

OK, WARN, ERROR = 0, 1, 2


@dataclass
class _Problem:
    level: int
    message: str
    count: int = 0


class HealthMonitor:
    def __init__(self, throttle: float = 5.0) -> None:
        self.throttle = throttle
        self._problems: dict[str, _Problem] = {}
        self._period: dict[str, _Problem] = {}
        self._last_logged: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self.total_errors = 0

    def report(self, kind: str, level: int, message: str, now: float) -> bool:
        """Record a problem; True when the caller should log it (throttled per kind)."""
        with self._lock:
            problem = self._problems.setdefault(kind, _Problem(level, message))
            problem.level, problem.message = level, message
            problem.count += 1
            self._period[kind] = problem
            if level == ERROR:
                self.total_errors += 1
            key = (kind, message)
            if now - self._last_logged.get(key, -float("inf")) >= self.throttle:
                self._last_logged[key] = now
                if len(self._last_logged) > 256:  # bounded: forget the oldest messages
                    oldest = min(self._last_logged, key=self._last_logged.get)
                    del self._last_logged[oldest]
                return True
            return False

    def status(self) -> tuple[int, str]:
        """(level, message) for the period since the last call; resets the period."""
        with self._lock:
            period, self._period = self._period, {}
        if not period:
            return OK, "running"
        worst = max(p.level for p in period.values())
        messages = [f"{k}: {p.message}" for k, p in period.items() if p.level == worst]
        return worst, "; ".join(messages)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {k: p.count for k, p in self._problems.items()}
