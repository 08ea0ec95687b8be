"""jcomrl: context-based offline meta-reinforcement learning in JAX/Flax.

Layout (see docs/DESIGN.md): ``envs`` (multi-task environments), ``data`` (the dataset store
and sampler, D4RL / Minari interchange), ``rollout`` (the recorded env-step loop), ``mi``
(mutual-information bounds), ``nets`` (flax modules), ``algos`` (representation objectives, RL
backbones, presets, the learners, MACAW), ``datagen`` (behaviour policies, collection, the data
pipeline and recipes), ``eval`` (adaptation protocols), ``run`` (the run API: build, train,
resume, evaluate, restore, lock, status), ``errors`` (the typed input errors), ``checkpoint``,
``logging``, ``distributed`` (multi-process runs), ``provenance`` (the source commit and CPU
model results record) and ``atomic`` (atomic file and directory writes).
"""

__version__ = "0.1.0"
