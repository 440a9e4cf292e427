"""Launches corr_node (and optionally corr_player and corr_recorder) for a set of cameras.

    ros2 launch corr corr.launch.py namespace:=robot1 ego_image:=/head_cam/color/image_raw \
        params_file:=/path/corr_node.yaml

Arguments:
    namespace: namespace of every node (topics are relative, so they move with it).
    params_file: corr_node parameter file (default: the package's config/corr_node.yaml).
    ego_image, exo1_image: topics remapped onto ego/image_raw and exo1/image_raw (the default
        cameras of config/corr_node.yaml; write your own file and remaps for other camera names).
    play: also start corr_player on ``episode`` (a DAVIS-layout folder) with config/player.yaml.
    record: also start corr_recorder writing labels and the summary to ``bag_out``.
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
            default_value=PathJoinSubstitution([config_dir, "corr_node.yaml"]),
            description="corr_node parameter file",
        ),
        DeclareLaunchArgument("ego_image", default_value="ego/image_raw", description="ego camera images"),
        DeclareLaunchArgument("exo1_image", default_value="exo1/image_raw", description="exo1 camera images"),
        DeclareLaunchArgument("play", default_value="false", description="also start corr_player"),
        DeclareLaunchArgument(
            "episode", default_value="", description="DAVIS-layout episode for corr_player"
        ),
        DeclareLaunchArgument("record", default_value="false", description="also start corr_recorder"),
        DeclareLaunchArgument(
            "bag_out", default_value="corr_labels_bag", description="bag corr_recorder writes"
        ),
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
    player = Node(
        package="corr",
        executable="corr_player",
        name="corr_player",
        namespace=namespace,
        parameters=[
            PathJoinSubstitution([config_dir, "player.yaml"]),
            {"root": LaunchConfiguration("episode")},
        ],
        condition=IfCondition(LaunchConfiguration("play")),
        output="screen",
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
    return LaunchDescription([*args, corr_node, player, recorder])
