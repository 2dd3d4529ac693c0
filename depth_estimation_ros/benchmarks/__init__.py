"""Benchmark scripts that print tables for docs/ (run as modules, e.g. python -m depth_estimation_ros.benchmarks.networks)."""
