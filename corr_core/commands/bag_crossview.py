"""``corr bag process --crossview``: what the cross-view link reads from a bag beside the images.

The live node gets a camera's intrinsics on ``<cam>/camera_info``, a moving camera's pose on
``<cam>/pose`` and the anchor's depth on ``<anchor>/depth_registered/image_rect``; a recording of
those topics gives the same to :class:`~corr_core.crossview.multicam.CrossViewLink` here, set by
set, with the node's checks (what does not fit is dropped and counted, as in the node).
"""

from __future__ import annotations

from typing import Any

from corr_core.errors import ConfigError, DataError
from corr_core.topics import DEPTH, POSE, camera_topic

__all__ = ["crossview_topics", "feed_link"]


def crossview_topics(link: Any, bag_topics: dict[str, Any], depth: bool) -> dict[str, str]:
    """The reader keys (:func:`~corr_core.data.bag.read_synced`) of what ``link``'s rig needs: every
    camera's ``/<cam>/camera_info`` and the moving cameras' ``/<cam>/pose`` where the bag has them,
    and with ``depth`` the anchor's depth image.

    Raises:
        ConfigError: ``depth`` asked and the bag has no depth topic for the anchor camera.
    """
    if link is None or link.rig is None:
        return {}
    keys = {f"{c}/camera_info": f"/{c}/camera_info" for c in link.cameras if f"/{c}/camera_info" in bag_topics}
    keys.update({f"{c}/pose": camera_topic(c, POSE, True) for c in sorted(link.rig.moving)
                 if camera_topic(c, POSE, True) in bag_topics})
    if depth:
        topic = camera_topic(link.anchor, DEPTH, True)
        if topic not in bag_topics:
            raise ConfigError(f"--depth: the bag has no {topic} (the anchor camera's depth, registered to its images); "
                              f"its topics: {sorted(bag_topics)}")
        keys[f"{link.anchor}/depth"] = topic
    return keys


def feed_link(link: Any, synced: Any, drops: Any) -> None:
    """Hands ``link`` the intrinsics, poses and anchor depth that came with one set of the bag
    (:class:`~corr_core.data.bag.reader.SyncedFrames`); what does not fit is dropped and counted
    on ``drops`` with the node's reasons."""
    if link is None or link.rig is None:
        return
    for cam, info in synced.camera_info.items():
        try:
            link.rig.set_intrinsics(cam, info.K, (info.height, info.width))
        except DataError as exc:
            drops.drop(cam, "camera_info", str(exc))
    for cam, pose in synced.poses.items():
        try:
            link.put_pose(cam, synced.headers[cam].stamp_ns, pose.T, pose.frame_id)
        except DataError as exc:
            drops.drop(cam, "pose", str(exc))
    depth = synced.depths.get(link.anchor)
    if depth is not None:
        image = synced.images[link.anchor]
        try:
            link.put_depth(synced.headers[link.anchor].stamp_ns, depth, image.shape[:2])
        except DataError as exc:
            drops.drop(link.anchor, "depth", str(exc))
