"""jcomrl's command line: ``python -m experiments.<train|evaluate|collect|sweep|table|paper|
offline_table|convert|inspect_data|run_default>`` (installed as ``jcomrl-<name>`` console
scripts too)."""

import contextlib
import importlib.abc
import importlib.machinery
import io
import sys

_WARP_NOTICES = ("Failed to import warp", "Failed to import mujoco_warp")


class _QuietWarpImport(importlib.abc.MetaPathFinder):
  """Drops the two 'Failed to import warp' lines ``mujoco/mjx/warp/__init__.py`` *prints*
  (a bare ``print``: no logger level or env var reaches it) when NVIDIA Warp is not installed;
  jcomrl never uses MJX's Warp backend. Any other output of that module is passed through.
  Only that one module is touched, and only when it is imported."""

  def find_spec(self, name, path, target=None):
    if name != "mujoco.mjx.warp":
      return None
    spec = importlib.machinery.PathFinder.find_spec(name, path)
    if spec is None or spec.loader is None:
      return spec
    run = spec.loader.exec_module

    def exec_module(module):
      buf = io.StringIO()
      with contextlib.redirect_stdout(buf):
        run(module)
      for line in buf.getvalue().splitlines():
        if not line.startswith(_WARP_NOTICES):
          print(line)

    spec.loader.exec_module = exec_module
    return spec


if "mujoco.mjx.warp" not in sys.modules:
  sys.meta_path.insert(0, _QuietWarpImport())
