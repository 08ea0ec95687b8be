"""Convert D4RL / Minari data and the official COMRL codes' offline data to a jcomrl dataset,
and back.

  # import: one file (or Minari dataset) per task, in task order -> a jcomrl dataset directory
  python -m experiments.convert --from=d4rl --path=task0.hdf5 [--path=task1.hdf5 ...] --out=DIR
  python -m experiments.convert --from=minari --path=MINARI_DIR [--path=...] --out=DIR
  # import an official code's data directory (jcomrl.data.official_import)
  python -m experiments.convert --from=unicorn --path=batch_data/HalfCheetahVel-v0/data --out=DIR
  python -m experiments.convert --from=corro --path=batch_data/AntDir-v0/data --env=ant_dir ...
  # ... with the official behaviour agents (seed_<k>_goal_<g>/models/agent<i>.pt) as the
  # dataset's behaviour snapshots for the ood protocol (the torch extra)
  python -m experiments.convert --from=unicorn --path=batch_data/AntDir-v0/data --env=ant_dir \
      --behaviour=batch_data_copy/AntDir-v0/data --out=DIR
  python -m experiments.convert --from=focal --path=data/cheetah-vel --env=cheetah_vel --out=DIR
  python -m experiments.convert --from=csro --path=offline_dataset/cheetah-vel --out=DIR
  python -m experiments.convert --from=macaw --path=macaw_offline_data/cheetah_vel --out=DIR
  # export: a jcomrl dataset -> DIR/task_000.hdf5, ... (D4RL) or DIR/task_000/data/ (Minari),
  # or DIR/{train,test}/seed_<k>_goal_<g>/*.npy (the UNICORN / CORRO loaders' layout)
  python -m experiments.convert --to=d4rl --path=DATASET_DIR --out=DIR
  python -m experiments.convert --to=minari --path=DATASET_DIR --out=DIR
  python -m experiments.convert --to=unicorn --path=DATASET_DIR --out=DIR/HalfCheetahVel-v0

Import options: ``--segment_length`` (required when episode lengths vary), ``--env`` (name a
jcomrl env to train on the data with it), ``--test_tasks`` (held-out task rows; default the last
task, or the official split for the official layouts), ``--normalisation=RANDOM,EXPERT`` (score
anchors, needed for training); for the official layouts also ``--env_overrides`` (JSON, the env's
task table, default the code's variant) and ``--steps`` (FOCAL / CSRO checkpoint steps). How
episodes map onto segments, which transitions are dropped or trimmed and why, and the dtypes:
see ``jcomrl.data.interchange`` and ``jcomrl.data.official_import``. Existing output is refused
unless ``--overwrite`` (and even then only a jcomrl dataset / files of the same kind are
replaced, each once its new version is complete). Bad input ends in one line on stderr, exit
status 2.
"""

from __future__ import annotations

import os

import json

import numpy as np
from absl import flags

from experiments import cli

FORMATS = ("d4rl", "minari")
# unicorn, corro, focal, csro, macaw: the official codes' layouts (jcomrl.data.official_import;
# import only, one data directory each)
OFFICIAL = ("unicorn", "corro", "focal", "csro", "macaw")
# unicorn, focal: the official codes' layouts (jcomrl.data.official_layout; export only)
EXPORT_FORMATS = FORMATS + ("unicorn", "focal")
FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_enum("from", None, FORMATS + OFFICIAL, "import: the format of --path (unicorn, "
                    "corro, focal, csro, macaw: an official code's data directory)")
  flags.DEFINE_enum("to", None, EXPORT_FORMATS, "export: the format to write (unicorn: the "
                    "per-task npy layout of the UNICORN / CORRO loaders; focal: FOCAL's "
                    "goal_idx<k>/trj_evalsample<n>_step<epoch>.npy files)")
  flags.DEFINE_multi_string("path", [], "import: D4RL .hdf5 file(s) or Minari dataset dir(s), "
                            "one per task (repeat the flag); export: the jcomrl dataset dir")
  flags.DEFINE_string("out", None, "import: the jcomrl dataset dir to write; export: the "
                      "directory for the task files")
  flags.DEFINE_integer("segment_length", None, "import: steps per stored segment (default: "
                       "recorded by a jcomrl export, else the common episode length)",
                       lower_bound=1)
  flags.DEFINE_string("env", None, "import: meta.json env (default: recorded, else "
                      "d4rl:<file> / minari:<dataset id>)")
  flags.DEFINE_list("test_tasks", None, "import: held-out task rows (default: the last task)")
  flags.DEFINE_string("normalisation", None, "import: RANDOM,EXPERT episode returns for score "
                      "normalisation")
  flags.DEFINE_string("env_overrides", None, "import of an official layout: envs.make "
                      "overrides as JSON, e.g. '{\"variant\": \"focal\"}' (default: recorded, "
                      "else the code's variant)")
  flags.DEFINE_list("steps", None, "import of focal / csro: the checkpoint steps t of "
                    "trj_evalsample<n>_step<t>.npy to read (default: the official config's)")
  flags.DEFINE_string("behaviour", None, "import of unicorn / corro: the directory of the "
                      "official behaviour runs (seed_<k>_goal_<g>/models/agent<i>.pt), stored as "
                      "the dataset's behaviour snapshots for the ood protocol (needs torch: pip "
                      "install 'jcomrl[torch]', and --env)")
  flags.DEFINE_bool("overwrite", False, "replace existing output")


