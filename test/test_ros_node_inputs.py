"""corr_node and first-hour mistakes, over real ROS 2 topics: bad first frames, a camera whose
frame size changes, misspelt parameters and an empty camera list.

Each test has its own node (a fresh one matters here: a node's first frames are under test); they
are started together, each in its own namespace, because starting one takes a while.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ros_driver import CAMS, STEP_S, Driver, H, W, count, make_scene

pytestmark = pytest.mark.ros

REPO_ROOT = Path(__file__).resolve().parent.parent
COMMON = ("--params-file", str(REPO_ROOT / "config" / "corr_node.yaml"), "-p", "camera_timeout:=0.0",
          "-p", "diagnostics_period:=0.2")


def _node(launch_node, name: str, *args: str):
    return launch_node("corr_ros.nodes.corr_node", *COMMON, "-r", f"__node:={name}", "-r", f"__ns:=/{name}",
                       *args, name=name)


@pytest.fixture(scope="module")
def procs(launch_node, tmp_path_factory):
    """Every node of the module, started at once."""
    from corr_core.data.labels import write_label_png

    folder = tmp_path_factory.mktemp("inputs")
    masks = []
    for cam in CAMS:
        write_label_png(folder / f"{cam}.png", make_scene(cam)[1].astype(np.uint8))
        masks.append(str(folder / f"{cam}.png"))
    typo_file = folder / "typo.yaml"
    typo_file.write_text("/**:\n  ros__parameters:\n    random_init: true\n    topkk: 3\n")
    return {
        "first": _node(launch_node, "first", "-p", "random_init:=true", "-p", f"initial_masks:={masks}"),
        "resize": _node(launch_node, "resize", "-p", "random_init:=true"),
        "typo": _node(launch_node, "typo", "-p", "random_init:=true", "-p", "camerass:=[head]"),
        "typo_file": _node(launch_node, "typo_file", "--params-file", str(typo_file)),
        "empty": _node(launch_node, "empty", "-p", "random_init:=true", "-p", "cameras:=[]"),
    }


def _driver(ros_probe, procs, name: str) -> Driver:
    drv = Driver(ros_probe, node_name=name, ns=f"/{name}")
    drv.wait_connected(procs[name])
    return drv


def _labels(msg) -> np.ndarray:
    from corr_ros.conversions import image_to_labels

    return image_to_labels(msg)


def test_a_bad_first_frame_does_not_fix_the_size_nor_use_up_the_initial_mask(ros_probe, procs):
    """The first image of ego has no pixels and exo1's is smaller than the rest: both are dropped,
    the initial masks (config initial_masks) wait for frames of their size, and tracking starts."""
    from sensor_msgs.msg import Image

    drv = _driver(ros_probe, procs, "first")
    empty = Image(height=0, width=0, encoding="rgb8", step=0, data=b"")
    small = make_scene("exo1", (H // 2, W // 2))[0]
    drv.send_until(
        lambda: all(count(drv.status(f"first: camera {c}"), "frames_received") >= 1 for c in CAMS),
        "the node to receive the bad first frames",
        images={"ego": empty, "exo1": small},
    )
    stamp = drv.send_until_labels()
    for cam in CAMS:  # the frame that took the initial mask returns it
        np.testing.assert_array_equal(_labels(drv.labels_at(cam, stamp)), drv.scenes[cam][1])
    ego = drv.wait_status("first: camera ego", lambda st: st["anchored"] == "true", "ego anchored")
    exo = drv.wait_status("first: camera exo1", lambda st: st["anchored"] == "true", "exo1 anchored")
    assert count(ego, "dropped/empty image") >= 1 and count(exo, "dropped/size mismatch") >= 1
    assert ego["size"] == exo["size"] == f"{W}x{H}"
    assert "differs from the mask waiting for this camera" in procs["first"].log()


def test_a_lasting_size_change_restarts_the_camera_and_a_new_mask_anchors_it(ros_probe, procs):
    drv = _driver(ros_probe, procs, "resize")
    drv.send_until(lambda: all(count(drv.status(f"resize: camera {c}"), "frames_received") for c in CAMS),
                   "the node to receive frames")
    stamp = drv.next_stamp()
    drv.send_masks(stamp)
    drv.send_until_labels(stamp)
    before = drv.wait_status("resize: camera exo1", lambda st: st["anchored"] == "true", "exo1 anchored")
    small_image, small_labels = make_scene("exo1", (H // 2, W // 2))
    # exo1 now sends 32x24 frames for good; the first two are dropped as a size mismatch (one odd
    # frame must not restart tracking), the third restarts exo1's tracker, which waits for a mask
    for _ in range(3):
        drv.send_pair(images={"exo1": small_image})
    exo = drv.wait_status(
        "resize: camera exo1",
        lambda st: (count(st, "size_changes") == 1 and st["anchored"] == "false"
                    and count(st, "dropped/no initial mask yet") > count(before, "dropped/no initial mask yet")),
        "exo1's size change to be reported",
    )
    assert count(exo, "dropped/size mismatch") == 2
    assert "size changed from 64x48 to 32x24" in exo["last_event"] and "waiting for a mask" in exo["_message"]
    log = procs["resize"].log()
    assert "camera 'exo1': size changed from 64x48 to 32x24" in log and "exo1/masks_in" in log
    # a mask of the new size anchors it again; both cameras are tracked at their own sizes
    stamp = drv.next_stamp()
    drv.send_mask("exo1", small_labels, stamp)
    drv.send_pair(stamp, images={"exo1": small_image})
    found = drv.wait_labels(stamp)
    np.testing.assert_array_equal(_labels(found["exo1"]), small_labels)
    found = drv.wait_labels(drv.send_pair(images={"exo1": small_image}))
    assert _labels(found["exo1"]).shape == (H // 2, W // 2) and _labels(found["ego"]).shape == (H, W)
    assert set(np.unique(_labels(found["exo1"]))) == {0, 5, 7}
    exo = drv.wait_status("resize: camera exo1", lambda st: st["anchored"] == "true", "exo1 anchored again")
    assert exo["size"] == f"{W // 2}x{H // 2}"


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("typo", ["unknown parameter(s) 'camerass' (did you mean 'cameras'?)", "command line or in a parameter file"]),
        ("typo_file", ["unknown parameter(s) 'topkk' (did you mean 'topk'?)"]),
        ("empty", ["parameter 'cameras' needs at least 1 entries"]),
    ],
)
def test_unknown_parameters_and_no_cameras_are_refused(ros_probe, procs, name, fragments):
    from lifecycle_msgs.srv import GetState

    drv = Driver(ros_probe, node_name=name, ns=f"/{name}")
    status = drv.wait_status(f"{name}: pipeline", lambda st: st["_level"] == 2, f"ERROR diagnostics from {name}",
                             timeout=STEP_S * 3)
    for fragment in fragments:
        assert fragment in status["_message"], status["_message"]
    client = ros_probe.node.create_client(GetState, f"/{name}/{name}/get_state")
    assert ros_probe.call(client, GetState.Request()).current_state.label == "unconfigured"
    assert procs[name].alive()
    log = procs[name].log()
    assert "configure failed" in log and all(fragment in log for fragment in fragments)
