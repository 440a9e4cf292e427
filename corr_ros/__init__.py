"""corr_ros: thin rclpy nodes around corr_core (message conversion, sync, QoS, publishing)."""
