"""Bit-identity check of every preset's update, for refactors that must not change results.

Trains every preset's ``tiny`` config (context presets, their DT variants, MACAW; the
single-task backbones' ``@tiny`` configs) for ``--steps`` updates on one point-robot dataset
made here from scripted policies (no behaviour training), and writes the SHA-256 of each run's
final train state (parameters, and the rest of the state: optimiser moments, key, step;
leaf by leaf in tree order) to a JSON file.
Run it before a refactor and after it, on the same machine and library versions, and compare::

    python -m tools.golden --out /tmp/golden_before.json            # at the old commit
    python -m tools.golden --out /tmp/golden_after.json --check /tmp/golden_before.json

``--check`` exits 1 and names every preset whose state differs (and the first differing leaf).
Digests are not portable across CPUs or XLA versions (float reduction order), so they are not
a test: both files must come from one machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from experiments import cli
from experiments.configs import (borel, corro, csro, focal, focal_dt, macaw, offline, oracle,
                                 prompt_dt, supervised, unicorn_ss, unicorn_ss_dt,
                                 unicorn_sup, unicorn_sup_dt)
from jcomrl import envs
from jcomrl import run as run_api
from jcomrl.algos.offline_presets import OFFLINE_PRESETS
from jcomrl.data.dataset import save_dataset
from jcomrl.datagen import collect
from jcomrl.datagen.policies import BehaviourPolicies

CONTEXT = {"focal": focal, "corro": corro, "csro": csro, "unicorn_ss": unicorn_ss,
           "unicorn_sup": unicorn_sup, "supervised": supervised, "oracle": oracle,
           "borel": borel, "prompt_dt": prompt_dt, "focal_dt": focal_dt,
           "unicorn_ss_dt": unicorn_ss_dt, "unicorn_sup_dt": unicorn_sup_dt, "macaw": macaw}
OFFLINE = tuple(OFFLINE_PRESETS)


def _scripted() -> BehaviourPolicies:
  """Goal-seeking snapshots of rising skill (snapshot k: skill k / 2), noise otherwise."""

  def make_policy(params, deterministic):
    def policy(obs, key):
      pos, goal = obs[:2], obs[2:]
      direction = (goal - pos) / (jnp.linalg.norm(goal - pos) + 1e-6)
      noise = jax.random.uniform(key, (2,), minval=-1.0, maxval=1.0)
      return jnp.clip(params["skill"] * direction + (1 - params["skill"]) * noise, -1, 1), {}
    return policy

  return BehaviourPolicies(params={"skill": jnp.linspace(0.0, 1.0, 3)}, steps=np.arange(3),
                           make_policy=make_policy, hidden_sizes=())


def make_dataset(root: str) -> str:
  env = envs.make("point_robot")
  data = collect.build_dataset(env, _scripted(), env.all_benchmark_tasks(), jax.random.key(0),
                               quality="mixed", episodes_per_snapshot=4)
  path = os.path.join(root, "point_robot")
  save_dataset(path, data, {"env": "point_robot", "env_overrides": {},
                            "split": env.benchmark_split(),
                            "normalisation": {"random": -20.0, "expert": -5.0}})
  return path


def configs() -> dict[str, dict]:
  out = {name: cli.to_plain(mod.get_config("tiny")) for name, mod in CONTEXT.items()}
  for name in OFFLINE:
    out[f"offline_{name}"] = cli.to_plain(offline.get_config(f"{name}@tiny"))
  return out


def leaf_digests(tree) -> list[tuple[str, str]]:
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  out = []
  for path, leaf in leaves:
    a = np.asarray(jax.random.key_data(leaf) if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)
                   else leaf)
    h = hashlib.sha256(a.tobytes() + str(a.dtype).encode() + str(a.shape).encode()).hexdigest()
    out.append((jax.tree_util.keystr(path), h))
  return out


def run_one(cfg: dict, steps: int, workdir: str) -> dict:
  chunk = int(cfg["learner"].get("steps_per_chunk") or 1)
  n = max(chunk, steps // chunk * chunk)
  cfg = dict(cfg, num_steps=n, checkpoint_every=n, eval_every=n, num_seeds=1)
  run_api.train(cfg, workdir, protocols=())
  _, _, _, _, _, state, step = run_api.restore(workdir)
  # "digest": the parameters (as the first reference files hold); "rest_digest": the rest of
  # the train state (optimiser moments, key, kept tasks), compared when both files have it.
  leaves = leaf_digests({"params": state.params})
  rest = leaf_digests({f.name: getattr(state, f.name) for f in dataclasses.fields(state)
                      if f.name != "params"} if dataclasses.is_dataclass(state) else {})
  whole = hashlib.sha256("".join(h for _, h in leaves).encode()).hexdigest()
  rest_whole = hashlib.sha256("".join(h for _, h in rest).encode()).hexdigest()
  return {"steps": step, "digest": whole, "leaves": leaves, "rest_digest": rest_whole,
          "rest_leaves": rest}


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--out", required=True, help="JSON file to write")
  ap.add_argument("--check", default="", help="JSON file of an earlier run to compare with")
  ap.add_argument("--steps", type=int, default=100)
  ap.add_argument("--only", default="", help="comma-separated preset names")
  args = ap.parse_args(argv)
  only = set(filter(None, args.only.split(",")))
  results = {}
  with tempfile.TemporaryDirectory() as tmp:
    dataset = make_dataset(tmp)
    for name, cfg in configs().items():
      if only and name not in only:
        continue
      cfg = dict(cfg, dataset=dataset, env="point_robot")
      results[name] = run_one(cfg, args.steps, os.path.join(tmp, "runs", name))
      print(f"{name:16s} {results[name]['steps']:5d} updates  {results[name]['digest'][:16]}",
            flush=True)
  meta = {"jax": jax.__version__, "backend": jax.default_backend(), "steps": args.steps}
  with open(args.out, "w") as f:
    json.dump({"meta": meta, "presets": results}, f, indent=1)
  if not args.check:
    return 0
  before = json.load(open(args.check))["presets"]
  bad = 0
  for name, r in results.items():
    old = before.get(name)
    if old is None:
      print(f"{name}: not in {args.check}")
      continue
    if old["digest"] == r["digest"] and old.get("rest_digest", r["rest_digest"]) == r["rest_digest"]:
      continue
    bad += 1
    pairs = list(zip(r["leaves"], old["leaves"])) + list(zip(r["rest_leaves"],
                                                             old.get("rest_leaves", [])))
    first = next((p for (p, h), (_, g) in pairs if h != g),
                 "the tree structure")
    print(f"DIFFERS {name}: first at {first}")
  print(f"{len(results) - bad} / {len(results)} presets bit-identical to {args.check}")
  return 1 if bad else 0


if __name__ == "__main__":
  sys.exit(main())