def _ints(name: str, values, what: str = "task rows") -> list[int] | None:
  if values is None:
    return None
  try:
    return [int(v) for v in values]
  except ValueError:
    raise cli.UsageError(f"--{name}={','.join(values)} must be a comma list of {what} "
                         "(integers)") from None


def _normalisation(spec: str | None) -> dict | None:
  if spec is None:
    return None
  try:
    random, expert = (float(v) for v in spec.split(","))
  except ValueError:
    raise cli.UsageError(f"--normalisation={spec} must be RANDOM,EXPERT (two numbers)") from None
  if random == expert:
    raise cli.UsageError("--normalisation random and expert returns must differ")
  return {"random": random, "expert": expert}


def _check_import_out(out: str, overwrite: bool) -> None:
  if not os.path.lexists(out):
    return
  if not overwrite:
    raise cli.UsageError(f"--out={out} already exists; choose another --out or pass "
                         "--overwrite (the old dataset is kept until the new one is complete)")
  if not os.path.isdir(out) or (os.listdir(out) and
                                not os.path.exists(os.path.join(out, "meta.json"))):
    raise cli.UsageError(f"--out={out} exists and is not a jcomrl dataset; --overwrite only "
                         "replaces a dataset directory: choose another --out")


def _env_overrides(spec: str | None) -> dict | None:
  if spec is None:
    return None
  try:
    value = json.loads(spec)
  except json.JSONDecodeError as e:
    raise cli.UsageError(f"--env_overrides={spec} is not JSON ({e}); pass an object, e.g. "
                         "'{\"variant\": \"focal\"}'") from None
  if not isinstance(value, dict):
    raise cli.UsageError(f"--env_overrides={spec} must be a JSON object (envs.make keywords)")
  return value


def _official_agents(behaviour: str, data, meta: dict):
  """``(env, {task row: {iteration: agent path}})`` of ``--behaviour``'s official run
  directories, checked before anything is written. A run maps to the row whose source task
  directory has its name (the collector writes the data and the agents of one run under one
  ``seed_<k>_goal_<g>``), a goal-less ``<k>__<timestamp>`` run to the row whose source has seed
  ``k``, and otherwise a run to the row whose task parameters equal the goal in its name."""
  from jcomrl import envs
  from jcomrl.data import official_checkpoints as oc

  cli.require_optional("torch", "--behaviour")
  try:
    env = envs.make(meta["env"], **(meta.get("env_overrides") or {}))
  except (KeyError, TypeError, ValueError) as e:
    raise cli.UsageError(f"--behaviour needs the dataset's jcomrl env (pass --env); "
                         f"{meta.get('env')!r} does not build ({e})") from None
  found = oc.find_task_checkpoints(behaviour)
  sources = meta.get("task_table", {}).get("source_tasks") or []
  by_name = {n: i for i, n in enumerate(sources)}
  by_seed = {oc.task_dir_seed(n): i for i, n in enumerate(sources)}
  goalless = all(oc.task_dir_goal(n) is None for n in found)
  if sources and all(n in by_name for n in found):
    rows = {n: by_name[n] for n in found}
  elif sources and goalless and len(by_seed) == len(sources) and all(
      oc.task_dir_seed(n) in by_seed for n in found):
    rows = {n: by_seed[oc.task_dir_seed(n)] for n in found}
  else:
    rows = oc.rows_by_goal(found, np.asarray(data.task_params))
  return env, {rows[n]: c for n, c in found.items()}


def _import_official(layout: str, paths: list[str], out: str, *, overwrite: bool,
                     behaviour: str | None = None, **kw) -> str:
  """``--from=<official layout>``: one data directory -> a jcomrl dataset; the summary line."""
  from jcomrl.data.dataset import save_dataset
  from jcomrl.data.official_import import import_official

  if len(paths) != 1:
    raise cli.UsageError(f"--from={layout} reads one data directory; pass one --path")
  _check_import_out(out, overwrite)
  data, meta = import_official(layout, paths[0], **kw)
  agents = None if behaviour is None else _official_agents(behaviour, data, meta)
  save_dataset(out, data, meta, overwrite=overwrite)
  if agents is not None:
    from jcomrl.datagen import official_behaviour

    env, checkpoints = agents
    official_behaviour.store_official_behaviour(out, env, checkpoints, overwrite=overwrite)
  src, table = meta["source"], meta["task_table"]
  rows = ("the env's benchmark tasks" if table["rows_are_env_tasks"]
          else "NOT the env's benchmark tasks (meta task_table)")
  norm = (", observation normaliser stored (not applied)"
          if "observation_normaliser" in meta else "")
  return (f"wrote {out}: {data.num_tasks} task(s) x {data.num_transitions} transitions from the "
          f"{layout} layout, segment_length {data.segment_length} ({src['segment_length_rule']}), "
          f"env {meta['env']!r}, split {meta['split']} ({src['split_rule']}); task rows are "
          f"{rows}; trimmed {sum(src['trimmed_per_task'])} to a common multiple of the segment "
          f"length{norm}" + ("" if behaviour is None else
                              f"; behaviour/: the official agents of {behaviour}"))


