"""An rclpy executor spun on a background thread and stopped before anything it spins is torn down.

The pattern it replaces, ``Thread(target=executor.spin)`` ended by ``executor.shutdown()`` and ``destroy_node()``
from another thread, lets the two threads overlap: rclpy's ``shutdown`` does not wait for a ``spin_once`` in
progress (Kilted), so the spinning thread can still be building its wait set from a node being destroyed. A test
process was seen hung at exactly that teardown, its spin thread busy in rclpy's wait-set code and its main thread
starved for minutes (py-spy); 500 start/stop cycles in isolation did not reproduce it. Here the thread runs
``spin_once`` with a short timeout until :meth:`BackgroundSpinner.stop` asks it to end; ``stop`` joins it and only
then shuts the executor down, so the caller destroys its nodes with no thread inside the executor.
"""

from __future__ import annotations

import threading


class BackgroundSpinner:
    """Spins ``executor`` in a daemon thread (``spin_once(period)`` at a time) from :meth:`start` to :meth:`stop`."""

    def __init__(self, executor, period: float = 0.1) -> None:
        self.executor = executor
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="background_spin", daemon=True)

    def start(self) -> BackgroundSpinner:
        self._thread.start()
        return self

    def _run(self) -> None:
        from rclpy.executors import ExternalShutdownException

        context = self.executor.context
        while not self._stop.is_set() and context.ok():
            try:
                self.executor.spin_once(timeout_sec=self.period)
            except ExternalShutdownException:  # rclpy.shutdown() elsewhere: nothing left to spin
                return

    def stop(self, timeout: float = 10.0) -> bool:
        """End the spinning, then shut the executor down; False if the thread did not end within ``timeout``."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        stopped = not self._thread.is_alive()
        self.executor.shutdown(timeout_sec=timeout)
        return stopped
