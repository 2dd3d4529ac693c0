"""Depth networks (LacDepth, GATDepth, baseline), pose networks (PoseNet, AlignNet), encoders and ONNX export.

Import the submodules directly (``networks.factory``, ``networks.export``, ...): importing this package does not
pull in timm or onnx.
"""
