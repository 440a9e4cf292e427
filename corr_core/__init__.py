"""corr_core: self-supervised visual correspondence (training, propagation, metrics, export).

Plain PyTorch/numpy. Never imports ROS; the ROS layer lives in ``corr_ros``.
Public edges use numpy: images are ``(H, W, 3) uint8`` RGB, label maps ``(H, W)`` integer ids
(0 = background).
"""

__version__ = "0.1.0"
