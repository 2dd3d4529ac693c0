"""Read ROS 1 ``.bag`` files, ROS 2 bag folders (sqlite3 or MCAP) and bare ``.mcap`` / ``.db3`` files (written by
MCAP tools without a metadata.yaml) without a ROS install.

``BagReader`` wraps ``rosbags.highlevel.AnyReader``: message definitions come from the bag when it stores them
(all ROS 1 bags, ROS 2 bags written by recent rosbag2), else from the default typestore (ROS 2 Kilted types).
Messages come out in log-time order, independent of any playback rate.

Decoding the messages into numpy is messages/message_decoding.py's job; chaining the /tf_static and /tf
transforms ``read_transforms`` collects is data/transform_tree.py's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from depth_estimation_ros.data.transform_tree import TransformStore
from depth_estimation_ros.errors import InputError

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
POINT_CLOUD2_TYPE = "sensor_msgs/msg/PointCloud2"
TF_TOPICS = ("/tf_static", "/tf")


class BagError(InputError):
    """A bag cannot be read as asked; the message names the problem and the fix."""


class TopicNotFoundError(BagError):
    """A requested topic is absent or has an unexpected type; the message lists the bag's topics."""


@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str
    log_time_ns: int
    message: object  # deserialised message
    raw: bytes  # serialised payload as stored in the bag (for copying into an output bag)


def is_bag_path(path: str | Path) -> bool:
    """True for a ROS 1 .bag file, a ROS 2 bag folder (metadata.yaml) or a bare .mcap / .db3 file."""
    p = Path(path)
    if p.is_file():
        return p.suffix in (".bag", ".mcap", ".db3")
    return p.is_dir() and (p / "metadata.yaml").is_file()


def bag_target(path: Path) -> Path:
    """What rosbags opens for ``path``: a .mcap / .db3 file inside a bag folder means the folder (all its split
    files, as metadata.yaml lists them); a bare one (no metadata.yaml beside it, as MCAP tools write) the file itself;
    a ROS 1 .bag or a bag folder as it is."""
    if path.is_file() and path.suffix in (".mcap", ".db3"):
        return path.parent if (path.parent / "metadata.yaml").is_file() else path
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        bag_files = sorted(p.name for p in path.iterdir() if p.suffix in (".mcap", ".db3", ".bag"))
        hint = f"; it holds {', '.join(bag_files[:5])}: pass one of these files" if bag_files else ""
        raise BagError(
            f"'{path}' is a folder without metadata.yaml, so it is not a ROS 2 bag{hint}; pass a bag folder (the one "
            "with metadata.yaml), a ROS 1 .bag file or a .mcap / .db3 file"
        )
    if path.is_file() and path.suffix not in (".bag", ".mcap", ".db3"):
        raise BagError(f"'{path}' is not a bag file (.bag, .mcap or .db3) nor a ROS 2 bag folder")
    return path


IMAGE_NAME_SUFFIXES = ("/image_raw", "/image_rect_color", "/image_rect", "/image_color", "/image")


def camera_info_topic_for(image_topic: str, camera_info_topics: Sequence[str]) -> str | None:
    """The CameraInfo topic of an image topic: ``<camera namespace>/camera_info`` (the image's name and
    ``/compressed`` stripped), else the only CameraInfo topic in the image's namespace, else the only one there is;
    None when that leaves a choice (the caller asks for the topic)."""
    without_transport = image_topic.removesuffix("/compressed")
    camera = without_transport
    for suffix in IMAGE_NAME_SUFFIXES:
        camera = camera.removesuffix(suffix)
    if f"{camera}/camera_info" in camera_info_topics:
        return f"{camera}/camera_info"
    namespace = without_transport.rsplit("/", 1)[0]
    same_namespace = [t for t in camera_info_topics if t.rsplit("/", 1)[0] == namespace]
    if len(same_namespace) == 1:
        return same_namespace[0]
    return camera_info_topics[0] if len(camera_info_topics) == 1 else None


