"""Shared test set-up: real data location and machine-local ROS 2 (loopback discovery, own domain id)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from shared_data import DATA as SHARED_DATA

from depth_estimation_ros.ros.ros_environment import local_ros_environment

REPO = Path(__file__).resolve().parents[1]

# Before any rclpy.init in this process or its children: DDS stays on this machine, in a domain of our own so
# parallel runs do not see each other's nodes.
os.environ.update(local_ros_environment(domain_id=1 + os.getpid() % 100))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real test data not found at {SHARED_DATA}: clone the repository with shared/ beside it")
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def rclpy_context():
    """One rclpy context for the test process (real rclpy over Fast DDS)."""
    import rclpy

    owned = not rclpy.ok()
    if owned:
        rclpy.init()
    yield
    if owned and rclpy.ok():
        rclpy.shutdown()
