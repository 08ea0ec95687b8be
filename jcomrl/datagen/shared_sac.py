"""The fast data recipe: ONE task-conditioned SAC agent that steps every task's envs together.

The papers' recipe (:mod:`jcomrl.datagen.per_task_sac`) trains one SAC agent per task and keeps
each agent's whole replay buffer as that task's data (CORRO ``data_collection_config`` /
``learner.py``, reused by UNICORN). Its cost is ``T`` independent agents' updates per env step.
This recipe trains a single agent instead, whose actor and critics read the observation with the
task's ``task_vector`` appended (a multi-task expert, as jcomrl's brax behaviour policies), on
``T x num_envs`` envs stepped as one batch; each task's transitions go to that task's own buffer,
and each task's stream is that task's data. One update draws its ``batch_size`` transitions
uniformly over all tasks' buffers, so the update compute per env step is about ``1 / T`` of the
per-task recipe's at the same batch size.

**This is a deviation from the papers' data**, documented as such wherever it is used: SMAC's
offline data were made the same way (the replay buffer of one shared PEARL learner,
rail-berkeley/rlkit ``examples/smac/generate_cheetah_data.py``), the COMRL papers' were not. A
task's stream is on-policy for the shared agent, which generalises across tasks, so its data
improve faster than an agent that sees one task; every task still gets only its own transitions.

The SAC update is the same as the per-task agents' (``jcomrl.algos.backbones`` ``critic_loss``
then ``actor_loss`` on the updated critic, Polyak target, optional learnt temperature; UNICORN
``algorithms/sac.py:83-142``), and so are the warm-up (uniform random actions, no updates), the
explicit resets and the stored end flags (``TaskEnv.stored_flags``). Snapshots are the shared
actor's params; their policy reads ``obs + task_vector`` as the collection rollouts append it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jcomrl import optim
from jcomrl.algos.config import HParams
from jcomrl.datagen import resumable
from jcomrl.datagen.per_task_sac import (
  Agent,
  PerTaskSACConfig,
  Replay,
  behaviour_result,
  check_run,
  empty_buffer,
  make_sac_step,
  no_code,
  record_step,
  repeat_tasks,
  sac_checkpoint,
  sac_config,
  sac_hparams,
  sum_iterations,
)
from jcomrl.datagen.policies import BehaviourPolicies
from jcomrl.envs.base import EnvState, Task, TaskEnv
from jcomrl.nets.actor_critic import DoubleCritic, TanhGaussianPolicy, tanh_gaussian_sample
from jcomrl.rollout import env_step
from jcomrl.types import Transition

ALGO = "sac_shared"


@struct.dataclass
class TrainState:
  """The shared agent, the per-task ring buffers ``[T, buffer_size]``, the flat task-major envs
  ``[T * num_envs]``, their running returns, one key, the shared write position / fill and the
  env steps taken per task."""

  agent: Agent
  buffer: Transition
  env: EnvState
  episode_return: jnp.ndarray
  key: jnp.ndarray
  ptr: jnp.ndarray
  size: jnp.ndarray
  steps: jnp.ndarray


def networks(env: TaskEnv, hidden_sizes, log_std_min: float = -20.0, log_std_max: float = 2.0):
  """``(policy, critic)`` reading ``obs + task_vector`` (a task code of size 0)."""
  policy = TanhGaussianPolicy(tuple(hidden_sizes), env.action_size, log_std_min=log_std_min,
                              log_std_max=log_std_max)
  return policy, DoubleCritic(tuple(hidden_sizes))


def _in_size(env: TaskEnv) -> int:
  return env.observation_size + env.task_size


def init_agent(env: TaskEnv, cfg: PerTaskSACConfig, key, init_alpha) -> Agent:
  policy, critic = networks(env, cfg.hidden_sizes, cfg.log_std_min, cfg.log_std_max)
  k_actor, k_critic = jax.random.split(key)
  obs = jnp.zeros((1, _in_size(env)))
  actor_p = policy.init(k_actor, obs, no_code((1,)))
  critic_p = critic.init(k_critic, obs, no_code((1,)), jnp.zeros((1, env.action_size)))
  log_alpha = jnp.log(jnp.asarray(init_alpha, jnp.float32))
  opt = optim.adam()
  return Agent(actor=actor_p, critic=critic_p, critic_target=critic_p, log_alpha=log_alpha,
               opt_actor=opt.init(actor_p), opt_critic=opt.init(critic_p),
               opt_alpha=opt.init(log_alpha))


def sample_batch(key, buffer: Transition, size, vectors, batch_size: int) -> Transition:
  """``batch_size`` transitions drawn uniformly over all tasks' filled buffer entries (each task
  holds ``size`` of them), ``obs`` and ``next_obs`` with their task's vector appended."""
  k_task, k_pos = jax.random.split(key)
  num_tasks = buffer.reward.shape[0]
  task = jax.random.randint(k_task, (batch_size,), 0, num_tasks)
  pos = jax.random.randint(k_pos, (batch_size,), 0, size)
  batch = jax.tree.map(lambda x: x[task, pos], buffer)
  vec = vectors[task]
  return batch.replace(obs=jnp.concatenate([batch.obs, vec], -1),
                       next_obs=jnp.concatenate([batch.next_obs, vec], -1))


