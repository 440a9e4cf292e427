"""Every parameter of ``corr_node``: one table (the YAML files and the launch file use only these).

The model rows (checkpoint, random init, seed, device), the backend rows (backend, precision) and
the label propagation rows come from
:mod:`corr_core.options`, the definitions ``corr eval``, ``corr bench`` and ``corr export`` use too;
the rest (cameras, sync, QoS, outputs, diagnostics) belong to the node.
"""

from __future__ import annotations

from rclpy.parameter import Parameter

from corr_core.options import PROPAGATION_OPTIONS, option
from corr_ros.params import ParamSpec, from_option
from corr_ros.qos import qos_param_specs

__all__ = [
    "LIVE_PROPAGATION_KEYS",
    "PARAMS",
    "PROPAGATION_KEYS",
    "STRUCTURAL_PROPAGATION_KEYS",
]

_T = Parameter.Type

#: The label propagation parameters (:class:`~corr_core.propagation.config.PropagationConfig` fields).
PROPAGATION_KEYS = tuple(o.name for o in PROPAGATION_OPTIONS)
#: Propagation settings that change live (through ``Tracker.update_config``).
LIVE_PROPAGATION_KEYS = tuple(o.name for o in PROPAGATION_OPTIONS if o.live)
#: Structural propagation settings (they size or shape the trackers' memory): applied at configure.
STRUCTURAL_PROPAGATION_KEYS = tuple(o.name for o in PROPAGATION_OPTIONS if not o.live)

PARAMS: list[ParamSpec] = [
    ParamSpec(
        "autostart",
        _T.BOOL,
        True,
        "configure and activate on start (runs without a lifecycle manager)",
        live=True,
    ),
    ParamSpec(
        "cameras",
        _T.STRING_ARRAY,
        ["ego", "exo1"],
        "camera names; each subscribes <cam>/image_raw and <cam>/masks_in, publishes <cam>/labels and <cam>/overlay",
        min_items=1,
        topic_tokens=True,
    ),
    from_option(option("checkpoint"), f"{option('checkpoint').help}; '' needs random_init"),
    from_option(option("random_init"), f"with checkpoint '': {option('random_init').help}"),
    from_option(option("seed")),
    from_option(option("device"), choices=("cpu", "cuda"), choice_pattern=r"cuda:\d+"),
    from_option(option("backend")),
    from_option(option("precision")),
    ParamSpec(
        "slop",
        _T.DOUBLE,
        0.05,
        "approximate-sync slop in seconds (largest stamp spread in a set)",
        live=True,
        range=(0.0, 10.0),
    ),
    ParamSpec(
        "queue_size", _T.INTEGER, 5, "pending images kept per camera by the synchroniser", range=(1, 100)
    ),
    ParamSpec(
        "batch_cameras",
        _T.BOOL,
        True,
        "run the frames of a synchronised set through the network in one batch when their sizes match "
        "(false: one camera at a time, the node before batching; for comparisons)",
    ),
    ParamSpec(
        "transport",
        _T.STRING,
        "raw",
        "camera input: 'raw' (<cam>/image_raw, sensor_msgs/Image) or 'compressed' (<cam>/image_raw/compressed)",
        choices=("raw", "compressed"),
    ),
    *(from_option(o, f"label propagation: {o.help}") for o in PROPAGATION_OPTIONS),
    ParamSpec(
        "initial_masks",
        _T.STRING_ARRAY,
        [],
        "label PNG per camera (same order as cameras; '' for none) used for the first frame",
    ),
    ParamSpec(
        "crossview_checkpoint",
        _T.STRING,
        "",
        "cross-view mode: a PCC correspondence model (`corr pcc iterate` RUN/iter_N/model.safetensors); the "
        "objects given on anchor_camera reach the other cameras with the same ids; '' turns the mode off",
    ),
    ParamSpec(
        "anchor_camera",
        _T.STRING,
        "",
        "cross-view mode: the camera whose masks (initial_masks entry or <cam>/masks_in) the others receive "
        "('' = the first camera)",
    ),
    ParamSpec(
        "crossview_rematch_every",
        _T.INTEGER,
        0,
        "cross-view mode: match every camera to the anchor again every n sets (0: only on new anchor "
        "masks or a missing object)",
        range=(0, 1000000),
    ),
    ParamSpec(
        "crossview_retry_every",
        _T.INTEGER,
        10,
        "cross-view mode: sets between two matches of a camera that misses an anchor object",
        range=(1, 1000000),
    ),
    ParamSpec(
        "crossview_proposer",
        _T.STRING,
        "graph",
        "cross-view mode: snap matched masks to these object proposals ('graph': weight-free; 'none')",
        choices=("graph", "none"),
    ),
    ParamSpec(
        "crossview_rig",
        _T.STRING,
        "",
        "cross-view mode: a camera rig file (every camera's pose in one frame, static or, for a "
        "camera marked moving, from <cam>/pose per frame; corr_core.crossview.rig); with it, "
        "intrinsics from <cam>/camera_info and matches kept to the epipolar band, which tells "
        "look-alikes apart; '' for images only",
    ),
    ParamSpec(
        "crossview_geometry_wait",
        _T.DOUBLE,
        0.1,
        "cross-view mode with a rig: seconds a due match waits for its set's camera_info, poses and "
        "depth, which travel on their own topics (then it matches with what it has, and says so)",
        range=(0.0, 5.0),
    ),
    ParamSpec(
        "crossview_depth",
        _T.BOOL,
        False,
        "cross-view mode with a rig: also read the anchor camera's depth on "
        "<anchor>/depth_registered/image_rect (16UC1 mm or 32FC1 m, registered to its colour image, "
        "stamped like it), which narrows each band to the object's depths",
    ),
    ParamSpec(
        "size_change_frames",
        _T.INTEGER,
        3,
        "frames in a row of a new size, with no mask for it, after which a camera's tracker restarts "
        "at that size (it then waits for a mask); fewer are dropped as a size mismatch",
        live=True,
        range=(1, 1000),
    ),
    ParamSpec(
        "overlay_alpha",
        _T.DOUBLE,
        0.5,
        "opacity of the object colours in <cam>/overlay",
        live=True,
        range=(0.0, 1.0),
    ),
    ParamSpec(
        "publish_overlay", _T.BOOL, True, "publish <cam>/overlay (only while someone subscribes)", live=True
    ),
    ParamSpec(
        "camera_timeout",
        _T.DOUBLE,
        5.0,
        "warn when a camera sent no image for this many seconds (0 disables)",
        live=True,
        range=(0.0, 3600.0),
    ),
    ParamSpec(
        "diagnostics_period", _T.DOUBLE, 1.0, "seconds between /diagnostics messages", range=(0.05, 60.0)
    ),
    *qos_param_specs(("input", "masks", "output")),
]
