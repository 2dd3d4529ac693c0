"""Play a bag onto ROS 2 topics over DDS, like ``ros2 bag play``, for machines without rosbag2.

Reads ROS 2 bags (sqlite3, MCAP) and ROS 1 bags with the ``rosbags`` library and publishes every message with
its original timing (scaled by ``--rate``). ROS 2 payloads are published as-is (serialised CDR); ROS 1 messages
and restamped messages are re-serialised as ROS 2 CDR. ``--restamp`` replaces header stamps with the player's
clock at publish time (messages that shared a stamp, e.g. an image and its CameraInfo, keep sharing one), so
stamp-to-publish latency is measurable without /clock. ``--clock`` publishes /clock for use_sim_time instead.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import time
from collections import OrderedDict

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from depth_estimation_ros.data.bag_reading import BagReader
from depth_estimation_ros.errors import EXPECTED_ERRORS, report_error
from depth_estimation_ros.messages.message_decoding import header_stamp_ns


def ros_message_class(msgtype: str):
    """'sensor_msgs/msg/Image' -> the rclpy message class; a clear error when the package is not installed."""
    package, kind, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError) as exc:
        raise RuntimeError(f"message type {msgtype} is not installed here; install the ROS package '{package}' "
                           "or leave the topic out with --topics") from exc


class BagPlayer(Node):
    def __init__(self, reliability: str = "reliable") -> None:
        super().__init__("bag_player")
        self._qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable"
                               else ReliabilityPolicy.BEST_EFFORT)
        self._topic_publishers = {}

    def publisher(self, topic: str, msgtype: str):
        if topic not in self._topic_publishers:
            self._topic_publishers[topic] = self.create_publisher(ros_message_class(msgtype), topic, self._qos)
        return self._topic_publishers[topic]

    def wait_for_subscribers(self, wanted: dict[str, int], timeout: float) -> bool:
        """Wait until each topic has at least its number of matched subscriptions."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._topic_publishers[t].get_subscription_count() >= n for t, n in wanted.items()):
                # discovery is asymmetric: the subscribers' side may not have matched us yet, and what is published
                # before it has is lost; the wait leaves room for a loaded machine
                time.sleep(1.0)
                return True
            time.sleep(0.05)
        return False


def _restamped(message, stamp_ns: int):
    out = copy.deepcopy(message)
    out.header.stamp.sec = stamp_ns // 1_000_000_000
    out.header.stamp.nanosec = stamp_ns % 1_000_000_000
    return out


def play(bag_path: str, topics: list[str] | None = None, rate: float = 1.0, restamp: bool = False,
         wait_for: list[str] | None = None, wait_timeout: float = 30.0, reliability: str = "reliable",
         remap: dict[str, str] | None = None) -> int:
    """Publish the bag's messages; returns the number published. rclpy must be initialised."""
    remap = remap or {}
    player = BagPlayer(reliability)
    published = 0
    try:
        with BagReader(bag_path) as bag:
            selected = topics or list(bag.topics)
            for t in selected:
                player.publisher(remap.get(t, t), bag.require_topic(t))
            wanted = {}
            for item in wait_for or []:
                topic, _, count = item.partition(":")
                wanted[remap.get(topic, topic)] = int(count or 1)
            if wanted and not player.wait_for_subscribers(wanted, wait_timeout):
                raise RuntimeError(f"too few subscribers on {wanted} within {wait_timeout:.0f} s")
            new_stamps: OrderedDict[int, int] = OrderedDict()  # original stamp -> new stamp, recent ones
            start_wall = first_log = None
            for item in bag.messages(selected):
                if first_log is None:
                    start_wall, first_log = time.monotonic(), item.log_time_ns
                due = start_wall + (item.log_time_ns - first_log) * 1e-9 / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                publisher = player.publisher(remap.get(item.topic, item.topic), item.msgtype)
                message = item.message
                if restamp and hasattr(message, "header"):
                    original = header_stamp_ns(message)
                    if original not in new_stamps:
                        new_stamps[original] = player.get_clock().now().nanoseconds
                        if len(new_stamps) > 64:
                            new_stamps.popitem(last=False)
                    message = _restamped(message, new_stamps[original])
                if bag.is_ros1 or message is not item.message:
                    payload = bag.typestore.serialize_cdr(message, item.msgtype)
                else:
                    payload = item.raw
                publisher.publish(bytes(payload))
                published += 1
    finally:
        player.destroy_node()
    return published


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bag", help="ROS 2 bag folder (sqlite3 / MCAP), a .mcap / .db3 file or a ROS 1 .bag")
    parser.add_argument("--topics", nargs="*", help="topics to play (default: all)")
    parser.add_argument("--rate", type=float, default=1.0, help="playback rate factor")
    parser.add_argument("--restamp", action="store_true", help="replace header stamps with the publish time")
    parser.add_argument("--wait-for", nargs="*", default=None, metavar="TOPIC[:N]",
                        help="topics that need (N, default 1) subscribers before playing")
    parser.add_argument("--remap", nargs="*", default=[], metavar="FROM:=TO", help="topic remaps")
    args, ros_args = parser.parse_known_args(argv)
    if args.rate <= 0:
        parser.error("--rate must be > 0")
    remap = dict(r.split(":=", 1) for r in args.remap)
    rclpy.init(args=ros_args)
    try:
        count = play(args.bag, args.topics, args.rate, args.restamp, args.wait_for, remap=remap)
        print(f"play_bag: published {count} messages from {args.bag}")
    except EXPECTED_ERRORS as exc:
        raise SystemExit(report_error("play_bag", exc)) from None
    finally:
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    main()
