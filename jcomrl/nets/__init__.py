"""Flax modules: MLPs, context encoders, policies and critics."""
