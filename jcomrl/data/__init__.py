"""Offline datasets: the validated on-disk format, the on-device sampler, behaviour policies and
collection (``dataset``, ``sampler``, ``behaviour``, ``per_task_sac``, ``shared_sac``,
``resumable``, ``collect``, ``pipeline``, ``offline``), and import / export
(``interchange``, ``official_layout``)."""
