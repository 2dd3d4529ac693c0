"""Benchmark scripts that print tables for docs/ (python -m depth_estimation_ros.benchmarks.<name>)."""
