"""depth_estimation_node: camera images in; metric depth, depth camera_info, point cloud, colourised depth and
diagnostics out.

The plain (default) node: configured and active from construction to exit. All wiring is in ros/node_wiring.py,
shared with the managed node (ros/lifecycle_node.py); this file only drives it.
"""

from __future__ import annotations

from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from depth_estimation_ros.errors import report_error
from depth_estimation_ros.ros.node_wiring import CONFIGURE_ERRORS, DepthNodeWiring


class DepthEstimationNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("depth_estimation_node", **kwargs)
        self.wiring = DepthNodeWiring(self)
        self.wiring.configure()
        self.wiring.activate()

    def destroy_node(self) -> None:
        # also called by rclpy's shutdown for a node whose __init__ failed half-way
        if hasattr(self, "wiring"):
            self.wiring.cleanup()
        super().destroy_node()


def spin_node(make_node: Callable[[], Node], args: list[str] | None = None) -> None:
    """The process around a node (plain or managed): init, spin until Ctrl-C or shutdown, clean up. A configuration
    error raised while the node is built (the plain node configures in its constructor) ends the process with the
    exit code of its kind (errors.py: 2 input such as a missing model, 3 parameters, 4 engine, 5 self-test) and the
    reason on stderr."""
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except CONFIGURE_ERRORS as exc:
        raise SystemExit(report_error("depth_estimation_node", exc)) from exc
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def main(args=None) -> None:
    spin_node(DepthEstimationNode, args)


if __name__ == "__main__":
    main()
