"""Launches corr_node for a two-camera ego/exo rig (config/rig_ego_exo.yaml).

    ros2 launch corr rig_ego_exo.launch.py ego_image:=/head_cam/color/image_raw \
        exo1_image:=/tripod_cam/color/image_raw

Arguments:
    namespace: namespace of the nodes (topics are relative, so they move with it).
    params_file: corr_node parameter file (default: the package's config/rig_ego_exo.yaml).
    ego_image, exo1_image: topics remapped onto ego/image_raw and exo1/image_raw.
    record: also start corr_recorder writing the labels and the summary to ``bag_out``.
"""

from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    config_dir = PathJoinSubstitution([FindPackageShare("corr"), "config"])
    namespace = LaunchConfiguration("namespace")
    args = [
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the nodes"),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([config_dir, "rig_ego_exo.yaml"]),
            description="corr_node parameter file",
        ),
        DeclareLaunchArgument("ego_image", default_value="ego/image_raw", description="ego camera images"),
        DeclareLaunchArgument("exo1_image", default_value="exo1/image_raw", description="exo1 camera images"),
        DeclareLaunchArgument("record", default_value="false", description="also start corr_recorder"),
        DeclareLaunchArgument("bag_out", default_value="corr_labels_bag", description="bag corr_recorder writes"),
    ]
    corr_node = Node(
        package="corr",
        executable="corr_node",
        name="corr_node",
        namespace=namespace,
        parameters=[LaunchConfiguration("params_file")],
        remappings=[
            ("ego/image_raw", LaunchConfiguration("ego_image")),
            ("exo1/image_raw", LaunchConfiguration("exo1_image")),
        ],
        output="screen",
        emulate_tty=True,
    )
    recorder = Node(
        package="corr",
        executable="corr_recorder",
        name="corr_recorder",
        namespace=namespace,
        parameters=[
            {
                "output": LaunchConfiguration("bag_out"),
                "topics": [
                    "ego/labels:sensor_msgs/msg/Image",
                    "exo1/labels:sensor_msgs/msg/Image",
                    "corr/summary:std_msgs/msg/String",
                ],
            }
        ],
        condition=IfCondition(LaunchConfiguration("record")),
        output="screen",
    )
    return LaunchDescription([*args, corr_node, recorder])
