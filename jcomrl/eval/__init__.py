"""Evaluation on held-out tasks: adaptation protocols and metrics."""
