"""Representation objectives, offline-RL backbones, presets and the generic learner."""
