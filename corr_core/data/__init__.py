"""Data sources: DAVIS layouts, frame folders, videos, image folders, rosbag2 files, simulation."""