def convert(src_format: str | None, dst_format: str | None, paths: list[str], out: str, *,
            segment_length=None, env=None, test_tasks=None, normalisation=None,
            env_overrides=None, steps=None, behaviour=None, overwrite: bool = False) -> str:
  """Runs one conversion; returns the summary line."""
  from jcomrl.data import interchange
  from jcomrl.data.dataset import save_dataset

  if (src_format is None) == (dst_format is None):
    raise cli.UsageError("pass exactly one of --from=d4rl|minari|unicorn|corro|focal|csro|macaw "
                         "(import) and --to=d4rl|minari|unicorn|focal (export)")
  if not paths:
    raise cli.UsageError("--path is required (repeat it for several tasks)")
  if not out:
    raise cli.UsageError("--out is required")
  if src_format in OFFICIAL:
    return _import_official(src_format, paths, out, overwrite=overwrite,
                            segment_length=segment_length, env=env, test_tasks=test_tasks,
                            normalisation=normalisation, env_overrides=env_overrides,
                            steps=steps, behaviour=behaviour)
  for name, value in (("env_overrides", env_overrides), ("steps", steps),
                      ("behaviour", behaviour)):
    if value is not None:
      raise cli.UsageError(f"--{name} applies to an import of an official layout "
                           f"(--from={'|'.join(OFFICIAL)})")
  if src_format is not None:
    _check_import_out(out, overwrite)
    read = interchange.import_d4rl if src_format == "d4rl" else interchange.import_minari
    data, meta = read(paths if len(paths) > 1 else paths[0], segment_length=segment_length,
                      env=env, test_tasks=test_tasks, normalisation=normalisation)
    save_dataset(out, data, meta, overwrite=overwrite)
    src = meta["source"]
    dropped = sum(f.get("dropped_no_successor", 0) for f in src["files"])
    return (f"wrote {out}: {data.num_tasks} task(s) x {data.num_transitions} transitions, "
            f"segment_length {data.segment_length} ({src['segment_length_rule']}), env "
            f"{meta['env']!r}, split {meta['split']}; dropped {dropped} transitions without a "
            f"successor, trimmed {sum(src['trimmed_per_task'])} to a common multiple of the "
            "segment length")
  if len(paths) != 1:
    raise cli.UsageError(f"--to={dst_format} exports one jcomrl dataset; pass one --path")
  for name, value in (("segment_length", segment_length), ("env", env),
                      ("test_tasks", test_tasks), ("normalisation", normalisation)):
    if value is not None:
      raise cli.UsageError(f"--{name} applies to an import (--from), not to --to")
  if dst_format == "unicorn":
    from jcomrl.data.official_layout import export_unicorn

    dirs = export_unicorn(paths[0], out, overwrite=overwrite)
    return (f"wrote the UNICORN/CORRO layout to {out}: train/ ({len(dirs['train'])} task dirs) "
            f"and test/ ({len(dirs['test'])}); point their --main-data-dir at the parent of "
            "a directory named after their env (e.g. HalfCheetahVel-v0) holding these")
  if dst_format == "focal":
    from jcomrl.data.official_layout import FOCAL_STEP, export_focal, read_export_record

    tasks = export_focal(paths[0], out, overwrite=overwrite)
    n_trj = read_export_record(out)["n_trj"]
    return (f"wrote FOCAL's layout to {out}: goal_idx<k>/ for {len(tasks['train'])} training "
            f"and {len(tasks['test'])} held-out tasks, {n_trj} trajectory files each; set its "
            f"data_dir to {out}, n_trj={n_trj}, train_epoch=eval_epoch={FOCAL_STEP}, and its "
            f"train/eval tasks to the indices in {out}/jcomrl_export.json")
  write = interchange.export_d4rl if dst_format == "d4rl" else interchange.export_minari
  written = write(paths[0], out, overwrite=overwrite)
  names = ", ".join(os.path.basename(w) for w in written)
  return f"wrote {len(written)} {dst_format} task file(s) to {out}: {names}"


def main(argv):
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected argument(s) {argv[1:]}; pass files with --path")
  print(convert(FLAGS["from"].value, FLAGS.to, FLAGS.path, FLAGS.out,
                segment_length=FLAGS.segment_length, env=FLAGS.env,
                test_tasks=_ints("test_tasks", FLAGS.test_tasks),
                normalisation=_normalisation(FLAGS.normalisation),
                env_overrides=_env_overrides(FLAGS.env_overrides),
                steps=_ints("steps", FLAGS.steps, "checkpoint steps"),
                behaviour=FLAGS.behaviour,
                overwrite=FLAGS.overwrite))


def run():
  cli.run(main, "experiments.convert", define=define_flags)


if __name__ == "__main__":
  run()
