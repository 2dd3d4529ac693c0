"""Environment for ROS 2 processes that talk only on this machine (demo, tests, benchmarks).

- ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST keeps DDS discovery and traffic on the loopback interface.
- Fast DDS gets config/fastdds_large_data.xml unless the user chose a profile: its 64 MiB shared-memory segment
  carries a whole depth image or point cloud per sample; with the default 512 KiB segment, large samples are
  fragmented and a fragment lost under CPU load waits seconds for a reliability repair (or is replaced by the
  next sample with history depth 1).
"""

from __future__ import annotations

import os
from pathlib import Path

from depth_estimation_ros.resources.package_share import find_share_path

FASTDDS_PROFILE = "fastdds_large_data.xml"


def fastdds_profile_path() -> Path | None:
    """The large-data profile from a colcon install, a pip install or the source tree (package_share)."""
    return find_share_path(f"config/{FASTDDS_PROFILE}")


def local_ros_environment(domain_id: int | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment (os.environ by default) set up for machine-local ROS 2 communication."""
    env = dict(os.environ if base is None else base)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    profile = fastdds_profile_path()
    if profile is not None and not env.get("FASTDDS_DEFAULT_PROFILES_FILE"):
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    env["PYTHONUNBUFFERED"] = "1"
    return env
