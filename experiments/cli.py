"""What every entry point shares at the command line: one-line errors, config-file lookup,
override checks, the multi-process flags and progress lines (the run API itself, the run-directory
lock included, is :mod:`jcomrl.run`).

This module imports no JAX: the checks it runs (config file, override keys, flag types) fail
before anything is compiled or written.

Errors: jcomrl's own errors (``DatasetError``, ``CheckpointError``, ``jcomrl.errors``' config,
run-directory and failed-run errors, ``NonFiniteLossError``) and ``UsageError`` below are printed as ONE line on stderr, ``<prog>:
error: <what is wrong and how to fix it>``, exit status 2 (1 for a run that failed while
running: a non-finite loss, a failed evaluation). ``JCOMRL_DEBUG=1`` or ``--verbosity=1`` (or
higher) shows the traceback instead.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import sys

from absl import app, flags, logging

from jcomrl import names
from jcomrl.provenance import cpu_model, source_commit  # noqa: F401  (experiments.cli's names)
from jcomrl.errors import ConfigError, RunDirError, RunFailed  # noqa: F401 (re-exported)

FLAGS = flags.FLAGS
CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
_REPO_CONFIG_PREFIX = os.path.join("experiments", "configs") + os.sep


class UsageError(ValueError):
  """A bad command-line value (printed as one line)."""


# Errors raised by jcomrl itself, by fully qualified class name (no import needed to match).
# Status 2: the input is wrong; status 1: the run started and failed.
_USER_ERRORS = {
    "experiments.cli.UsageError": 2,
    "jcomrl.errors.ConfigError": 2,
    "jcomrl.errors.RunDirError": 2,
    "jcomrl.data.dataset.DatasetError": 2,
    "jcomrl.checkpoint.CheckpointError": 2,
    "jcomrl.errors.RunFailed": 1,
    "jcomrl.algos.trainer.NonFiniteLossError": 1,
}
# ``jcomrl.eval.suite.PROTOCOLS`` + the representation diagnostics, from ``jcomrl.names``
# (imports no JAX, so a bad flag fails before JAX loads).
ALL_PROTOCOLS = names.PROTOCOLS
# Optional dependencies: the extra that installs each.
_EXTRAS = {"matplotlib": "plots", "tensorboardX": "tensorboard", "torch": "torch"}


def require_optional(module: str, what: str) -> None:
  """``UsageError`` (before any work) when the optional ``module`` is not installed."""
  if importlib.util.find_spec(module) is None:
    raise UsageError(f"{what} needs the optional package {module}: pip install "
                     f"'jcomrl[{_EXTRAS[module]}]'")


def debug_enabled() -> bool:
  """Tracebacks wanted: ``JCOMRL_DEBUG=1`` or an explicit ``--verbosity >= 1``."""
  if os.environ.get("JCOMRL_DEBUG", "") not in ("", "0"):
    return True
  try:
    if FLAGS["verbosity"].present:
      return FLAGS.verbosity >= 1
  except (KeyError, flags.UnparsedFlagAccessError):
    pass
  # Before the flags are parsed (the config checks): read the argument itself.
  for arg in sys.argv[1:]:
    for prefix in ("--verbosity=", "-v="):
      if arg.startswith(prefix):
        try:
          return int(arg[len(prefix):]) >= 1
        except ValueError:
          return False
  return False


def _status_of(e: BaseException) -> int | None:
  for cls in type(e).__mro__:
    status = _USER_ERRORS.get(f"{cls.__module__}.{cls.__qualname__}")
    if status is not None:
      return status
  return None


def one_line(text: str) -> str:
  return " ".join(str(text).split())


def fail(prog: str, message: str, status: int = 2):
  """Prints ``<prog>: error: <message>`` (one line) on stderr and exits with ``status``."""
  print(f"{prog}: error: {one_line(message)}", file=sys.stderr, flush=True)
  sys.exit(status)


# ---------------------------------------------------------------------------- config files


def resolve_config_file(spec: str) -> str:
  """``path.py[:variant]`` -> the same with an existing path (``UsageError`` if none).

  A relative ``experiments/configs/<name>.py`` that does not exist in the working directory is
  looked up in the installed ``experiments/configs`` (so the commands work from any directory).
  """
  path, sep, variant = spec.partition(":")
  if os.path.exists(path):
    return spec
  name = os.path.basename(path)
  if path.startswith(_REPO_CONFIG_PREFIX) or os.sep not in path:
    cand = os.path.join(CONFIG_DIR, path[len(_REPO_CONFIG_PREFIX):] if
                        path.startswith(_REPO_CONFIG_PREFIX) else name)
    if os.path.exists(cand):
      return cand + sep + variant
  have = sorted(f for f in os.listdir(CONFIG_DIR) if f.endswith(".py") and
                f not in ("__init__.py", "common.py"))
  close = difflib.get_close_matches(name, have, n=1)
  hint = f"did you mean {close[0]}? " if close else ""
  raise UsageError(f"config file {path} not found; {hint}configs are "
                   f"experiments/configs/{{{','.join(h[:-3] for h in have)}}}.py[:variant]")


def load_config(spec: str):
  """Runs ``get_config(variant)`` of a config file (errors as ``UsageError``)."""
  path, _, variant = resolve_config_file(spec).partition(":")
  mod_spec = importlib.util.spec_from_file_location("_jcomrl_cli_config", path)
  module = importlib.util.module_from_spec(mod_spec)
  try:
    mod_spec.loader.exec_module(module)
    return module.get_config(variant) if variant else module.get_config()
  except Exception as e:  # a config file is user code: report what it raised, in one line
    raise UsageError(f"config {path}{':' + variant if variant else ''} could not be built: "
                     f"{type(e).__name__}: {e}") from e


def to_plain(cfg) -> dict:
  """A config (an ml_collections ``ConfigDict`` or a mapping) as the plain dict
  :mod:`jcomrl.run` takes."""
  return json.loads(cfg.to_json()) if hasattr(cfg, "to_json") else dict(cfg)


def run_provenance() -> dict:
  """The code and machine a run's ``provenance.jsonl`` records at each start
  (``jcomrl.run.train``'s ``provenance``)."""
  return {"jcomrl_commit": source_commit(), "cpu": cpu_model()}


def _dotted_keys(cfg, prefix: str = "") -> list[str]:
  out = []
  for k, v in cfg.items():
    out.append(prefix + k)
    if hasattr(v, "items"):
      out.extend(_dotted_keys(v, prefix + k + "."))
  return out


def check_overrides(argv: list[str], flag: str = "config", default: str | None = None) -> None:
  """Checks the ``--<flag>=file`` argument and the keys of every ``--<flag>.<key>=`` override
  (``UsageError`` with a did-you-mean for an unknown key); ``default``: the file without one."""
  spec, keys = default, []
  for arg in argv[1:]:
    if arg == "--":
      break
    if arg.startswith(f"--{flag}="):
      spec = arg.split("=", 1)[1]
    elif arg.startswith(f"--{flag}."):
      keys.append(arg[len(flag) + 3:].split("=", 1)[0])
  if spec is None:
    raise UsageError(f"--{flag}=<config file> is required")
  cfg = load_config(spec)
  known = _dotted_keys(cfg)
  for key in keys:
    if key not in known:
      close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
      parent = key.rpartition(".")[0]
      choices = [k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == parent]
      hint = (f"did you mean --{flag}.{close[0]}?" if close else
              f"keys{' of ' + parent if parent else ''}: {', '.join(sorted(choices))}")
      raise UsageError(f"unknown config key --{flag}.{key}; {hint}")


def resolve_argv(argv: list[str], flag: str = "config") -> list[str]:
  """``argv`` with ``--<flag>=experiments/configs/...`` made absolute where needed."""
  out = []
  for arg in argv:
    if arg.startswith(f"--{flag}="):
      arg = f"--{flag}={resolve_config_file(arg.split('=', 1)[1])}"
    out.append(arg)
  return out


def parse_protocols(spec) -> list[str]:
  """``"iid,ood"`` or a list -> validated protocol names (``all`` = every one)."""
  return names.parse_protocols(spec, UsageError)


# ---------------------------------------------------------------------------- several hosts


def define_distributed_flags() -> None:
  """The standard multi-process settings of the entry points that train or evaluate."""
  flags.DEFINE_string("coordinator_address", None,
                      "multi-process run: host:port of process 0's coordinator (with "
                      "--num_processes and --process_id; every process passes the same)")
  flags.DEFINE_integer("num_processes", None, "multi-process run: number of processes",
                       lower_bound=1)
  flags.DEFINE_integer("process_id", None, "multi-process run: this process's index, "
                       "0..num_processes-1 (process 0 writes the files)", lower_bound=0)
  flags.DEFINE_boolean("distributed_auto", False,
                       "multi-process run with the settings detected from the cluster "
                       "(jax.distributed.initialize(): SLURM, Open MPI, mpi4py, Cloud TPU); "
                       "explicit --coordinator_address etc. override what it detects")


def distributed_settings() -> dict | None:
  """The parsed multi-process settings (``jcomrl.distributed.initialize`` keywords), or None
  for a single-process run; ``UsageError`` for an incomplete or inconsistent set."""
  given = {"coordinator_address": FLAGS.coordinator_address,
           "num_processes": FLAGS.num_processes, "process_id": FLAGS.process_id}
  if not FLAGS.distributed_auto:
    if all(v is None for v in given.values()):
      return None
    missing = [f"--{k}" for k, v in given.items() if v is None]
    if missing:
      raise UsageError(f"a multi-process run needs {', '.join(missing)} too (or "
                       "--distributed_auto to detect the settings from the cluster)")
  n, i = given["num_processes"], given["process_id"]
  if n is not None and i is not None and i >= n:
    raise UsageError(f"--process_id={i} must be below --num_processes={n}")
  return dict(given, auto=FLAGS.distributed_auto)


def start_distributed() -> None:
  """Joins the multi-process run the flags describe (before any other JAX call); nothing for
  a single-process run."""
  settings = distributed_settings()
  if settings is None:
    return
  from jcomrl import distributed

  try:
    distributed.initialize(**settings)
  except (ValueError, RuntimeError) as e:
    how = ("--distributed_auto found no cluster to detect the settings from (SLURM, Open MPI, "
           "mpi4py, Cloud TPU); pass --coordinator_address, --num_processes and --process_id"
           if settings["auto"] and "should be defined" in str(e) else
           "check that every process passes the same --coordinator_address and "
           "--num_processes and its own --process_id, and that the address is reachable")
    raise UsageError(f"joining the multi-process run failed ({type(e).__name__}: {e}); "
                     f"{how}") from e


# ---------------------------------------------------------------------------- entry points


def run(main, prog: str, *, define=None, config: tuple[str, str] | None = None,
        distributed: bool = False) -> None:
  """``app.run(main)`` with one-line errors (see the module docstring).

  Args:
    define: optional ``define()`` of the program's flags, called once the config is checked.
    config: ``(flag name, default file[:variant])`` of an ml_collections config-file flag: the
      file and the override keys are checked (one-line errors) before ``define`` runs, since
      ml_collections reads the overrides when the flag is defined.
    distributed: take the multi-process settings (``define_distributed_flags``) and join the
      run they describe before ``main`` (which then runs on every process).
  """
  if config is not None:
    try:
      check_overrides(sys.argv, *config)
      sys.argv = resolve_argv(sys.argv, config[0])  # ml_collections reads sys.argv itself
    except UsageError as e:
      if debug_enabled():
        raise
      fail(prog, str(e))
  if define is not None:
    define()
  if distributed:
    define_distributed_flags()

  def parse(argv):
    try:
      if config is not None:
        argv = resolve_argv(argv, config[0])
      return FLAGS(argv)
    except flags.Error as e:
      fail(prog, f"{e} (see --helpfull for the flags)")
    except UsageError as e:
      if debug_enabled():
        raise
      fail(prog, str(e))

  def wrapped(argv):
    if not FLAGS["verbosity"].present:
      logging.set_verbosity(logging.WARNING)  # orbax logs every save/restore at INFO
    try:
      if distributed:
        start_distributed()
      return main(argv)
    except KeyboardInterrupt:
      if debug_enabled():
        raise
      fail(prog, "interrupted; rerun the same command to continue (training resumes from its "
           "last checkpoint)", 130)
    except ModuleNotFoundError as e:
      extra = _EXTRAS.get((e.name or "").split(".")[0])
      if extra is None or debug_enabled():
        raise
      fail(prog, f"this needs the optional package {e.name}: pip install 'jcomrl[{extra}]'")
    except Exception as e:
      status = _status_of(e)
      if status is None or debug_enabled():
        raise
      fail(prog, str(e), status)

  app.run(wrapped, flags_parser=parse)
