"""depth_estimation_training: rosbag extraction, COLMAP poses and self-supervised training (GasMono-style).

Installed from the repository's top-level ``training/`` folder (setup.py ``package_dir``).
"""
