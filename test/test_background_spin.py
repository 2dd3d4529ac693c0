"""BackgroundSpinner over real rclpy: callbacks run while it spins, and stopping never leaves a thread spinning."""

import time

from depth_estimation_ros.ros.background_spin import BackgroundSpinner


def test_spinner_delivers_messages_and_stops_right_after_start(rclpy_context):
    import rclpy.executors
    from rclpy.node import Node
    from std_msgs.msg import String

    node = Node("background_spin_test")
    received = []
    node.create_subscription(String, "/background_spin_test", received.append, 10)
    publisher = node.create_publisher(String, "/background_spin_test", 10)
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    spinner = BackgroundSpinner(executor).start()
    try:
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            publisher.publish(String(data="ping"))
            time.sleep(0.05)
        assert received and received[0].data == "ping"
    finally:
        assert spinner.stop(timeout=5.0)
    # stopped at once, within the first spin_once: the thread has ended before stop() returns
    for _ in range(50):
        executor = rclpy.executors.SingleThreadedExecutor()
        executor.add_node(node)
        started = time.monotonic()
        assert BackgroundSpinner(executor, period=0.01).start().stop(timeout=5.0)
        assert time.monotonic() - started < 1.0
    node.destroy_node()


def test_spinner_needs_a_running_context(rclpy_context):
    import rclpy
    import rclpy.executors

    context = rclpy.Context()
    context.init()
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    spinner = BackgroundSpinner(executor, period=0.01).start()
    context.shutdown()  # rclpy.shutdown() of that context elsewhere: the thread ends by itself
    assert spinner.stop(timeout=5.0)
