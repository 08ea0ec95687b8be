"""The package layering of docs/DESIGN.md (tools/import_graph.py), the length of every function
(tools/long_functions.py) and the names the command line keeps while their definitions live in
the library (data recipes, provenance)."""

import os
import re
import subprocess
import sys

import pytest

from experiments.configs import data as data_config
from jcomrl.datagen import recipes
from tools import import_graph, long_functions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_import_graph_has_no_circle_or_upward_edge(capsys):
  assert import_graph.main([]) == 0, capsys.readouterr().out


def test_import_graph_finds_circles_and_forbidden_edges():
  g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
  assert import_graph.circles(g) == [["a", "b", "c"]]
  g = {"jcomrl.data.x": {"jcomrl.datagen.y", "jcomrl.envs"},
       "jcomrl.datagen.y": {"jcomrl.algos.z"}, "benchmarks.b": {"experiments.cli"},
       "jcomrl.algos.z": set(), "jcomrl.envs": set(), "experiments.cli": set()}
  assert [(s, d) for s, d, _ in import_graph.forbidden_edges(g)] == [
      ("benchmarks.b", "experiments.cli"), ("jcomrl.data.x", "jcomrl.datagen.y")]


def test_imports_inside_functions_are_edges(tmp_path):
  pkg = tmp_path / "jcomrl"
  (pkg / "data").mkdir(parents=True)
  (pkg / "__init__.py").write_text("")
  (pkg / "data" / "__init__.py").write_text("")
  (pkg / "data" / "store.py").write_text("def f():\n  from jcomrl.algos import learner\n")
  (pkg / "algos").mkdir()
  (pkg / "algos" / "__init__.py").write_text("")
  (pkg / "algos" / "learner.py").write_text("from jcomrl.data import store\n")
  g = import_graph.graph(str(tmp_path))
  assert g["jcomrl.data.store"] == {"jcomrl.algos.learner"}
  assert import_graph.circles(g) == [["jcomrl.algos.learner", "jcomrl.data.store"]]


def test_no_function_over_80_lines(capsys):
  assert long_functions.main([]) == 0, capsys.readouterr().out


def test_long_functions_counts_from_def_to_last_line(tmp_path):
  (tmp_path / "pkg").mkdir()
  (tmp_path / "pkg" / "m.py").write_text(
      "@decorator\n"  # 1: not counted
      "def short():\n"  # 2
      '  """Doc."""\n'
      "  return 1\n"  # 4
      "\n"
      "class C:\n"
      "  def method(self):\n"  # 7
      "    def inner():\n"  # 8
      "      return 2\n"  # 9
      "\n"
      "    return inner\n")  # 11
  assert long_functions.function_lengths(str(tmp_path / "pkg" / "m.py")) == [
      (3, 2, "short"), (5, 7, "C.method"), (2, 8, "C.method.inner")]
  assert long_functions.long_functions(["pkg"], limit=3, root=str(tmp_path)) == [
      (5, os.path.join("pkg", "m.py"), 7, "C.method")]


def test_data_configs_are_the_library_recipes():
  assert data_config.variants() == recipes.variants()
  for v in recipes.variants():
    assert data_config.get_config(v).to_json() == recipes.get_config(v).to_json(), v
  assert data_config.OFFICIAL_RECIPE_PROVENANCE is recipes.OFFICIAL_RECIPE_PROVENANCE


def test_loading_the_recipes_imports_no_jax():
  # The command line loads a config before JAX starts (a bad flag fails fast).
  code = ("import sys, jcomrl.datagen.recipes, experiments.configs.data; "
          "print(sorted(m for m in ('jax', 'brax', 'mujoco') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       check=True).stdout
  assert out.strip() == "[]"


def test_provenance_names_stay_importable_from_the_cli():
  from experiments import cli
  from jcomrl import provenance

  assert cli.source_commit is provenance.source_commit and cli.cpu_model is provenance.cpu_model
  commit = provenance.source_commit()
  assert commit is None or re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", commit)
  record = provenance.creation_record()
  assert set(record) == {"jcomrl_commit", "created", "load_avg_at_start", "cpu"}


def test_protocol_names_and_all():
  """The one protocol list: the five adaptation protocols and the diagnostics; 'all' is all six."""
  from jcomrl import names
  six = ["iid", "ood", "online", "task_ood", "z_shuffle", "diagnostics"]
  assert names.parse_protocols("all") == six
  assert names.parse_protocols(" iid, z_shuffle ") == ["iid", "z_shuffle"]
  with pytest.raises(LookupError, match=r"unknown protocol\(s\) \['odd'\] \(did you mean 'ood'\?\)"):
    names.parse_protocols(["odd"], LookupError)


def test_loading_a_training_config_starts_no_jax_backend():
  # A multi-process run calls jax.distributed.initialize after its config is read (the config
  # loads every registered plug-in): nothing on that path may compute on a device.
  code = ("from experiments.configs import focal, offline\n"
          "focal.get_config('tiny'); offline.get_config('misa@tiny')\n"
          "from jax._src import xla_bridge\n"
          "print(bool(xla_bridge._backends))")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       check=True).stdout
  assert out.strip() == "False"


def test_names_are_listed_once():
  from jcomrl import names
  from jcomrl.algos import presets
  assert presets.ENVS is names.ENVS and tuple(names.ENV_DISPLAY) == names.ENVS
  assert set(names.PRESET_DISPLAY) == set(presets.ALL_PRESETS) | {"macaw"}
  assert set(names.PROTOCOL_DISPLAY) == set(names.EVAL_PROTOCOLS)
  assert recipes.OFFICIAL_ENVS == names.MUJOCO_ENVS


def test_the_promised_top_level_layout():
  """The layout users were promised: setup.py (a shim beside pyproject.toml), jcomrl/,
  experiments/, benchmarks/, tests/, Makefile and README.md; the shim defers to pyproject."""
  for name in ("setup.py", "pyproject.toml", "Makefile", "README.md"):
    assert os.path.isfile(os.path.join(ROOT, name)), name
  for name in ("jcomrl", "experiments", "benchmarks", "tests"):
    assert os.path.isdir(os.path.join(ROOT, name)), name
  out = subprocess.run([sys.executable, "setup.py", "--name"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
  assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == "jcomrl", out.stderr
