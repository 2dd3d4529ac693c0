"""A single-slot mailbox between the subscription callback and the processing worker.

The callback never blocks: it overwrites the pending frame, and an overwritten frame counts as dropped.
The worker always gets the newest frame, so latency stays bounded when frames arrive faster than inference.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestFrameSlot(Generic[T]):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False
        self.dropped = 0
        self.offered = 0

    def put(self, item: T) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.offered += 1
            self._cond.notify()

    def take(self, timeout: float | None = None) -> T | None:
        """The newest pending item, waiting up to timeout; None on timeout or after close()."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
