"""The shipped YAML files through the node's real ``--params-file`` path, and the launch file."""

from __future__ import annotations

import ast

import pytest
import yaml
from node_harness import REPO, NodeClient, NodeProcess

from depth_estimation_ros.ros.parameters import PARAMETERS


@pytest.mark.parametrize("config", ["lacdepth.yaml", "lacdepth_indoor.yaml", "gatdepth.yaml"])
def test_yaml_configs_load_through_params_file(rclpy_context, tmp_path, config):
    values = yaml.safe_load((REPO / "config" / config).read_text())["depth_estimation_node"]["ros__parameters"]
    assert set(values) == {p.name for p in PARAMETERS}, "the YAML documents every parameter"
    node = NodeProcess("/t_yaml", REPO / "config" / config, {}, tmp_path / "node.log", namespace=False)
    client = NodeClient(node)
    try:
        client.wait_ready(node)
        loaded = client.get_parameters(*values)
        for name, value in values.items():
            assert loaded[name] == value, name
    finally:
        client.close()
        node.stop()


def test_params_file_values_reach_the_node(rclpy_context, tmp_path):
    """Values that differ from the defaults prove the file is applied (not just the declared defaults)."""
    params = yaml.safe_load((REPO / "config" / "lacdepth.yaml").read_text())
    params["depth_estimation_node"]["ros__parameters"].update(
        {"max_depth": 12.5, "cloud_decimation": 3, "cloud_color": False, "qos.output.depth": 4})
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(params))
    node = NodeProcess("/t_yaml_custom", path, {}, tmp_path / "node.log", namespace=False)
    client = NodeClient(node)
    try:
        client.wait_ready(node)
        loaded = client.get_parameters("max_depth", "cloud_decimation", "cloud_color", "qos.output.depth")
        assert loaded == {"max_depth": 12.5, "cloud_decimation": 3, "cloud_color": False, "qos.output.depth": 4}
    finally:
        client.close()
        node.stop()


def test_unknown_model_fails_fast_with_a_clear_message(rclpy_context, tmp_path):
    node = NodeProcess("/t_bad_model", None, {"model": "no_such_model"}, tmp_path / "node.log")
    code = node.proc.wait(timeout=60)
    node.stop()
    assert code == 2
    log = node.log()
    assert "no_such_model" in log and "lacdepth" in log and "Traceback" not in log


def test_plain_node_refuses_an_engine_that_fails_its_self_test(rclpy_context, tmp_path):
    """Exit code 5 (errors.py: an engine that fails its accuracy check)."""
    from self_test_models import wrong_weights_model

    model = wrong_weights_model(tmp_path / "wrong_weights.onnx")
    node = NodeProcess("/t_self_test", None, {"model": str(model)}, tmp_path / "node.log")
    code = node.proc.wait(timeout=60)
    node.stop()
    assert code == 5
    log = node.log()
    assert "refusing the engine: self-test FAILED: onnxruntime fp32" in log and "abs_rel" in log
    assert "Traceback" not in log


def test_launch_file_declares_its_arguments_and_targets_the_node():
    """launch / launch_ros are not installable here (not on the package index): check the file statically."""
    source = (REPO / "launch" / "depth_estimation.launch.py").read_text()
    tree = ast.parse(source)
    arguments = next(node for node in ast.walk(tree) if isinstance(node, ast.Assign)
                     and any(getattr(t, "id", "") == "ARGUMENTS" for t in node.targets))
    names = [elt.elts[0].value for elt in arguments.value.elts]
    assert names == ["params_file", "model", "namespace", "image", "camera_info", "use_sim_time", "log_level",
                     "lifecycle"]
    assert 'executable="depth_estimation_node"' in source and 'package="depth_estimation_ros"' in source
    assert 'LifecycleNode(executable="depth_estimation_lifecycle_node"' in source
    for remap in ('"image"', '"image/compressed"', '"camera_info"'):
        assert f"({remap}," in source
    assert "generate_launch_description" in {f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}
    compile(source, "depth_estimation.launch.py", "exec")


def test_launch_description_builds_where_launch_ros_is_installed(tmp_path):
    launch_ros = pytest.importorskip("launch_ros", reason="launch_ros is not installed (not on the package index; "
                                     "present in a ROS 2 install)")
    import importlib.util

    import launch

    spec = importlib.util.spec_from_file_location("depth_launch", REPO / "launch" / "depth_estimation.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    context = launch.LaunchContext()
    for entity in description.entities:
        if isinstance(entity, launch.actions.DeclareLaunchArgument):
            context.launch_configurations[entity.name] = entity.default_value[0].perform(context) \
                if entity.default_value else ""
    context.launch_configurations["params_file"] = str(REPO / "config" / "lacdepth.yaml")
    nodes = module._node(context)
    assert isinstance(nodes[0], launch_ros.actions.Node)
    assert not isinstance(nodes[0], launch_ros.actions.LifecycleNode)
    context.launch_configurations["lifecycle"] = "true"
    assert isinstance(module._node(context)[0], launch_ros.actions.LifecycleNode)
