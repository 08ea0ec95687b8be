"""A shim for tools that still call ``setup.py``: the package's metadata, dependencies and
console scripts live in ``pyproject.toml`` (setuptools reads them from there)."""

from setuptools import setup

setup()
