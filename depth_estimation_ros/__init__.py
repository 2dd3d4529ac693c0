"""Monocular metric depth estimation for ROS 2 (node, engines, networks, evaluation)."""

__version__ = "0.1.0"