def _default_typestore():
    from rosbags.typesys import Stores, get_typestore

    store = getattr(Stores, "ROS2_KILTED", None) or Stores.LATEST
    return get_typestore(store)


class BagReader:
    """Context manager over one bag: ``with BagReader(path) as bag: bag.topics; bag.messages([...])``."""

    def __init__(self, path: str | Path) -> None:
        from rosbags.highlevel import AnyReader

        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"bag '{self.path}' does not exist; pass a ROS 1 .bag file, a ROS 2 bag folder or a "
                           ".mcap / .db3 file")
        self._reader = AnyReader([bag_target(self.path)], default_typestore=_default_typestore())
        self._open = False

    def __enter__(self) -> BagReader:
        try:
            self._reader.open()
        except Exception as exc:  # rosbags raises its own error types
            raise BagError(f"cannot open bag '{self.path}': {exc}") from exc
        self._open = True
        return self

    def __exit__(self, *exc_info) -> None:
        if self._open:
            self._reader.close()
            self._open = False

    @property
    def is_ros1(self) -> bool:
        return not self._reader.is2

    @property
    def typestore(self):
        """The typestore the bag's messages were deserialised with (the bag's own definitions when stored)."""
        return self._reader.typestore

    @property
    def topics(self) -> dict[str, str]:
        """topic -> message type (ROS 2 style name, e.g. sensor_msgs/msg/Image)."""
        return {c.topic: c.msgtype for c in self._reader.connections}

    @property
    def message_counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for c in self._reader.connections:
            counts[c.topic] += c.msgcount
        return dict(counts)

    def describe_topics(self) -> str:
        """One line per topic: name, type, message count."""
        counts = self.message_counts
        lines = [f"  {t} [{m}] ({counts.get(t, 0)} msgs)" for t, m in sorted(self.topics.items())]
        return "\n".join(lines) if lines else "  (no topics)"

    def require_topic(self, topic: str, expected_types: Sequence[str] | None = None) -> str:
        """Return the topic's type; raise TopicNotFoundError listing the bag's topics when absent or mistyped."""
        topics = self.topics
        if topic not in topics:
            raise TopicNotFoundError(
                f"topic '{topic}' is not in bag '{self.path}'. The bag has:\n{self.describe_topics()}\n"
                "Pass one of these topics (e.g. --image-topic / --depth-topic / --lidar-topic)."
            )
        if expected_types and topics[topic] not in expected_types:
            raise TopicNotFoundError(
                f"topic '{topic}' in bag '{self.path}' has type {topics[topic]}, expected "
                f"{' or '.join(expected_types)}. The bag has:\n{self.describe_topics()}"
            )
        return topics[topic]

    def topics_of_type(self, msgtype: str) -> list[str]:
        return sorted(t for t, m in self.topics.items() if m == msgtype)

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
        """Messages of the given topics (all when None) in log-time order."""
        if topics is None:
            connections = list(self._reader.connections)
        else:
            wanted = list(dict.fromkeys(topics))
            for t in wanted:
                self.require_topic(t)
            connections = [c for c in self._reader.connections if c.topic in wanted]
            if not connections:
                return  # rosbags reads every connection when given none
        for connection, timestamp, raw in self._reader.messages(connections=connections):
            message = self._reader.deserialize(raw, connection.msgtype)
            yield BagMessage(connection.topic, connection.msgtype, int(timestamp), message, bytes(raw))

    def read_transforms(self, topics: Sequence[str] = TF_TOPICS) -> TransformStore:
        """Collect every transform on /tf_static and /tf (those present) into a TransformStore."""
        store = TransformStore()
        present = [t for t in topics if t in self.topics]
        for item in self.messages(present):
            store.add_message(item.message, static=item.topic.endswith("tf_static"))
        return store

    def count(self, topic: str) -> int:
        return self.message_counts.get(topic, 0)
