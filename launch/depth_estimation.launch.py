"""Launch depth_estimation_node.

Example:
  ros2 launch depth_estimation_ros depth_estimation.launch.py model:=lacdepth \
      image:=/camera/color/image_rect camera_info:=/camera/color/camera_info namespace:=front
lifecycle:=true starts the managed node (depth_estimation_lifecycle_node) instead of the plain one.
"""

import os

import yaml
from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from launch import LaunchDescription

ARGUMENTS = (
    ("params_file", None, "YAML in the 'depth_estimation_node: ros__parameters:' layout"),
    ("model", "", "Override the model parameter (lacdepth, lacdepth_indoor, gatdepth or an .onnx path); "
                  "empty keeps params_file's"),
    ("namespace", "", "Namespace of the node and its topics"),
    ("image", "image", "Input image base topic (image/compressed is remapped to <image>/compressed)"),
    ("camera_info", "camera_info", "Input CameraInfo topic"),
    ("use_sim_time", "false", "Use /clock, e.g. when replaying a bag"),
    ("log_level", "info", "Logger level"),
    ("lifecycle", "false", "true: the managed (lifecycle) node, which waits unconfigured for change_state (e.g. from "
                           "Nav2's lifecycle manager); false: the plain node, running from the start"),
)


def _parameters_from_file(path: str):
    """The node's section of a 'depth_estimation_node: ros__parameters:' YAML as a dict, so that it also applies
    when the node runs in a namespace (a params file key must match the fully qualified node name); other
    layouts (e.g. '/**:') are passed through as a file."""
    with open(path) as f:
        document = yaml.safe_load(f) or {}
    section = document.get("depth_estimation_node", {})
    return section.get("ros__parameters", path) if isinstance(section, dict) else path


def _node(context):
    value = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    parameters = [_parameters_from_file(value["params_file"]),
                  {"use_sim_time": value["use_sim_time"].lower() == "true"}]
    if value["model"]:
        parameters.append({"model": value["model"]})
    common = dict(
        package="depth_estimation_ros",
        name="depth_estimation_node",
        namespace=value["namespace"],
        parameters=parameters,
        remappings=[
            ("image", value["image"]),
            ("image/compressed", value["image"].rstrip("/") + "/compressed"),
            ("camera_info", value["camera_info"]),
        ],
        arguments=["--ros-args", "--log-level", value["log_level"]],
        output="screen",
        emulate_tty=True,
    )
    if value["lifecycle"].lower() == "true":
        return [LifecycleNode(executable="depth_estimation_lifecycle_node", **common)]
    return [Node(executable="depth_estimation_node", **common)]


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(get_package_share_directory("depth_estimation_ros"), "config", "lacdepth.yaml")
    declared = [
        DeclareLaunchArgument(name, default_value=default_params if default is None else default, description=text)
        for name, default, text in ARGUMENTS
    ]
    return LaunchDescription([*declared, OpaqueFunction(function=_node)])