def _make_init(env: TaskEnv, cfg: PerTaskSACConfig) -> Callable:
  """``init(key, tasks [T], init_alpha) -> TrainState`` of ``make_trainer``: ``key`` splits into
  the state's stream, the agent's init and the envs' resets."""
  e = cfg.num_envs
  v_reset = jax.vmap(env.reset)

  def init(key, tasks, init_alpha):
    t = int(jax.tree.leaves(tasks)[0].shape[0])
    k_state, k_agent, k_reset = jax.random.split(key, 3)
    env_state = v_reset(jax.random.split(k_reset, t * e), repeat_tasks(tasks, e))
    buffer = empty_buffer(t, cfg.buffer_size, env.observation_size, env.action_size)
    zero = jnp.zeros((), jnp.int32)
    return TrainState(agent=init_agent(env, cfg, k_agent, init_alpha), buffer=buffer,
                      env=env_state, episode_return=jnp.zeros((t * e,)),
                      key=jax.random.key_data(k_state), ptr=zero, size=zero, steps=zero)

  return init


def make_trainer(env: TaskEnv, cfg: PerTaskSACConfig):
  """``(init, run)``, both jitted; the same contract as ``per_task_sac.make_trainer`` with one
  agent: ``init(key, tasks, init_alpha)``, ``run(state, tasks, hp, warmup_steps,
  num_iterations) -> (state, stats)`` (stats summed over the call's iterations, per task ``[T]``:
  ``return_sum``, ``episodes``; the update metrics are scalar sums over the ``updated``
  updating iterations)."""
  policy, critic = networks(env, cfg.hidden_sizes, cfg.log_std_min, cfg.log_std_max)
  target_entropy = (-float(env.action_size) if cfg.target_entropy is None
                    else float(cfg.target_entropy))
  step = make_sac_step(policy, critic, cfg, target_entropy)
  e, act_size = cfg.num_envs, env.action_size

  def one_update(agent: Agent, key, buffer, size, vectors, hp: HParams):
    k_batch, k_critic, k_actor = jax.random.split(key, 3)
    batch = sample_batch(k_batch, buffer, size, vectors, cfg.batch_size)
    return step(agent, batch, k_critic, k_actor, hp)

  def update(agent, buffer, size, vectors, key, hp):
    agent, metrics = jax.lax.scan(lambda a, k: one_update(a, k, buffer, size, vectors, hp),
                                  agent, jax.random.split(key, cfg.updates_per_iteration))
    return agent, jax.tree.map(jnp.mean, metrics)

  def iteration(state: TrainState, flat, vectors, hp, warmup_steps):
    t = vectors.shape[0]
    key = jax.random.wrap_key_data(state.key)
    k_next, k_act, k_rand, k_reset, k_upd = jax.random.split(key, 5)
    warm = state.steps < warmup_steps
    uniform = jax.random.uniform(k_rand, (t * e, act_size), minval=-1.0, maxval=1.0)
    obs_in = jnp.concatenate([state.env.obs, jnp.repeat(vectors, e, axis=0)], -1)
    mean, log_std = policy.apply(state.agent.actor, obs_in, no_code((t * e,)))
    sampled = tanh_gaussian_sample(k_act, mean, log_std)[0]
    actions = jnp.where(warm, uniform, sampled)
    env_state, nxt, tr = env_step(env, state.env, actions, flat,
                                  jax.random.split(k_reset, t * e), batched=True)
    if cfg.train_reward is not None:
      tr = tr.replace(reward=nxt.info[cfg.train_reward])
    ep_ret, stats, buffer, size = record_step(state, nxt, tr, t, e, cfg.buffer_size)
    shapes = jax.eval_shape(update, state.agent, buffer, size, vectors, k_upd, hp)[1]
    agent, metrics = jax.lax.cond(
        warm, lambda: (state.agent, jax.tree.map(jnp.zeros_like, shapes)),
        lambda: update(state.agent, buffer, size, vectors, k_upd, hp))
    stats.update(metrics)
    stats["updated"] = 1.0 - warm.astype(jnp.float32)
    new = TrainState(agent=agent, buffer=buffer, env=env_state, episode_return=ep_ret,
                     key=jax.random.key_data(k_next), ptr=(state.ptr + e) % cfg.buffer_size,
                     size=size, steps=state.steps + e)
    return new, stats

  @functools.partial(jax.jit, donate_argnums=(0,))
  def run(state: TrainState, tasks, hp: HParams, warmup_steps, num_iterations):
    flat = repeat_tasks(tasks, e)
    vectors = jax.vmap(env.task_vector)(tasks)
    return sum_iterations(lambda s: iteration(s, flat, vectors, hp, warmup_steps), state,
                          num_iterations)

  return jax.jit(_make_init(env, cfg)), run


