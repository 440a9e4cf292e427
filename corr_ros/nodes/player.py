"""``corr_player``: plays a recorded episode on camera topics for ``corr_node``.

Sources (one of):

* ``root``: a DAVIS-layout episode with one folder per camera, as ``corr generate sim`` writes it:
  ``<root>/<camera>/JPEGImages/<resolution>/<sequence>/%05d.jpg`` and the first-frame masks in
  ``<root>/<camera>/Annotations/<resolution>/<sequence>/00000.png``. Stamps are synthetic
  (start time + i / rate), the same for every camera of a frame.
* ``bag``: a rosbag2 file (mcap or sqlite3); images are synchronised across cameras and keep the
  bag's header stamps and frame ids.

Per camera it publishes ``<camera>/image_raw`` (rgb8) and ``<camera>/camera_info`` at ``rate``
(a bag's ``/<camera>/pose`` and ``/<camera>/depth_registered/image_rect``, where it has them, go out
on the same relative topics just before each image, for ``corr_node``'s camera rig), and, right
before the first frame, the first-frame mask on ``<camera>/masks_in`` (mono16, stamped
like the first frame; it waits until the subscribers acknowledged it). With
``wait_for_labels: true`` it publishes frame i+1 only after ``<camera>/labels`` for frame i arrived
from every camera (or ``labels_timeout`` passed), so a slow node drops nothing.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from corr_core.data.image_codec import depth_to_mm
from corr_core.errors import ConfigError, CorrError
from corr_core.topics import DEPTH, POSE, camera_topic
from corr_ros.conversions import (
    array_to_image,
    camera_info,
    labels_to_image,
    ns_to_stamp,
    pose_stamped,
    rgb_to_image,
    stamp_to_ns,
)
from corr_ros.params import ParamSpec, declare_and_read
from corr_ros.player_sources import BagEpisode, DavisEpisode, Frame
from corr_ros.qos import qos_from_parameters, qos_param_specs, reliable_qos

_T = Parameter.Type

#: Every parameter of corr_player.
PARAMS: list[ParamSpec] = [
    ParamSpec(
        "root", _T.STRING, "", "DAVIS-layout episode: <root>/<camera>/JPEGImages/<resolution>/<sequence>/"
    ),
    ParamSpec("bag", _T.STRING, "", "rosbag2 to play instead of root (header stamps kept)"),
    ParamSpec(
        "cameras",
        _T.STRING_ARRAY,
        [],
        "cameras to play; empty: every camera folder of root / every <camera>/image_raw topic of the bag",
        topic_tokens=True,
    ),
    ParamSpec("resolution", _T.STRING, "", "JPEGImages sub-folder (e.g. 480p); '' takes the first one"),
    ParamSpec("sequence", _T.STRING, "", "sequence folder; '' takes the first one"),
    ParamSpec("rate", _T.DOUBLE, 10.0, "frames per second published", range=(0.01, 1000.0)),
    ParamSpec("max_frames", _T.INTEGER, 0, "stop after this many frames (0: all)", range=(0, 10**9)),
    ParamSpec("publish_masks", _T.BOOL, True, "publish the first-frame masks on <camera>/masks_in first"),
    ParamSpec(
        "masks",
        _T.STRING_ARRAY,
        [],
        "label PNG per camera for masks_in (same order as cameras); default: the episode's first annotation",
    ),
    ParamSpec(
        "wait_for_labels", _T.BOOL, False, "lockstep: publish frame i+1 after <camera>/labels of frame i"
    ),
    ParamSpec(
        "labels_timeout", _T.DOUBLE, 10.0, "seconds to wait for the labels of a frame", range=(0.01, 3600.0)
    ),
    ParamSpec(
        "wait_for_subscribers",
        _T.DOUBLE,
        10.0,
        "seconds to wait for a subscriber on every <camera>/image_raw (and, in lockstep, a publisher "
        "on every <camera>/labels) before starting (0: do not wait)",
        range=(0.0, 3600.0),
    ),
    ParamSpec(
        "wait_for_topics",
        _T.STRING_ARRAY,
        [],
        "more published topics that need a subscriber before starting (within wait_for_subscribers), "
        "e.g. [ego/pose, ego/depth_registered/image_rect] so a camera rig has the first frame's geometry",
    ),
    ParamSpec(
        "slop", _T.DOUBLE, 0.02, "bag source: stamp slop (s) of the cross-camera sync", range=(0.0, 10.0)
    ),
    ParamSpec("frame_id_suffix", _T.STRING, "", "DAVIS source: header frame_id is <camera><suffix>"),
    *qos_param_specs(("output",)),
]


class LabelWaiter:
    """Remembers which (camera, stamp) labels arrived; waits for all cameras of one stamp."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._seen: dict[str, set[int]] = {}

    def on_labels(self, cam: str, msg: Image) -> None:
        with self._cond:
            self._seen.setdefault(cam, set()).add(stamp_to_ns(msg.header))
            self._cond.notify_all()

    def wait(self, stamps: dict[str, int], timeout: float, alive: Any) -> list[str]:
        """Waits until labels for every ``camera: stamp`` arrived; returns the cameras still missing."""
        deadline = time.monotonic() + timeout

        def missing() -> list[str]:
            return [c for c, s in stamps.items() if s not in self._seen.get(c, ())]

        with self._cond:
            while missing() and alive() and time.monotonic() < deadline:
                self._cond.wait(min(0.05, max(0.0, deadline - time.monotonic())))
            left = missing()
            for cam, stamp in stamps.items():  # forget what is no longer needed
                self._seen[cam] = {s for s in self._seen.get(cam, ()) if s > stamp}
            return left


