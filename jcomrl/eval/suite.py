"""Runs the named evaluation protocols of a trained state and summarises them as JSON-able dicts.

``run_protocol(name, ...)`` returns ``{"protocol", "definition", "step", "test_task_ids",
<variant>: {...}, "score": {...}}``: per-variant per-task, per-episode returns and the normalised
score (0 = the random behaviour snapshot, 100 = the expert snapshot, from the dataset's
``meta["normalisation"]``), and the protocol's headline ``score`` (mean and per-seed values) that
tables aggregate. Library code: no flags, no files (:mod:`jcomrl.run` writes them).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jcomrl.algos.learner import Learner
from jcomrl.data.dataset import OfflineDataset
from jcomrl.envs.base import TaskEnv
from jcomrl import names
from jcomrl.eval import protocols as P

PROTOCOLS = names.EVAL_PROTOCOLS
# Each protocol's random stream is fold_in(key(seed), id): fixed ids, so adding a protocol never
# changes another protocol's numbers.
PROTOCOL_IDS = {"iid": 0, "ood": 1, "online": 2, "task_ood": 3, "z_shuffle": 4}

DEFINITIONS = {
    "iid": "context from the test task's own offline data: one stored trajectory (headline), "
           "random transitions, and FOCAL's accumulating offline context (one episode length "
           "of transitions per round; last round); one deterministic episode per context",
    "ood": "context = one stochastic rollout in the test task of behaviour snapshot k "
           "conditioned on task j's task vector, for every trained snapshot k (not the "
           "untrained one, by default) and every dataset task j; score = mean over policies of "
           "the mean over test tasks",
    "online": "context collected by the agent, CSRO's schedule by default: non-prior "
              "(headline; collection episodes with uniform random actions for the first half "
              "of the steps, then policy actions, each followed by a deterministic evaluation "
              "episode not added to the context; z stays 0 until num_exp_traj_eval evaluation "
              "episodes have run and is inferred after each evaluation episode) and PEARL prior "
              "(the deterministic evaluation episodes are the context); last round's return",
    "task_ood": "tasks outside the training range (env.ood_tasks); context = one rollout of "
                "every behaviour snapshot conditioned on the OOD task itself (or online "
                "non-prior collection when the dataset has no snapshots); normalised by the "
                "first/last snapshot's return in those tasks",
    "z_shuffle": "learning control: the iid protocol's trajectory contexts, keys and episodes, "
                 "but every test task acts with the code inferred from ANOTHER test task's "
                 "context (a random derangement of the test tasks drawn from the eval seed); "
                 "the drop iid - z_shuffle is how much return the policy owes to its task code",
}


@dataclasses.dataclass(frozen=True)
class EvalSettings:
  """Static protocol settings (defaults follow the papers, scaled to the env's episode length).

  Attributes:
    num_episodes: context draws (each with one deterministic episode) per test task.
    seed: base key of every protocol (each protocol folds in its own index).
    context_size: random-transition context size of ``iid_transitions``.
    encoder_code: ``"sample"`` (default: a stochastic encoder's code is sampled at evaluation,
      as UNICORN's ``context_encoding``, ``models/encoder.py:246-250``) or ``"mean"``. No effect
      on deterministic encoders (``protocols.make_encode``).
    accumulate_rounds, accumulate_per_round: FOCAL's accumulating context, 3 rounds of
      ``per_round`` transitions (``None`` = ``env.episode_length``: 3 x 200 MuJoCo, 3 x 20
      point-robot).
    online_schedule: ``"csro"`` (default, CSRO's exact schedule) or ``"reinfer_each_round"``
      (jcomrl's earlier one); see ``protocols.online_returns``.
    online_rounds, online_exp_episodes: rounds and CSRO's ``num_exp_traj_eval``; ``None`` =
      CSRO's per env (point-robot 20 and 1, ant-dir 4 and 2, the other MuJoCo envs 3 and 2:
      ``protocols.csro_online_defaults``).
    online_random_fraction: CSRO's share of random-action collection steps.
    ood_sources: ``"all"`` dataset tasks (UNICORN), ``"train"`` or ``"other"`` (all but the
      test task itself) as conditioning tasks of the OOD behaviour policies.
    ood_snapshots: snapshots used by ``ood``: ``"trained"`` (default, UNICORN: every snapshot but
      the untrained one), ``"all"``, or a tuple of ids (``protocols.ood_snapshot_ids``).
    ood_max_policies: optional fixed random subset of the (snapshot, task) pairs (cost bound).
    task_ood_num_tasks: number of out-of-range tasks.
    periodic_z_shuffle: the evaluation every ``eval_every`` training steps also runs the
      z-shuffle control (same contexts, keys and episodes as its ``iid``), logged as
      ``eval/z_shuffle_return`` beside ``eval/iid_return``: learning curves of the return the
      policy owes to its code. Off by default (it doubles the periodic evaluation's rollouts).
  """

  num_episodes: int = 4
  seed: int = 123
  context_size: int = 64
  encoder_code: str = "sample"
  accumulate_rounds: int = 3
  accumulate_per_round: int | None = None
  online_schedule: str = "csro"
  online_rounds: int | None = None
  online_exp_episodes: int | None = None
  online_random_fraction: float = 0.5
  ood_sources: str = "all"
  ood_snapshots: tuple[int, ...] | str = "trained"
  ood_max_policies: int | None = None
  task_ood_num_tasks: int = 10
  periodic_z_shuffle: bool = False

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> EvalSettings:
    """Settings from a dict; an unknown key is a ``ValueError`` naming it (no silent drop)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
      raise ValueError(f"unknown evaluation setting(s) {unknown}; known: {sorted(names)}")
    kw = dict(d)
    snaps = kw.get("ood_snapshots", "trained")
    if snaps is None:
      kw.pop("ood_snapshots")  # unset -> the default
    elif not isinstance(snaps, str):
      kw["ood_snapshots"] = tuple(int(s) for s in snaps)
    return cls(**kw)


def normalise(value, norm: dict | None):
  """``100 * (value - random) / (expert - random)`` or ``None`` without anchors."""
  if not norm or "random" not in norm or "expert" not in norm:
    return None
  span = float(norm["expert"]) - float(norm["random"])
  if abs(span) < 1e-12:
    return None
  return 100.0 * (np.asarray(value, np.float64) - float(norm["random"])) / span


def summarise(returns, norm: dict | None, **extra) -> dict:
  """``returns [S, T, ...]`` -> returns, means and normalised scores (overall and per seed)."""
  r = np.asarray(returns, np.float64)
  seed_means = r.reshape(r.shape[0], -1).mean(axis=1)
  out = {"returns": r.tolist(), "mean": float(r.mean()), "seed_means": seed_means.tolist(),
         "task_means": r.reshape(r.shape[0], r.shape[1], -1).mean(axis=(0, 2)).tolist()}
  n = normalise(r.mean(), norm)
  if n is not None:
    out["normalised"] = float(n)
    out["seed_normalised"] = np.asarray(normalise(seed_means, norm)).tolist()
  out.update(extra)
  return out


def _score(variant: str, summary: dict) -> dict:
  keys = ("mean", "seed_means", "normalised", "seed_normalised")
  return {"variant": variant, **{k: summary[k] for k in keys if k in summary}}


def _key(settings: EvalSettings, protocol: str) -> jax.Array:
  return jax.random.fold_in(jax.random.key(settings.seed), PROTOCOL_IDS[protocol])


def iid_results(learner: Learner, params, env: TaskEnv, data: OfflineDataset, meta: dict,
                settings: EvalSettings, *, accumulate: bool = True) -> dict:
  """IID returns: trajectory and random-transition contexts (+ FOCAL's accumulating one)."""
  rows = np.asarray(meta["split"]["test"])
  tasks = jax.tree.map(lambda x: x[rows], env.all_benchmark_tasks())
  norm = meta.get("normalisation")
  key = jax.random.key(settings.seed)  # the key evaluate_state has always used
  out = {}
  for name, mode in (("iid", "trajectory"), ("iid_transitions", "transitions")):
    size = data.segment_length if mode == "trajectory" else settings.context_size
    r = P.iid_returns(learner, params, env, data, rows, tasks, key,
                      num_episodes=settings.num_episodes, context_mode=mode, context_size=size,
                      code=settings.encoder_code)
    out[name] = summarise(r, norm, context_mode=mode, context_size=int(size))
  if accumulate:
    per_round = settings.accumulate_per_round or env.episode_length
    r = np.asarray(P.accumulating_returns(
        learner, params, env, data, rows, tasks, _key(settings, "iid"),
        num_episodes=settings.num_episodes, num_rounds=settings.accumulate_rounds,
        per_round=per_round, code=settings.encoder_code))
    out["iid_accumulating"] = summarise(
        r[..., -1], norm, round_means=r.mean(axis=(0, 1, 2)).tolist(),
        context_sizes=[(i + 1) * per_round for i in range(settings.accumulate_rounds)])
  out["score"] = _score("iid", out["iid"])
  return out


def z_shuffle_results(learner: Learner, params, env: TaskEnv, data: OfflineDataset, meta: dict,
                      settings: EvalSettings) -> dict:
  """The z-shuffle control: ``iid``'s headline variant with the codes deranged across tasks.

  Uses the very key of ``iid_results`` (same contexts, same rollout noise), so per task the only
  difference from the ``iid`` headline is the code the policy is given.
  """
  rows = np.asarray(meta["split"]["test"])
  tasks = jax.tree.map(lambda x: x[rows], env.all_benchmark_tasks())
  perm = z_shuffle_permutation(len(rows), settings)
  r = P.iid_returns(learner, params, env, data, rows, tasks, jax.random.key(settings.seed),
                    num_episodes=settings.num_episodes, context_mode="trajectory",
                    context_size=data.segment_length, code=settings.encoder_code,
                    z_permutation=perm)
  res = summarise(r, meta.get("normalisation"), permutation=perm.tolist(),
                  permutation_layout="test task i acts with the code of test task perm[i]")
  return {"z_shuffle": res, "score": _score("z_shuffle", res)}


def z_shuffle_permutation(num_test_tasks: int, settings: EvalSettings | None = None):
  """The z-shuffle protocol's derangement of the test tasks (in the split's order): test task
  ``i`` acts with the code of test task ``perm[i]``. A function of the eval seed only, so a
  comparison outside jcomrl (the official codes' drivers in ``benchmarks/``) can pair the very
  same tasks."""
  return P.derangement(num_test_tasks, _key(settings or EvalSettings(), "z_shuffle"))


def _source_rows(settings: EvalSettings, meta: dict, num_tasks: int, test_row: int | None = None):
  if settings.ood_sources == "all":
    return list(range(num_tasks))
  if settings.ood_sources == "train":
    return list(meta["split"]["train"])
  if settings.ood_sources == "other":
    return [j for j in range(num_tasks) if j != test_row]
  raise ValueError(f"unknown ood_sources {settings.ood_sources!r}; expected all, train or other")


def ood_results(learner: Learner, params, env: TaskEnv, data: OfflineDataset, meta: dict,
                behaviour, settings: EvalSettings) -> dict:
  """UNICORN's behaviour-shift protocol (see ``protocols``); ``returns [S, T, Q]``."""
  if behaviour is None:
    raise ValueError("the ood protocol needs the dataset's behaviour snapshots (behaviour/ in "
                     "the dataset directory); this dataset has none")
  rows = np.asarray(meta["split"]["test"])
  tasks = jax.tree.map(lambda x: x[rows], env.all_benchmark_tasks())
  all_vecs = np.asarray(data.task_params, np.float32)
  key = _key(settings, "ood")
  if settings.ood_sources == "other":
    per_task = [P.ood_pairs(behaviour.num_snapshots, _source_rows(settings, meta, len(all_vecs),
                                                                  int(t)),
                            settings.ood_snapshots, settings.ood_max_policies, settings.seed,
                            behaviour.steps)
                for t in rows]
    pairs = np.stack(per_task)  # [T, Q, 2]
  else:
    one = P.ood_pairs(behaviour.num_snapshots, _source_rows(settings, meta, len(all_vecs)),
                      settings.ood_snapshots, settings.ood_max_policies, settings.seed,
                      behaviour.steps)
    pairs = np.broadcast_to(one, (len(rows),) + one.shape)
  if not np.all(pairs[:, :, 0] == pairs[:1, :, 0]):
    raise ValueError("ood pairs must use the same snapshot sequence in every test task")
  contexts = P.behaviour_contexts(env, behaviour, tasks, all_vecs[pairs[:, :, 1]],
                                  pairs[0, :, 0], key)
  r = P.context_returns(learner, params, env, contexts, data.task_params[rows], tasks, key,
                        code=settings.encoder_code)
  context_return = np.asarray(jnp.sum(contexts.reward, axis=-1))  # [T, Q]
  res = summarise(r, meta.get("normalisation"), pairs=pairs.tolist(),
                  pairs_layout="[test task, pair] -> (behaviour snapshot, conditioning task row)",
                  context_return_mean=float(context_return.mean()),
                  sources=settings.ood_sources,
                  snapshots=sorted({int(k) for k in pairs[0, :, 0]}))
  return {"ood": res, "score": _score("ood", res)}


def online_results(learner: Learner, params, env: TaskEnv, meta: dict,
                   settings: EvalSettings, tasks=None, norm: dict | None = None) -> dict:
  """CSRO non-prior and PEARL prior online collection; headline = non-prior, last round.

  ``settings.online_schedule`` picks CSRO's schedule (default) or ``"reinfer_each_round"``.
  """
  if tasks is None:
    rows = np.asarray(meta["split"]["test"])
    tasks = jax.tree.map(lambda x: x[rows], env.all_benchmark_tasks())
    norm = meta.get("normalisation")
  out = {}
  for i, mode in enumerate(("nonprior", "prior")):
    r = np.asarray(P.online_returns(
        learner, params, env, tasks, jax.random.fold_in(_key(settings, "online"), i), mode=mode,
        num_episodes=settings.num_episodes, num_rounds=settings.online_rounds,
        random_fraction=settings.online_random_fraction, schedule=settings.online_schedule,
        infer_after=settings.online_exp_episodes, code=settings.encoder_code))
    out[f"online_{mode}"] = summarise(r[..., -1], norm,
                                      round_means=r.mean(axis=(0, 1, 2)).tolist(),
                                      schedule=settings.online_schedule)
  out["score"] = _score("online_nonprior", out["online_nonprior"])
  return out


def task_ood_results(learner: Learner, params, env: TaskEnv, data: OfflineDataset, meta: dict,
                     behaviour, settings: EvalSettings) -> dict:
  """Extrapolation to ``env.ood_tasks``; returns ``[S, T, K]`` (behaviour contexts)."""
  tasks = env.ood_tasks(settings.task_ood_num_tasks)
  vecs = np.asarray(P.task_vectors(env, tasks), np.float32)
  key = _key(settings, "task_ood")
  info = {"task_vectors": vecs.tolist()}
  if behaviour is None:
    res = online_results(learner, params, env, meta, settings, tasks=tasks, norm=None)
    res["online_nonprior"].update(info, context="online_nonprior")
    return {"task_ood": res["online_nonprior"], "score": _score("task_ood",
                                                                res["online_nonprior"])}
  k = behaviour.num_snapshots
  snaps = np.arange(k)
  cond = np.broadcast_to(vecs[:, None, :], (len(vecs), k, vecs.shape[-1]))
  contexts = P.behaviour_contexts(env, behaviour, tasks, cond, snaps, key)
  r = P.context_returns(learner, params, env, contexts, vecs, tasks, key,
                        code=settings.encoder_code)
  behaviour_return = np.asarray(jnp.sum(contexts.reward, axis=-1))  # [T, K]
  norm = {"random": float(behaviour_return[:, 0].mean()),
          "expert": float(behaviour_return[:, -1].mean()),
          "source": "first/last behaviour snapshot conditioned on the OOD task, in it"}
  res = summarise(r, norm, context="behaviour", normalisation=norm,
                  snapshot_returns=behaviour_return.mean(axis=0).tolist(), **info)
  return {"task_ood": res, "score": _score("task_ood", res)}


def run_protocol(name: str, learner: Learner, params, env: TaskEnv, data: OfflineDataset,
                 meta: dict, settings: EvalSettings, *, step: int, behaviour=None) -> dict:
  """Evaluates protocol ``name`` (one of ``PROTOCOLS``) and returns its JSON-able summary."""
  if name not in PROTOCOLS:
    raise ValueError(f"unknown protocol {name!r}; expected one of {PROTOCOLS}")
  if name == "iid":
    body = iid_results(learner, params, env, data, meta, settings)
  elif name == "ood":
    body = ood_results(learner, params, env, data, meta, behaviour, settings)
  elif name == "online":
    body = online_results(learner, params, env, meta, settings)
  elif name == "z_shuffle":
    body = z_shuffle_results(learner, params, env, data, meta, settings)
  else:
    body = task_ood_results(learner, params, env, data, meta, behaviour, settings)
  head = {"protocol": name, "definition": DEFINITIONS[name], "step": int(step),
          "test_task_ids": list(map(int, meta["split"]["test"])),
          "normalisation": meta.get("normalisation"), "settings": dataclasses.asdict(settings)}
  return {**head, **body}
