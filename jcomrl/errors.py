"""The errors jcomrl raises for input it cannot use, beside ``DatasetError``
(:mod:`jcomrl.data.dataset`), ``CheckpointError`` (:mod:`jcomrl.checkpoint`) and
``NonFiniteLossError`` (:mod:`jcomrl.algos.trainer`).

Each message is one line that names the bad key, value or path and how to fix it; the command line
(``experiments.cli``) prints it as ``<prog>: error: <message>``. This module imports nothing, so
the command line can name these classes before JAX is loaded.
"""


class ConfigError(ValueError):
  """A config value is unknown, of the wrong type or out of range."""


class RunDirError(ValueError):
  """A run directory cannot be used (held by another process, or holds another run)."""


class RunFailed(RuntimeError):
  """A run that started failed while running (e.g. its periodic evaluation)."""
