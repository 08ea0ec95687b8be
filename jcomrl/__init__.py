"""jcomrl: context-based offline meta-reinforcement learning in JAX/Flax.

Layout (see docs/DESIGN.md): ``envs`` (multi-task environments), ``data`` (behaviour policies,
collection, dataset store and sampler, D4RL / Minari interchange), ``mi`` (mutual-information
bounds), ``nets`` (flax modules), ``algos`` (representation objectives, RL backbones, presets,
the learners, MACAW), ``eval`` (adaptation protocols), ``run`` (the run API: build, train,
resume, evaluate, restore, lock, status), ``errors`` (the typed input errors), ``checkpoint``,
``logging``, ``distributed`` (multi-process runs) and ``atomic`` (atomic file writes).
"""

__version__ = "0.1.0"
