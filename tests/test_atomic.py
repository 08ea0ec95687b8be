"""jcomrl.atomic: a write is all or nothing, leaves no temporary file, and is world-readable."""

import json
import os
import stat

import pytest

from jcomrl import atomic


def test_write_replaces_whole_and_an_error_keeps_the_old_file(tmp_path):
  path = str(tmp_path / "sub" / "r.json")
  atomic.write_json(path, {"a": 1})
  assert json.load(open(path)) == {"a": 1}
  assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
  with pytest.raises(RuntimeError, match="boom"):
    with atomic.atomic_file(path) as f:
      f.write('{"a": 2, "tor')
      raise RuntimeError("boom")
  assert json.load(open(path)) == {"a": 1}  # the old file, untouched
  assert sorted(os.listdir(tmp_path / "sub")) == ["r.json"]  # no temporary left behind
  atomic.write_text(path, "x")
  assert open(path).read() == "x"


def test_save_figure_keeps_the_format_of_the_extension(tmp_path):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots()
  ax.plot([0, 1])
  path = str(tmp_path / "f.png")
  atomic.save_figure(fig, path, dpi=50)
  plt.close(fig)
  assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
  assert os.listdir(tmp_path) == ["f.png"]


def test_atomic_dir_swaps_a_whole_directory_and_an_error_keeps_the_old_one(tmp_path):
  path = str(tmp_path / "sub" / "d")
  with atomic.atomic_dir(path) as tmp:
    assert os.path.dirname(tmp) == os.path.dirname(path) and os.listdir(tmp) == []
    open(os.path.join(tmp, "a"), "w").write("1")
  assert os.listdir(path) == ["a"]
  with pytest.raises(RuntimeError, match="boom"):
    with atomic.atomic_dir(path) as tmp:
      open(os.path.join(tmp, "b"), "w").write("2")
      raise RuntimeError("boom")
  assert os.listdir(path) == ["a"]  # the old directory, untouched
  with atomic.atomic_dir(path, prefix=".x-") as tmp:
    assert os.path.basename(tmp).startswith(".x-")
    open(os.path.join(tmp, "c"), "w").write("3")
  assert os.listdir(path) == ["c"]  # replaced whole
  assert sorted(os.listdir(tmp_path / "sub")) == ["d"]  # no temporary left behind
