"""The transform tree of a recording: /tf_static and /tf edges chained in either direction (what tf2's buffer does
on a robot), for evaluation's lidar ground truth and extraction's camera poses."""

from __future__ import annotations

from collections import defaultdict, deque

import numpy as np

from depth_estimation_ros.errors import InputError
from depth_estimation_ros.messages.message_decoding import header_stamp_ns, transform_message_to_matrix


class TransformNotFoundError(InputError):
    """No chain of transforms connects two frames; the message lists the frames the recording has."""


def normalise_frame(frame_id: str) -> str:
    """tf2 frame ids carry no leading slash (ROS 1 tf allowed one)."""
    return frame_id.lstrip("/")


class TransformStore:
    """Transforms between frames from /tf_static and /tf, chained through the tree in either direction.

    An edge parent -> child holds T_parent_child (maps points in the child frame into the parent frame). Static
    edges have one value; dynamic edges keep every sample and ``lookup`` takes the one nearest ``stamp_ns``.
    """

    def __init__(self) -> None:
        self._edges: dict[tuple[str, str], list[tuple[int, np.ndarray]]] = defaultdict(list)
        self._static: set[tuple[str, str]] = set()

    def add(self, parent: str, child: str, matrix: np.ndarray, stamp_ns: int = 0, static: bool = True) -> None:
        key = (normalise_frame(parent), normalise_frame(child))
        if static:
            self._edges[key] = [(stamp_ns, np.asarray(matrix, np.float64))]
            self._static.add(key)
        else:
            self._edges[key].append((stamp_ns, np.asarray(matrix, np.float64)))

    def add_message(self, tf_message, static: bool) -> None:
        """Add every TransformStamped of a tf2_msgs/TFMessage."""
        for ts in tf_message.transforms:
            self.add(ts.header.frame_id, ts.child_frame_id, transform_message_to_matrix(ts.transform),
                     header_stamp_ns(ts), static)

    @property
    def frames(self) -> list[str]:
        return sorted({f for edge in self._edges for f in edge})

    def _edge_matrix(self, parent: str, child: str, stamp_ns: int | None) -> np.ndarray:
        samples = self._edges[(parent, child)]
        if len(samples) == 1 or stamp_ns is None:
            return samples[-1][1]
        return min(samples, key=lambda s: abs(s[0] - stamp_ns))[1]

    def lookup(self, target_frame: str, source_frame: str, stamp_ns: int | None = None) -> np.ndarray:
        """4x4 T_target_source: p_target = T @ p_source. Raises TransformNotFoundError listing the frames."""
        target, source = normalise_frame(target_frame), normalise_frame(source_frame)
        if target == source:
            return np.eye(4)
        neighbours: dict[str, list[tuple[str, bool]]] = defaultdict(list)
        for parent, child in self._edges:
            neighbours[child].append((parent, True))  # child -> parent uses T_parent_child
            neighbours[parent].append((child, False))  # parent -> child uses its inverse
        # breadth-first search from source; the accumulated matrix maps source points into the reached frame
        visited = {source: np.eye(4)}
        queue = deque([source])
        while queue:
            frame = queue.popleft()
            for other, upward in neighbours[frame]:
                if other in visited:
                    continue
                if upward:
                    step = self._edge_matrix(other, frame, stamp_ns)
                else:
                    step = np.linalg.inv(self._edge_matrix(frame, other, stamp_ns))
                visited[other] = step @ visited[frame]
                if other == target:
                    return visited[other]
                queue.append(other)
        frames = ", ".join(self.frames) or "(none: the bag has no /tf_static or /tf messages)"
        raise TransformNotFoundError(
            f"no transform from '{source}' to '{target}'; the bag has frames: {frames}. Record /tf_static with the "
            "sensor extrinsics (e.g. static_transform_publisher) or pass the frame that the data is in"
        )
