"""jcomrl: context-based offline meta-reinforcement learning in JAX/Flax.

Layout (see DESIGN.md): ``envs`` (multi-task environments), ``data`` (behaviour policies,
collection, dataset store and sampler), ``mi`` (mutual-information bounds), ``nets`` (flax
modules), ``algos`` (representation objectives, RL backbones, presets, the learner), ``eval``
(adaptation protocols), ``checkpoint`` and ``logging``.
"""

__version__ = "0.1.0"
