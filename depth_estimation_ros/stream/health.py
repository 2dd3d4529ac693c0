"""Problem bookkeeping for diagnostics and throttled logging, free of ROS types.

Each problem has a kind (e.g. 'image', 'calibration', 'throughput') and a message. report() says whether to log
it now: at most one line every `throttle` seconds per problem, that is per kind, level and message template (the
message with its quoted values, lists and words with digits blanked: messages carry sizes and byte counts, so a
stream of varying bad frames of one problem would otherwise log one line each, while a different problem is logged
at once); the next line logged says how many of that problem were suppressed. status() gives the diagnostics
level and the latest message of each kind for the last period: ERROR if an error was reported since the previous
status(), else WARN if a warning was, else OK.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

OK, WARN, ERROR = 0, 1, 2
# quoted values, bracketed lists, and every word with a digit in it (sizes, byte counts, 64x48, fx=1e-300, rgb8)
_VARYING = re.compile(r"'[^']*'|\[[^\]]*\]|[^\s'\[]*\d[^\s'\[]*")
_MAX_THROTTLED = 256


def message_template(message: str) -> str:
    """The message with its varying parts blanked (quoted values, lists, words with digits): what stays the same
    across frames of one problem."""
    return _VARYING.sub("#", message)


@dataclass
class _Problem:
    level: int
    message: str
    count: int = 0
    suppressed: int = 0  # not logged since the last logged line of this kind and level
    last_logged: float = -float("inf")


class HealthMonitor:
    def __init__(self, throttle: float = 5.0) -> None:
        self.throttle = throttle
        self._problems: dict[str, _Problem] = {}
        self._throttles: dict[tuple[str, int, str], _Problem] = {}
        self._period: dict[str, _Problem] = {}
        self._lock = threading.Lock()
        self.total_errors = 0
        self.total_suppressed = 0

    def report(self, kind: str, level: int, message: str, now: float) -> str | None:
        """Record a problem; the line to log now (the message, with the count of this problem suppressed since its
        last line), or None while it is throttled."""
        with self._lock:
            problem = self._problems.setdefault(kind, _Problem(level, message))
            problem.level, problem.message = level, message
            problem.count += 1
            self._period[kind] = problem
            if level == ERROR:
                self.total_errors += 1
            key = (kind, level, message_template(message))
            throttle = self._throttles.get(key)
            if throttle is None:
                if len(self._throttles) >= _MAX_THROTTLED:  # bounded: forget the problem logged longest ago
                    del self._throttles[min(self._throttles, key=lambda k: self._throttles[k].last_logged)]
                throttle = self._throttles[key] = _Problem(level, message)
            if now - throttle.last_logged < self.throttle:
                throttle.suppressed += 1
                self.total_suppressed += 1
                return None
            suppressed, throttle.suppressed, throttle.last_logged = throttle.suppressed, 0, now
        if suppressed:
            return f"{message} ({suppressed} more like it in the last {self.throttle:g} s not logged)"
        return message

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
        """Problems reported so far, by kind."""
        with self._lock:
            return {k: p.count for k, p in self._problems.items()}


def throughput_problem(offered_hz: float, processed_hz: float, min_ratio: float,
                       frame_seconds: float | None) -> str | None:
    """A warning when far fewer frames are processed than offered (paired with a CameraInfo) over the rate window,
    else None.

    Dropping the older frames keeps latency bounded by design; the warning says so and names the achievable rate
    (1 / the per-frame processing time) so the camera rate or the model can be matched to it. ``min_ratio`` 0
    turns the check off; below 1 Hz offered nothing is judged.
    """
    if min_ratio <= 0.0 or offered_hz < 1.0 or processed_hz >= min_ratio * offered_hz:
        return None
    achievable = f"{1.0 / frame_seconds:.1f} Hz" if frame_seconds else "unknown"
    per_frame = f"{frame_seconds * 1e3:.0f} ms" if frame_seconds else "unknown"
    return (f"processing {processed_hz:.1f} Hz of {offered_hz:.1f} Hz paired input "
            f"({100.0 * (1.0 - processed_hz / offered_hz):.0f} % of frames dropped to keep latency bounded); one frame "
            f"takes {per_frame} (p50), so about {achievable} is achievable here: lower the camera rate or use a faster "
            "backend, precision or model (throughput_warn_ratio sets this threshold)")
