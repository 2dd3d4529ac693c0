"""ament_python / pip package definition for depth_estimation_ros.

``colcon build`` installs launch/, config/ and the bundled models and sample bag into
share/depth_estimation_ros; ``pip install .`` installs the same package into a plain environment.
The console scripts land in lib/depth_estimation_ros (setup.cfg) so ``ros2 run`` finds them.
"""

from glob import glob

from setuptools import setup

PACKAGE = "depth_estimation_ros"


def _files(pattern: str) -> list[str]:
    return sorted(glob(pattern))


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[
        PACKAGE,
        f"{PACKAGE}.frame",
        f"{PACKAGE}.messages",
        f"{PACKAGE}.data",
        f"{PACKAGE}.stream",
        f"{PACKAGE}.resources",
        f"{PACKAGE}.pipeline",
        f"{PACKAGE}.onnx_contract",
        f"{PACKAGE}.engines",
        f"{PACKAGE}.networks",
        f"{PACKAGE}.evaluation",
        f"{PACKAGE}.ros",
        f"{PACKAGE}.ros.benchmarks",
        f"{PACKAGE}.benchmarks",
        "depth_estimation_training",
    ],
    package_dir={"depth_estimation_training": "training"},
    package_data={
        PACKAGE: ["models/*.onnx", "models/*.json", "models/*.md", "sample/*", "sample/*/*"],
        f"{PACKAGE}.networks": ["*.json"],
        "depth_estimation_training": ["configs/*.yaml", "splits/*.txt"],
    },
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", _files("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", _files("config/*.yaml") + _files("config/*.xml")),
        (f"share/{PACKAGE}/models", _files(f"{PACKAGE}/models/*")),
    ],
    python_requires=">=3.10",  # ROS 2 Humble and JetPack 6 (Ubuntu 22.04) run Python 3.10
    install_requires=["setuptools", "numpy", "pyyaml", "opencv-python-headless", "onnx", "onnxruntime", "rosbags"],
    zip_safe=False,
    maintainer="depth_estimation_ros maintainers",
    maintainer_email="maintainers@depth-estimation-ros.invalid",
    description="Monocular metric depth estimation node, training and evaluation for ROS 2.",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "depth_estimation_node = depth_estimation_ros.ros.node:main",
            "depth_estimation_lifecycle_node = depth_estimation_ros.ros.lifecycle_node:main",
            "depth-demo = depth_estimation_ros.ros.demo:main",
            "play_bag = depth_estimation_ros.ros.bag_player:main",
            "depth-export = depth_estimation_ros.networks.export:main",
            "depth-stamp-reference = depth_estimation_ros.engines.self_test_reference:main",
            "depth-build-engine = depth_estimation_ros.engines.build_engine:main",
            "build_engine = depth_estimation_ros.engines.build_engine:main",
            "depth-eval = depth_estimation_ros.evaluation.cli:main",
            "evaluate = depth_estimation_ros.evaluation.cli:main",
            "depth-extract = depth_estimation_training.extract:main",
            "depth-poses = depth_estimation_training.poses:main",
            "depth-train = depth_estimation_training.train:main",
        ],
    },
)
