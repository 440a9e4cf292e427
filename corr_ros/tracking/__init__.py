"""The parts of ``corr_node`` (:mod:`corr_ros.nodes.corr_node`), one job per module.

* :mod:`~corr_ros.tracking.parameters`: the node's parameter table (model and propagation rows
  built from :mod:`corr_core.options`);
* :mod:`~corr_ros.tracking.frames`: which decoded frame may reach a camera's tracker (frame size);
* :mod:`~corr_ros.tracking.processing`: one synchronised set of frames -> label maps, overlays and
  the summary (no ROS: the node publishes);
* :mod:`~corr_ros.tracking.diagnostics`: drop counters and the ``/diagnostics`` statuses.
"""
