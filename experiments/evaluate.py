"""Evaluate a run from its checkpoint: ``python -m experiments.evaluate --workdir=runs/focal
[--protocols=iid,ood,online,task_ood,diagnostics | all] [--step=N]``.

Each protocol writes ``<workdir>/eval/<protocol>_step<N>.json`` (per-task, per-episode returns
and the normalised score) and prints its result as soon as it is done; ``diagnostics`` also
writes ``eval/codes_step<N>.png``. The multi-process settings of ``experiments.train``
(``--coordinator_address``, ``--num_processes``, ``--process_id``, ``--distributed_auto``)
restore a checkpoint on every process; process 0 writes the results. Errors are one line on stderr (exit 2); ``JCOMRL_DEBUG=1``
or ``--verbosity=1`` shows the traceback.
"""

from absl import flags

from experiments import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "run directory", required=True)
_STEP = flags.DEFINE_integer("step", None, "checkpoint step (default: latest)")
_PROTOCOLS = flags.DEFINE_string("protocols", "iid",
                                 f"comma list of {', '.join(cli.ALL_PROTOCOLS)} or 'all'")


def print_result(name: str, r: dict) -> None:
  if name == "diagnostics":
    print(f"diagnostics: MI(z; task) >= {r['mi_lower_bound']:.3f} nats (max "
          f"{r['mi_max']:.3f}), probe R^2 {r['probe_r2']:.3f}, plots {r['plots']}", flush=True)
    return
  for variant, v in r.items():
    if isinstance(v, dict) and "returns" in v:
      print(f"{name}/{variant}: mean return {v['mean']:.3f}  normalised "
            f"{v.get('normalised', float('nan')):.1f}", flush=True)


def main(argv):
  del argv
  from jcomrl import run as run_api  # JAX: imported once the flags are checked

  protocols = cli.parse_protocols(_PROTOCOLS.value)
  if _STEP.value is not None and _STEP.value < 0:
    raise cli.UsageError(f"--step={_STEP.value} must be a checkpoint step >= 0")
  run_api.evaluate(_WORKDIR.value, protocols, _STEP.value,
                   progress=lambda s: print(s, flush=True), on_result=print_result)


def run():
  cli.run(main, "experiments.evaluate", distributed=True)


if __name__ == "__main__":
  run()
