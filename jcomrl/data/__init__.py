"""Offline datasets: the validated on-disk format, the on-device sampler, behaviour policies and
collection (``dataset``, ``sampler``, ``behaviour``, ``collect``, ``pipeline``)."""
