"""Topic names of a camera's geometry, relative to the camera's namespace (``<cam>/...``), defined
once for the node, the player, the bag reader's users and the sim bags that carry them."""

#: A moving camera's optical-frame pose (``geometry_msgs/msg/PoseStamped`` in the rig's frame).
POSE = "pose"
#: An RGB-D camera's depth registered to its colour image (16UC1 mm or 32FC1 m; depth_image_proc's name).
DEPTH = "depth_registered/image_rect"


def camera_topic(cam: str, name: str, absolute: bool = False) -> str:
    """``<cam>/<name>`` (``/<cam>/<name>`` with ``absolute``, as bags record it)."""
    return f"{'/' if absolute else ''}{cam}/{name}"