class Player(Node):
    """The ``corr_player`` node; :meth:`run` plays the episode (call it outside the executor)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("corr_player", **kwargs)
        self.p = declare_and_read(self, PARAMS)
        if bool(self.p["root"]) == bool(self.p["bag"]):
            raise ConfigError("set exactly one of the parameters 'root' (DAVIS-layout episode) and 'bag'")
        if self.p["root"]:
            self.source: DavisEpisode | BagEpisode = DavisEpisode(
                self.p["root"],
                self.p["cameras"],
                self.p["resolution"],
                self.p["sequence"],
                self.p["frame_id_suffix"],
            )
        else:
            self.source = BagEpisode(self.p["bag"], self.p["cameras"], self.p["slop"])
        self.cameras = self.source.cameras
        if self.p["masks"] and len(self.p["masks"]) != len(self.cameras):
            raise ConfigError(
                f"parameter 'masks' has {len(self.p['masks'])} entries for cameras {self.cameras}"
            )
        out_qos = qos_from_parameters(self, "output")
        mask_qos = reliable_qos(depth=1, transient_local=True)
        self.image_pubs = {c: self.create_publisher(Image, f"{c}/image_raw", out_qos) for c in self.cameras}
        self.info_pubs = {
            c: self.create_publisher(CameraInfo, f"{c}/camera_info", out_qos) for c in self.cameras
        }
        self.mask_pubs = {c: self.create_publisher(Image, f"{c}/masks_in", mask_qos) for c in self.cameras}
        self.pose_pubs = {c: self.create_publisher(PoseStamped, camera_topic(c, POSE), out_qos)
                          for c in self.cameras}
        self.depth_pubs = {c: self.create_publisher(Image, camera_topic(c, DEPTH), out_qos) for c in self.cameras}
        self.extra_waits = self._extra_waits()
        self.waiter = LabelWaiter()
        self.label_subs = []
        if self.p["wait_for_labels"]:
            for cam in self.cameras:
                self.label_subs.append(self.create_subscription(
                    Image, f"{cam}/labels", lambda m, cam=cam: self.waiter.on_labels(cam, m), reliable_qos(10)
                ))
        self.published = 0
        self.label_timeouts = 0
        self.get_logger().info(
            f"playing {self.p['root'] or self.p['bag']} for cameras {self.cameras} at {self.p['rate']} Hz"
            + (" in lockstep with <camera>/labels" if self.p["wait_for_labels"] else "")
        )

    def _alive(self) -> bool:
        return self.context.ok()

    def _masks(self) -> dict[str, np.ndarray]:
        if self.p["masks"]:
            from corr_core.data.labels import read_label_png

            return {
                c: read_label_png(p, require_palette=False)
                for c, p in zip(self.cameras, self.p["masks"], strict=True)
                if p
            }
        return self.source.first_masks()

    def _wait_for_subscribers(self) -> None:
        timeout = float(self.p["wait_for_subscribers"])
        deadline = time.monotonic() + timeout
        pubs = list(self.image_pubs.values())
        if self.p["publish_masks"]:
            pubs += list(self.mask_pubs.values())
        pubs += self.extra_waits
        # in lockstep, our own labels readers must also have matched the node's writers, or the
        # labels of the first frame could go unheard and cost a labels_timeout
        subs = self.label_subs

        def lonely() -> list[str]:
            return [p.topic_name for p in pubs if p.get_subscription_count() == 0] + [
                s.topic_name for s in subs if s.get_publisher_count() == 0
            ]

        stop = threading.Event()
        while timeout > 0 and self._alive() and time.monotonic() < deadline:
            if not lonely():
                return
            stop.wait(0.05)
        if lonely() and timeout > 0:
            self.get_logger().warning(f"no peer after {timeout} s on {lonely()}; playing anyway")

    def _extra_waits(self) -> list[Any]:
        """The publishers of parameter ``wait_for_topics``.

        Raises:
            ConfigError: a topic this player does not publish (the ones it does are named).
        """
        mine: dict[str, Any] = {}
        for c in self.cameras:
            mine.update({f"{c}/image_raw": self.image_pubs[c], f"{c}/camera_info": self.info_pubs[c],
                         camera_topic(c, POSE): self.pose_pubs[c], camera_topic(c, DEPTH): self.depth_pubs[c],
                         f"{c}/masks_in": self.mask_pubs[c]})
        wanted = [str(t).strip("/") for t in self.p["wait_for_topics"]]
        unknown = [t for t in wanted if t not in mine]
        if unknown:
            raise ConfigError(f"parameter 'wait_for_topics': {unknown} are not topics this player publishes; "
                              f"it publishes {sorted(mine)}")
        return [mine[t] for t in wanted]

    def _publish_geometry(self, cam: str, frame: Frame, header: Header) -> None:
        """The camera's pose and depth of this frame, where the bag has them (stamped like its image)."""
        stamped = frame.poses.get(cam)
        if stamped is not None:
            self.pose_pubs[cam].publish(pose_stamped(stamped.T, Header(stamp=header.stamp, frame_id=stamped.frame_id)))
        depth = frame.depths.get(cam)
        if depth is not None:
            self.depth_pubs[cam].publish(array_to_image(depth_to_mm(depth), "16UC1", header))

    def run(self) -> int:
        """Plays the episode; returns the number of frames published."""
        masks = self._masks() if self.p["publish_masks"] else {}
        self._wait_for_subscribers()
        period = 1.0 / float(self.p["rate"])
        t0_ns = self.get_clock().now().nanoseconds
        start = time.monotonic()
        pacer = threading.Event()
        limit = int(self.p["max_frames"])
        for i, frame in enumerate(self.source):
            if not self._alive() or (limit and i >= limit):
                break
            pacer.wait(max(0.0, start + i * period - time.monotonic()))
            stamps = frame.stamps_ns or {c: t0_ns + int(round(i * period * 1e9)) for c in self.cameras}
            if i == 0 and masks:
                self._publish_masks(masks, stamps, frame.frame_ids)
            for cam in self.cameras:
                header = ns_to_stamp(stamps[cam], Header(frame_id=frame.frame_ids[cam]))
                image = frame.images[cam]
                info = frame.infos.get(cam)
                self.info_pubs[cam].publish(
                    camera_info(image.shape[1], image.shape[0], header)
                    if info is None
                    else camera_info(
                        info.width, info.height, header, info.K, info.D, info.P, info.distortion_model
                    )
                )
                self._publish_geometry(cam, frame, header)
                self.image_pubs[cam].publish(rgb_to_image(image, header))
            self.published += 1
            if self.p["wait_for_labels"]:
                missing = self.waiter.wait(stamps, float(self.p["labels_timeout"]), self._alive)
                if missing and self._alive():
                    self.label_timeouts += 1
                    self.get_logger().warning(
                        f"frame {i}: no labels from {missing} within {self.p['labels_timeout']} s; going on"
                    )
        self.get_logger().info(
            f"done: {self.published} frames published"
            + (f", {self.label_timeouts} waited out without labels" if self.p["wait_for_labels"] else "")
        )
        return self.published

    def _publish_masks(
        self, masks: dict[str, np.ndarray], stamps: dict[str, int], frame_ids: dict[str, str]
    ) -> None:
        for cam, labels in masks.items():
            header = ns_to_stamp(stamps[cam], Header(frame_id=frame_ids[cam]))
            self.mask_pubs[cam].publish(labels_to_image(labels, header))
            ids = sorted(int(v) for v in np.unique(labels) if v)
            self.get_logger().info(
                f"camera '{cam}': published mask with ids {ids} on {self.mask_pubs[cam].topic_name}"
            )
        for cam in masks:
            if not self.mask_pubs[cam].wait_for_all_acked(Duration(seconds=2.0)):
                self.get_logger().warning(
                    f"camera '{cam}': masks_in not acknowledged by every subscriber within 2 s"
                )


def main(args: list[str] | None = None) -> int:
    """Runs ``corr_player`` until the episode ends (or SIGINT/SIGTERM); exit code 1 on bad input."""
    rclpy.init(args=args)
    node: Player | None = None
    executor: SingleThreadedExecutor | None = None
    spinner: threading.Thread | None = None
    code = 0
    try:
        node = Player()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, name="corr_player_spin", daemon=True)
        spinner.start()
        node.run()
    except CorrError as exc:
        rclpy.logging.get_logger("corr_player").error(str(exc))
        code = 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=2.0)
        if spinner is not None:
            spinner.join(timeout=5.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
