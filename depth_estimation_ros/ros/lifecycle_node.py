"""depth_estimation_node as a managed (lifecycle) node: the same wiring as the plain node (ros/node_wiring.py),
driven by lifecycle_msgs ``change_state`` (e.g. from Nav2's lifecycle manager) instead of running from the start.

- configure: resolve the model, build or load the engine, run its self-test, create the output publishers;
  a failure returns FAILURE (the node stays unconfigured) with the reason in the log and in diagnostics (ERROR)
- activate: subscribe to image / camera_info and start processing; deactivate: unsubscribe and stop
- cleanup: destroy the output publishers and free the engine
- shutdown (from any state): all of the above undone; the node is finalized

Diagnostics are published in every state (key ``state``). Started with ``lifecycle:=true`` in the launch file, or
``ros2 run depth_estimation_ros depth_estimation_lifecycle_node``.
"""

from __future__ import annotations

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from depth_estimation_ros.ros.node import spin_node
from depth_estimation_ros.ros.node_wiring import CONFIGURE_ERRORS, DepthNodeWiring


class DepthEstimationLifecycleNode(LifecycleNode):
    def __init__(self, **kwargs) -> None:
        super().__init__("depth_estimation_node", **kwargs)
        self.wiring = DepthNodeWiring(self)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.wiring.configure()
        except CONFIGURE_ERRORS as exc:
            self.wiring.report_configure_error(str(exc))
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.wiring.activate()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.wiring.deactivate()
        self.get_logger().info("deactivated: unsubscribed, nothing is published until activate")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.wiring.cleanup()
        self.get_logger().info("cleaned up: publishers destroyed, engine freed")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.wiring.shutdown()
        self.get_logger().info(f"shut down from {state.label}")
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        # an exception escaped a transition: free everything and go back to unconfigured
        self.wiring.cleanup()
        self.wiring.report_configure_error(f"error during a transition from {state.label}; cleaned up")
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        if hasattr(self, "wiring"):
            self.wiring.cleanup()
        super().destroy_node()


def main(args=None) -> None:
    spin_node(DepthEstimationLifecycleNode, args)


if __name__ == "__main__":
    main()
