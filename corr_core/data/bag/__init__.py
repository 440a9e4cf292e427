"""rosbag2 files (mcap or sqlite3) read and written with ``rosbags``, never with rclpy.

Writing: :class:`BagWriter` (:mod:`~corr_core.data.bag.writer`) turns numpy images, camera
calibrations and camera poses into ``sensor_msgs`` / ``geometry_msgs`` messages (ROS 2 Jazzy definitions, CDR serialisation,
:mod:`~corr_core.data.bag.messages`) in a new bag folder.

Reading: :func:`read_synced` (:mod:`~corr_core.data.bag.reader`) yields time-synchronised
multi-camera frames (one image per camera, stamps within a slop, matched by
:class:`corr_core.sync.ApproximateSynchronizer`), decoding ``sensor_msgs/msg/Image`` and
``sensor_msgs/msg/CompressedImage`` into numpy arrays; :func:`bag_info`
(:mod:`~corr_core.data.bag.source`) summarises a bag. Damaged bags raise :class:`CorruptBagError`
only after every complete set read before the damage has been yielded
(:mod:`~corr_core.data.bag.salvage`).

The pixel codec (:func:`decode_image`, :func:`decode_compressed`, :func:`to_rgb`) lives in
:mod:`corr_core.data.image_codec`, which the live ROS side imports without any bag module; it is
re-exported here for the bag code's users.
"""

from corr_core.data.bag.messages import (
    CAMERA_INFO_TYPE,
    COMPRESSED_TYPE,
    IMAGE_TYPE,
    POSE_TYPE,
    TYPESTORE,
    CameraCalibration,
    StampedPose,
    decode_camera_info,
    decode_pose,
    encode_camera_info,
    encode_compressed,
    encode_image,
    encode_pose,
    header_stamp_ns,
    make_header,
)
from corr_core.data.bag.reader import BagReader, FrameHeader, SyncedFrames, SyncStats, read_synced
from corr_core.data.bag.source import bag_info
from corr_core.data.bag.writer import STORAGES, BagWriter
from corr_core.data.image_codec import decode_compressed, decode_image, to_rgb
from corr_core.errors import CorruptBagError

__all__ = [
    "CAMERA_INFO_TYPE",
    "COMPRESSED_TYPE",
    "IMAGE_TYPE",
    "POSE_TYPE",
    "STORAGES",
    "TYPESTORE",
    "BagReader",
    "BagWriter",
    "CameraCalibration",
    "CorruptBagError",
    "FrameHeader",
    "StampedPose",
    "SyncStats",
    "SyncedFrames",
    "bag_info",
    "decode_camera_info",
    "decode_compressed",
    "decode_image",
    "decode_pose",
    "encode_camera_info",
    "encode_compressed",
    "encode_image",
    "encode_pose",
    "header_stamp_ns",
    "make_header",
    "read_synced",
    "to_rgb",
]
