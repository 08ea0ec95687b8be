"""The offline dataset store the learners read: the validated on-disk format and the readers of
stored episodes (``dataset``), the on-device sampler (``sampler``), and import / export
(``interchange``: D4RL / Minari HDF5; ``official_layout``: export to the UNICORN / CORRO and FOCAL
layouts; ``official_import``: import of the UNICORN / CORRO, FOCAL, CSRO and MACAW layouts).
Making datasets (behaviour agents, collection) is ``jcomrl.datagen``, a layer above: nothing
here imports it or ``jcomrl.algos``."""
