"""Matching messages by header stamp (integer nanoseconds), free of ROS types: the nearest stamp within a
tolerance, two streams paired as they arrive, and TUM's one-to-one association of two stamp lists.

The node's own image / CameraInfo pairing (identical stamps, or the latest CameraInfo) is stream/camera_info_pairing.py.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Sequence


def nearest_stamp_index(stamps: Sequence[int], stamp: int, tolerance_ns: int | None = None) -> int | None:
    """Index of the sorted ``stamps`` entry nearest to ``stamp`` (ties -> the earlier one); None when ``stamps`` is
    empty or the nearest is farther than ``tolerance_ns``."""
    if not stamps:
        return None
    i = bisect.bisect_left(stamps, stamp)
    if i == 0:
        best = 0
    elif i == len(stamps):
        best = len(stamps) - 1
    else:
        best = i if stamps[i] - stamp < stamp - stamps[i - 1] else i - 1
    return best if tolerance_ns is None or abs(stamps[best] - stamp) <= tolerance_ns else None


class StampPairer:
    """Pairs a stream of images with a stream of ground-truth messages by nearest header stamp within tolerance.

    Both streams arrive in log-time order. An image is resolved once a ground-truth stamp beyond image + tolerance
    has been seen (no better match can follow) or at ``finish``. Output keeps image order; a ground-truth message
    may serve more than one image (e.g. a 10 Hz lidar and a 30 Hz camera).
    """

    def __init__(self, tolerance_ns: int) -> None:
        self.tolerance_ns = int(tolerance_ns)
        self._images: deque[tuple[int, object]] = deque()
        self._truths: list[tuple[int, object]] = []
        self._latest_truth = -(2**62)

    def add_image(self, stamp_ns: int, item) -> list[tuple[object, object | None]]:
        self._images.append((stamp_ns, item))
        return self._resolve(final=False)

    def add_truth(self, stamp_ns: int, item) -> list[tuple[object, object | None]]:
        self._truths.append((stamp_ns, item))
        self._truths.sort(key=lambda t: t[0])
        self._latest_truth = max(self._latest_truth, stamp_ns)
        return self._resolve(final=False)

    def finish(self) -> list[tuple[object, object | None]]:
        return self._resolve(final=True)

    def _resolve(self, final: bool) -> list[tuple[object, object | None]]:
        out = []
        while self._images and (final or self._latest_truth > self._images[0][0] + self.tolerance_ns):
            stamp, image = self._images.popleft()
            j = nearest_stamp_index([t[0] for t in self._truths], stamp, self.tolerance_ns)
            match = None if j is None else self._truths[j][1]
            out.append((image, match))
        # ground truth too old for any pending or future image (images arrive roughly in stamp order)
        horizon = (self._images[0][0] if self._images else self._latest_truth) - 2 * self.tolerance_ns
        while len(self._truths) > 1 and self._truths[0][0] < horizon and self._truths[1][0] <= horizon:
            self._truths.pop(0)
        return out


def associate_by_stamp(first: list[float], second: list[float], max_difference: float) -> list[tuple[int, int]]:
    """Greedy one-to-one association of two stamp lists, closest pairs first (as TUM's associate.py)."""
    order = sorted(range(len(second)), key=lambda j: second[j])
    sorted_second = [second[j] for j in order]
    candidates = []
    for i, a in enumerate(first):
        k = bisect.bisect_left(sorted_second, a - max_difference)
        while k < len(sorted_second) and sorted_second[k] < a + max_difference:
            candidates.append((abs(a - sorted_second[k]), i, order[k]))
            k += 1
    candidates.sort()
    used_i, used_j, pairs = set(), set(), []
    for _, i, j in candidates:
        if i not in used_i and j not in used_j:
            used_i.add(i)
            used_j.add(j)
            pairs.append((i, j))
    return sorted(pairs)
