"""Evaluation by replay: bags or folder datasets through the node's engine, metrics and reports (depth-eval)."""