def make_policy_factory(env: TaskEnv, hidden_sizes, log_std_min: float = -20.0,
                        log_std_max: float = 2.0) -> Callable:
  """``make_policy(params, deterministic) -> policy(obs_with_task_vector, key)`` of a snapshot
  ``params = {"actor": actor params}``."""
  policy_net, _ = networks(env, hidden_sizes, log_std_min, log_std_max)

  def make_policy(params, deterministic):
    def policy(obs, key):
      mean, log_std = policy_net.apply(params["actor"], obs, no_code(obs.shape[:-1]))
      if deterministic:
        return jnp.tanh(mean), {}
      return tanh_gaussian_sample(key, mean, log_std)[0], {}

    return policy

  return make_policy


def policy_template(env: TaskEnv, hidden_sizes):
  """``(make_policy, params)`` of an untrained snapshot (the layout a restore must match)."""
  policy, _ = networks(env, hidden_sizes)
  actor = policy.init(jax.random.key(0), jnp.zeros((1, _in_size(env))), no_code((1,)))
  return make_policy_factory(env, hidden_sizes), {"actor": actor}


def train_sac_shared(env: TaskEnv, tasks: Task, *, num_timesteps: int, num_snapshots: int,
                     seed: int, num_envs: int = 1, hidden_sizes: tuple[int, ...] = (256, 256),
                     batch_size: int = 256, buffer_size: int | None = None,
                     warmup_steps: int = 1_000, updates_per_iteration: int = 1,
                     actor_lr: float = 3e-4, critic_lr: float = 3e-4, alpha_lr: float = 3e-4,
                     discount: float = 0.99, tau: float = 0.005, entropy_alpha: float = 0.2,
                     learn_entropy: bool = False, init_alpha: float = 0.1,
                     target_entropy: float | None = None, reward_scale: float = 1.0,
                     train_reward: str | None = None,
                     progress_fn: Callable[[int, dict], None] | None = None,
                     keep_replay: bool = False, intervals_after_warmup: bool = False,
                     checkpoint_dir: str | None = None, checkpoint_seconds: float = 600.0,
                     checkpoint_iterations: int = 1000,
                     ) -> BehaviourPolicies | tuple[BehaviourPolicies, Replay]:
  """Trains the shared task-conditioned agent on every task of ``tasks`` at once.

  The arguments mean what they mean for ``per_task_sac.train_sac_per_task`` (``num_timesteps``
  and ``warmup_steps`` count env steps *per task*), except ``batch_size``: the transitions of one
  update drawn over all tasks together, and ``seed``: one key for the agent and every env.
  Returns ``BehaviourPolicies`` (``algo="sac_shared"``, params ``{"actor": [K] ...}``) and, with
  ``keep_replay``, the ``Replay`` of every stored transition (task ``t``'s stream at ``[t]``).
  ``intervals_after_warmup`` as ``train_sac_per_task``'s: the warm-up's iterations come first
  and only the budget after it is split into the ``num_snapshots - 1`` intervals, so snapshot
  ``k >= 1`` follows ``warmup_steps + k * seg * num_envs`` env steps per task (the first call
  runs the warm-up and the first interval).
  ``checkpoint_dir``, ``checkpoint_seconds`` and ``checkpoint_iterations`` make the run
  resumable as ``train_sac_per_task``'s do (``jcomrl.datagen.resumable``: a run started with a
  committed checkpoint of the same settings continues from it, bit for bit; one made with other
  settings is a ``jcomrl.checkpoint.CheckpointError``).
  """
  seg, warm_iters, buffer_size = check_run(
      num_timesteps, num_snapshots, num_envs, warmup_steps, batch_size, updates_per_iteration,
      buffer_size, intervals_after_warmup, keep_replay)
  cfg = sac_config(hidden_sizes, num_envs, batch_size, buffer_size, updates_per_iteration,
                   learn_entropy, target_entropy, train_reward)
  hp = sac_hparams(actor_lr, critic_lr, alpha_lr, discount, tau, entropy_alpha, reward_scale)
  init, run = make_trainer(env, cfg)
  snap = lambda s: {"actor": jax.tree.map(np.array, s.agent.actor)}
  ckpt = sac_checkpoint(
      checkpoint_dir, ALGO, env, tasks, cfg, checkpoint_seconds, checkpoint_iterations,
      num_timesteps=num_timesteps, num_snapshots=num_snapshots, seed=seed,
      warmup_steps=warmup_steps, actor_lr=actor_lr, critic_lr=critic_lr, alpha_lr=alpha_lr,
      discount=discount, tau=tau, entropy_alpha=entropy_alpha, init_alpha=init_alpha,
      reward_scale=reward_scale,
      # only when set: checkpoints written before the option existed stay resumable
      **({"intervals_after_warmup": 1} if intervals_after_warmup else {}))
  abstract = template = None
  if ckpt is not None:
    abstract = jax.eval_shape(init, jax.random.key(seed), tasks, init_alpha)
    template = {"actor": abstract.agent.actor}
  state, snapshots = resumable.train_intervals(
      run, tasks, hp, warmup_steps=warmup_steps, seg=seg, num_snapshots=num_snapshots,
      num_envs=num_envs, fresh=lambda: init(jax.random.key(seed), tasks, init_alpha),
      place=jax.device_put, snapshot=snap, abstract_state=abstract, snapshot_template=template,
      progress_fn=progress_fn, checkpoint=ckpt, warm_iters=warm_iters)
  return behaviour_result(env, cfg, state, snapshots, keep_replay, make_policy_factory, ALGO)
