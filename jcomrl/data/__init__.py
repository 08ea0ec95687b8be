"""The offline dataset store the learners read: the validated on-disk format and the readers of
stored episodes (``dataset``), the on-device sampler (``sampler``), and import / export
(``interchange``: D4RL / Minari HDF5; ``official_layout``: the UNICORN / CORRO per-task npy
layout). Making datasets (behaviour agents, collection) is ``jcomrl.datagen``, a layer above:
nothing here imports it or ``jcomrl.algos``."""
