"""Per-task behaviour agents: one independent SAC agent per task, all trained in one program.

FOCAL, CSRO, CORRO and UNICORN collect their offline data with one SAC agent *per task* and roll
out its checkpoints (FOCAL and CSRO ``policy_train.py``; CORRO/UNICORN
``train_data_collection.py`` with ``data_collection_config/args_<env>.py``, one run per task
seed). ``train_sac_per_task`` does the same for all ``T`` tasks at once: the task axis is a
``vmap`` axis over the agents' parameters, optimiser states and replay buffers, and the
``T x num_envs`` environments are stepped as one flat batch (``TaskEnv.step`` with each env's own
task from the task table). Nothing is shared between tasks but the program: task ``t``'s agent
only ever sees transitions of task ``t``, and its random stream is ``fold_in(key(seed), t)``, so
training ``T`` tasks together gives the same agents as training each alone (tested).

The SAC update is jcomrl's own (``jcomrl.algos.backbones.critic_loss`` / ``actor_loss`` with a
size-0 task code, ``jcomrl.nets.actor_critic`` networks, ``jcomrl.optim.adam``), in the order of
UNICORN's ``algorithms/sac.py`` ``SAC.update``: twin-Q critic step, Polyak target update, actor
step on the updated critic, then the entropy temperature when it is learnt.

Training (one compiled program: a loop over iterations with a traced count, called once per
snapshot interval from a thin host loop):

1. warm-up: the first ``warmup_steps`` env steps per task take uniform random actions in
   [-1, 1] and make no updates (CORRO/UNICORN ``num_init_rollouts_pool``: 50 random rollouts, 10
   on point robot); the phase is a traced flag, so warm-up and training share the program;
2. per iteration: every task's ``num_envs`` envs take one step with actions sampled from that
   task's agent; the transitions go into the task's ring buffer (``buffer_size`` per task); then
   ``updates_per_iteration`` SAC updates per task on uniform minibatches of its buffer;
3. ``num_snapshots`` actor snapshots: the untrained one first (step 0), then one after each of
   ``num_snapshots - 1`` equal intervals of the ``num_timesteps`` budget, the final one last;
   with ``intervals_after_warmup`` the intervals split the budget left after the warm-up, so the
   first trained snapshot comes one interval after the warm-up ends (CORRO/UNICORN save
   ``agent<i>.pt`` every ``save_interval`` iterations counted from the end of their random
   rollouts, ``learner.py:181-200,294-302``).

The buffer stores the terminal flag of the env variant's end convention
(``TaskEnv.stored_flags``, as the collected datasets do): the true termination under
``"true_terminal"`` (FOCAL/CSRO's rlkit SAC), always 0 under ``"no_terminal"`` (CORRO
``learner.py:473-484`` stores ``term = is_goal_state()``, 0 on MuJoCo, so SAC bootstraps through
falls); an env that reports ``done`` is reset either way. ``train_reward`` (an ``EnvState.info``
entry) replaces the env reward for training, e.g. ``"dense_reward"`` on sparse point robot
(FOCAL issue #1). Updates are interleaved with env steps (the official SAC schedule the CORRO
configs quote: "every step rollout 1 transition, update 1 step"); CORRO itself alternates 2
rollouts and 200 updates, i.e. 0.5 updates per env step, which ``num_envs=2,
updates_per_iteration=1`` reproduces as a ratio.

Defaults follow CORRO/UNICORN's MuJoCo data collection (PKU-RL/CORRO
``data_collection_config/args_hopper_param.py:13-27``, run by its ``train_data_collection.py``;
UNICORN ships data made this way and the same SAC, defaults in ``algorithms/sac.py:18-27``):
actor and twin critics 2 x 128, Adam lr 3e-4, gamma 0.99, tau 0.005, fixed entropy 0.2 (FOCAL's
``pytorch_sac`` learns it instead: ``learn_entropy=True, init_alpha=0.1``), batch 256, buffer
1e6, 50 x 200 = 10,000 random warm-up steps; their networks' rlkit init is ``init_scheme="rlkit"``
(flax's lecun-normal by default). Point robot (``args_point_robot_v1.py:13-26``):
2 x 32, gamma 0.9, entropy 0.01, 10 random rollouts. ``num_timesteps`` (env steps per task) is
where CPU budgets shrink.

Snapshots plug into the existing collection and evaluation code unchanged: a snapshot's params
are ``{"actor": [T] stacked actor params, "task_vectors": [T, task_size]}``, and its policy picks
the agent whose task vector is nearest to the task vector the rollout appends to the observation
(exactly the agent of that task when the task is in the table; the nearest trained task's agent
otherwise). So rolling snapshot k in task t acts with task t's agent, and UNICORN's OOD protocol,
which conditions a snapshot on another task's vector, rolls *that task's* agent, as in the paper.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jcomrl import optim
from jcomrl.algos import backbones
from jcomrl.algos.config import HParams
from jcomrl.datagen import resumable
from jcomrl.datagen.policies import BehaviourPolicies
from jcomrl.envs.base import EnvState, Task, TaskEnv
from jcomrl.nets.actor_critic import DoubleCritic, TanhGaussianPolicy, tanh_gaussian_sample
from jcomrl.nets.mlp import check_init
from jcomrl.rollout import env_step
from jcomrl.types import Transition

ALGO = "sac_per_task"


@dataclasses.dataclass(frozen=True)
class Replay:
  """Every transition a per-task SAC run stored in its replay buffers, in the order stored.

  ``transitions`` has leading axes ``[T, S]`` (``S`` = env steps per task of the whole run):
  iteration ``i`` of the training loop stored its ``num_envs`` transitions of task ``t`` at
  ``[t, i * num_envs + e]`` (``e`` = the env), warm-up steps included, with the buffer's fields:
  the training reward (the env reward unless ``train_reward`` is set), ``terminal`` and
  ``timeout`` of the env's end convention (``TaskEnv.stored_flags``), the true ``next_obs``.
  Each env's own transitions (``env_streams``) are one time-ordered run of episodes: an episode
  that ends is followed by the one started by the explicit reset that follows it.
  """

  transitions: Transition
  num_envs: int

  @property
  def num_steps(self) -> int:
    """Env steps per task recorded (``S``)."""
    return int(self.transitions.reward.shape[1])

  def upto(self, steps: int) -> Transition:
    """The first ``steps`` env steps per task (what the buffer held after ``steps`` steps)."""
    if not 0 <= steps <= self.num_steps or steps % self.num_envs:
      raise ValueError(f"steps={steps} must be a multiple of num_envs={self.num_envs} in "
                       f"[0, {self.num_steps}]")
    return jax.tree.map(lambda x: x[:, :steps], self.transitions)

  def env_streams(self, steps: int) -> Transition:
    """``upto(steps)`` regrouped per env: leading axes ``[T, num_envs, steps // num_envs]``,
    each env's transitions in time order."""
    e = self.num_envs
    return jax.tree.map(
        lambda x: np.swapaxes(x.reshape((x.shape[0], -1, e) + x.shape[2:]), 1, 2),
        self.upto(steps))


@dataclasses.dataclass(frozen=True)
class PerTaskSACConfig:
  """Static structure of a per-task SAC run (a change recompiles).

  Attributes:
    hidden_sizes: actor and critic hidden layer sizes.
    num_envs: envs per task stepped in parallel each iteration.
    batch_size: minibatch size of each update, per task.
    buffer_size: ring-buffer capacity per task (transitions).
    updates_per_iteration: SAC updates per task after each env step of its ``num_envs`` envs.
    learn_entropy: learn the entropy temperature towards ``target_entropy`` (else fixed).
    target_entropy: the temperature's target; ``None`` = ``-action_size``.
    train_reward: an ``EnvState.info`` key to train on instead of the env reward.
    log_std_min, log_std_max: the policy's log-std clip (rlkit / CORRO: -20, 2).
    init_scheme: the networks' init (``jcomrl.nets.mlp.INITS``): flax's ``"lecun_normal"``
      (default) or CORRO/UNICORN's ``"rlkit"`` (torchkit/networks.py:23-27).
  """

  hidden_sizes: tuple[int, ...] = (128, 128)
  num_envs: int = 2
  batch_size: int = 256
  buffer_size: int = 1_000_000
  updates_per_iteration: int = 1
  learn_entropy: bool = False
  target_entropy: float | None = None
  train_reward: str | None = None
  log_std_min: float = -20.0
  log_std_max: float = 2.0
  init_scheme: str = "lecun_normal"


@struct.dataclass
class Agent:
  """One task's SAC agent (a leading task axis ``[T]`` in ``TrainState``)."""

  actor: Any
  critic: Any
  critic_target: Any
  log_alpha: jnp.ndarray
  opt_actor: Any
  opt_critic: Any
  opt_alpha: Any


@struct.dataclass
class TrainState:
  """Everything the training loop carries.

  Attributes:
    agents: ``Agent`` with leading ``[T]``.
    buffer: ``Transition`` ring buffers ``[T, buffer_size]``.
    env: ``EnvState`` of the ``T * num_envs`` envs, flat, task-major.
    episode_return: ``[T * num_envs]`` env-reward return of each env's running episode.
    key: ``[T]`` raw key data, one random stream per task.
    ptr, size: ring-buffer write position and fill (the same for every task).
    steps: env steps taken per task so far.
  """

  agents: Agent
  buffer: Transition
  env: EnvState
  episode_return: jnp.ndarray
  key: jnp.ndarray
  ptr: jnp.ndarray
  size: jnp.ndarray
  steps: jnp.ndarray


def networks(env: TaskEnv, cfg: PerTaskSACConfig):
  """``(policy, critic)`` flax modules of one agent (task code of size 0)."""
  policy = TanhGaussianPolicy(tuple(cfg.hidden_sizes), env.action_size,
                              log_std_min=cfg.log_std_min, log_std_max=cfg.log_std_max,
                              init_scheme=cfg.init_scheme)
  critic = DoubleCritic(tuple(cfg.hidden_sizes), init_scheme=cfg.init_scheme)
  return policy, critic


def no_code(lead=()):
  """The empty task code ``[*lead, 0]`` the agents' networks take (they are not conditioned)."""
  return jnp.zeros(tuple(lead) + (0,), jnp.float32)


def init_actor(policy: TanhGaussianPolicy, env: TaskEnv, key: jax.Array):
  return policy.init(key, jnp.zeros((1, env.observation_size)), no_code((1,)))


def init_agent(env: TaskEnv, cfg: PerTaskSACConfig, key: jax.Array, init_alpha) -> Agent:
  """A fresh agent: actor, twin critic (target = copy), log temperature, Adam states."""
  policy, critic = networks(env, cfg)
  k_actor, k_critic = jax.random.split(key)
  actor_p = init_actor(policy, env, k_actor)
  critic_p = critic.init(k_critic, jnp.zeros((1, env.observation_size)), no_code((1,)),
                         jnp.zeros((1, env.action_size)))
  log_alpha = jnp.log(jnp.asarray(init_alpha, jnp.float32))
  opt = optim.adam()
  return Agent(actor=actor_p, critic=critic_p, critic_target=critic_p, log_alpha=log_alpha,
               opt_actor=opt.init(actor_p), opt_critic=opt.init(critic_p),
               opt_alpha=opt.init(log_alpha))


def make_sac_step(policy, critic, cfg: PerTaskSACConfig, target_entropy: float):
  """``step(agent, batch, k_critic, k_actor, hp) -> (agent, metrics)``: one SAC update of an
  agent on a batch (task code of size 0), in the order of UNICORN's ``algorithms/sac.py:83-142``:
  critic, Polyak target, the actor on the updated critic, then the temperature when learnt. The
  per-task agents and the shared agent (``jcomrl.datagen.shared_sac``) both step with it."""
  opt = optim.adam()
  z = no_code()

  def step(agent: Agent, batch: Transition, k_critic, k_actor, hp: HParams):
    alpha = jnp.exp(agent.log_alpha) if cfg.learn_entropy else hp.entropy_alpha
    (_, m_c), g_c = jax.value_and_grad(backbones.critic_loss, has_aux=True)(
        agent.critic, agent.critic_target, agent.actor, alpha, batch, z, k_critic, hp,
        policy=policy, critic=critic)
    critic_p, opt_critic = optim.step(opt, agent.opt_critic, g_c, agent.critic, hp.critic_lr)
    target_p = optax.incremental_update(critic_p, agent.critic_target, hp.tau)
    (_, (m_a, logp, _)), g_a = jax.value_and_grad(backbones.actor_loss, has_aux=True)(
        agent.actor, critic_p, None, alpha, batch, z, k_actor, hp, policy=policy,
        critic=critic, dual=None)
    actor_p, opt_actor = optim.step(opt, agent.opt_actor, g_a, agent.actor, hp.actor_lr)
    log_alpha, opt_alpha = agent.log_alpha, agent.opt_alpha
    if cfg.learn_entropy:
      # pytorch_sac (FOCAL's behaviour trainer): loss = alpha * (-log pi - target), detached.
      g_alpha = -(jax.lax.stop_gradient(logp) + target_entropy) * jnp.exp(log_alpha)
      log_alpha, opt_alpha = optim.step(opt, opt_alpha, g_alpha, log_alpha, hp.alpha_lr)
    new = Agent(actor=actor_p, critic=critic_p, critic_target=target_p, log_alpha=log_alpha,
                opt_actor=opt_actor, opt_critic=opt_critic, opt_alpha=opt_alpha)
    metrics = {"critic/loss": m_c["critic/loss"], "critic/q": m_c["critic/q"],
               "actor/loss": m_a["actor/loss"], "actor/entropy": m_a["actor/entropy"],
               "actor/alpha": jnp.asarray(alpha, jnp.float32)}
    return new, metrics

  return step


def make_update(env: TaskEnv, cfg: PerTaskSACConfig):
  """``update(agent, buffer, size, key, hp) -> (agent, metrics)`` for ONE task's agent.

  ``cfg.updates_per_iteration`` SAC updates on minibatches drawn uniformly from the first
  ``size`` entries of ``buffer`` (``Transition [buffer_size]``). The trainer vmaps it over tasks.
  """
  policy, critic = networks(env, cfg)
  target_entropy = (-float(env.action_size) if cfg.target_entropy is None
                    else float(cfg.target_entropy))
  step = make_sac_step(policy, critic, cfg, target_entropy)

  def one_update(agent: Agent, key, buffer, size, hp: HParams):
    k_idx, k_critic, k_actor = jax.random.split(key, 3)
    idx = jax.random.randint(k_idx, (cfg.batch_size,), 0, size)
    batch = jax.tree.map(lambda x: x[idx], buffer)
    return step(agent, batch, k_critic, k_actor, hp)

  def update(agent: Agent, buffer: Transition, size, key, hp: HParams):
    def body(a, k):
      return one_update(a, k, buffer, size, hp)

    agent, metrics = jax.lax.scan(body, agent, jax.random.split(key, cfg.updates_per_iteration))
    return agent, jax.tree.map(jnp.mean, metrics)

  return update


def record_step(state, nxt, tr, t: int, e: int, buffer_size: int):
  """The bookkeeping after one env step of ``t`` tasks x ``e`` envs, shared by the per-task and
  the shared SAC trainers: the running episode returns (reset where an episode ended), the step's
  ``{"return_sum", "episodes"}`` per task, and the ring-buffer insert of each task's ``e``
  transitions ``tr`` at the shared write position ``state.ptr``.

  Returns ``(episode_return, stats, buffer, size)``.
  """
  ep_ret = state.episode_return + nxt.reward
  ended = nxt.done > 0
  stats = {"return_sum": jnp.where(ended, ep_ret, 0.0).reshape(t, e).sum(-1),
           "episodes": ended.astype(jnp.float32).reshape(t, e).sum(-1)}
  ep_ret = jnp.where(ended, 0.0, ep_ret)
  idx = (state.ptr + jnp.arange(e)) % buffer_size
  buffer = jax.tree.map(lambda b, x: b.at[:, idx].set(x.reshape((t, e) + x.shape[1:])),
                        state.buffer, tr)
  size = jnp.minimum(state.size + e, buffer_size)
  return ep_ret, stats, buffer, size


def repeat_tasks(tasks, e: int):
  """The task table ``[T]`` with each row repeated for its ``e`` envs: ``[T * e]``, task-major
  (the flat env batch both trainers step)."""
  return jax.tree.map(lambda x: jnp.repeat(x, e, axis=0), tasks) if e > 1 else tasks


def empty_buffer(t: int, c: int, obs_size: int, act_size: int) -> Transition:
  """``t`` zeroed ring buffers of ``c`` transitions each: ``Transition [t, c, ...]``."""
  return Transition(obs=jnp.zeros((t, c, obs_size)), action=jnp.zeros((t, c, act_size)),
                    reward=jnp.zeros((t, c)), next_obs=jnp.zeros((t, c, obs_size)),
                    terminal=jnp.zeros((t, c)), timeout=jnp.zeros((t, c)))


def sum_iterations(iteration: Callable, state, num_iterations):
  """``num_iterations`` (traced) calls of ``iteration(state) -> (state, stats)`` in one
  ``fori_loop``; returns ``(state, sums)``: ``return_sum``, ``episodes`` and ``updated`` summed
  over every iteration, each update metric summed over the updating iterations only (weighted by
  ``updated``). The loop of both trainers' ``run``."""
  shapes = jax.eval_shape(lambda s: iteration(s)[1], state)
  zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)

  def body(_, carry):
    s, acc = carry
    s, stats = iteration(s)
    w = stats["updated"]  # update metrics are summed over updating iterations only
    acc = {k: acc[k] + (v if k in ("return_sum", "episodes", "updated") else w * v)
           for k, v in stats.items()}
    return s, acc

  return jax.lax.fori_loop(0, num_iterations, body, (state, zeros))


def _make_init(env: TaskEnv, cfg: PerTaskSACConfig) -> Callable:
  """``init(task_keys [T], tasks [T], init_alpha) -> TrainState`` of ``make_trainer``: task
  ``t``'s key splits into its state stream, its agent's init and its envs' resets."""
  e = cfg.num_envs
  v_reset = jax.vmap(env.reset)

  def init(task_keys, tasks, init_alpha):
    t = task_keys.shape[0]
    keys = jax.vmap(lambda k: jax.random.split(k, 3))(task_keys)
    # lax.map, not vmap: the same agents, and half the compile time of the initialisers.
    agents = jax.lax.map(lambda k: init_agent(env, cfg, k, init_alpha), keys[:, 1])
    reset_keys = jax.vmap(lambda k: jax.random.split(k, e))(keys[:, 2]).reshape((t * e,))
    env_state = v_reset(reset_keys, repeat_tasks(tasks, e))
    buffer = empty_buffer(t, cfg.buffer_size, env.observation_size, env.action_size)
    zero = jnp.zeros((), jnp.int32)
    return TrainState(agents=agents, buffer=buffer, env=env_state,
                      episode_return=jnp.zeros((t * e,)), key=jax.random.key_data(keys[:, 0]),
                      ptr=zero, size=zero, steps=zero)

  return init


def _make_iteration(env: TaskEnv, cfg: PerTaskSACConfig, v_update: Callable) -> Callable:
  """``iteration(state, flat_tasks, hp, warmup_steps) -> (state, stats)``: one env step of every
  task's ``num_envs`` envs (uniform random actions while ``state.steps < warmup_steps``, else
  sampled from the task's agent), its transitions stored, then ``v_update`` of every agent
  unless warming up."""
  policy, _ = networks(env, cfg)
  e, obs_size, act_size = cfg.num_envs, env.observation_size, env.action_size

  def act(actor_params, obs, key):  # one task: obs [E, O]
    mean, log_std = policy.apply(actor_params, obs, no_code((obs.shape[0],)))
    return tanh_gaussian_sample(key, mean, log_std)[0]

  def iteration(state: TrainState, flat, hp, warmup_steps):
    t = state.key.shape[0]
    keys = jax.vmap(lambda k: jax.random.split(jax.random.wrap_key_data(k), 5))(state.key)
    k_next, k_act, k_rand, k_reset, k_upd = (keys[:, i] for i in range(5))
    warm = state.steps < warmup_steps
    uniform = jax.vmap(lambda k: jax.random.uniform(k, (e, act_size), minval=-1.0,
                                                    maxval=1.0))(k_rand)
    sampled = jax.vmap(act)(state.agents.actor, state.env.obs.reshape(t, e, obs_size), k_act)
    actions = jnp.where(warm, uniform, sampled).reshape(t * e, act_size)
    reset_keys = jax.vmap(lambda k: jax.random.split(k, e))(k_reset).reshape((t * e,))
    # The env step with an explicit reset where an episode ended (never a cached auto-reset),
    # computed only when needed; the stored flags follow the env variant's end convention.
    env_state, nxt, tr = env_step(env, state.env, actions, flat, reset_keys, batched=True)
    if cfg.train_reward is not None:
      tr = tr.replace(reward=nxt.info[cfg.train_reward])
    ep_ret, stats, buffer, size = record_step(state, nxt, tr, t, e, cfg.buffer_size)
    no_update = lambda: (state.agents, jax.tree.map(
        jnp.zeros_like, jax.eval_shape(v_update, state.agents, buffer, size, k_upd, hp)[1]))
    agents, metrics = jax.lax.cond(warm, no_update,
                                   lambda: v_update(state.agents, buffer, size, k_upd, hp))
    stats.update(metrics)
    stats["updated"] = 1.0 - warm.astype(jnp.float32)
    new = TrainState(agents=agents, buffer=buffer, env=env_state, episode_return=ep_ret,
                     key=jax.random.key_data(k_next), ptr=(state.ptr + e) % cfg.buffer_size,
                     size=size, steps=state.steps + e)
    return new, stats

  return iteration


def make_trainer(env: TaskEnv, cfg: PerTaskSACConfig):
  """``(init, run)``, both jitted.

  * ``init(task_keys [T], tasks [T], init_alpha) -> TrainState``;
  * ``run(state, tasks, hp, warmup_steps, num_iterations) -> (state, stats)`` runs
    ``num_iterations`` iterations (traced: another budget does not recompile). While
    ``state.steps < warmup_steps`` (traced) an iteration is a warm-up one: uniform random
    actions and no updates. ``stats``: sums over the call's iterations: per task ``[T]``,
    ``return_sum`` / ``episodes`` of the episodes that ended and each update metric summed over
    the updating iterations, whose number is ``updated`` (``resumable.metrics_of`` averages).
  One program serves the warm-up and every snapshot interval (the phase is a traced flag); two
  calls of ``n`` and ``m`` iterations give the state of one call of ``n + m``, bit for bit.
  """
  v_update = jax.vmap(make_update(env, cfg), in_axes=(0, 0, None, 0, None))
  iteration = _make_iteration(env, cfg, v_update)

  @functools.partial(jax.jit, donate_argnums=(0,))
  def run(state: TrainState, tasks, hp: HParams, warmup_steps, num_iterations):
    flat = repeat_tasks(tasks, cfg.num_envs)
    return sum_iterations(lambda s: iteration(s, flat, hp, warmup_steps), state, num_iterations)

  return jax.jit(_make_init(env, cfg)), run


def make_policy_factory(env: TaskEnv, hidden_sizes: tuple[int, ...], log_std_min: float = -20.0,
                        log_std_max: float = 2.0) -> Callable:
  """``make_policy(params, deterministic) -> policy(obs_with_task_vector, key)`` of a snapshot.

  ``params = {"actor": [T] actor params, "task_vectors": [T, task_size]}``; the policy acts with
  the agent whose task vector is nearest (squared distance) to the observation's trailing
  ``task_size`` entries, the task vector the collection rollouts append.
  """
  policy_net = TanhGaussianPolicy(tuple(hidden_sizes), env.action_size, log_std_min=log_std_min,
                                  log_std_max=log_std_max)
  task_size = env.task_size

  def make_policy(params, deterministic):
    def policy(obs, key):
      o, vec = obs[:-task_size], obs[-task_size:]
      row = jnp.argmin(jnp.sum((params["task_vectors"] - vec) ** 2, axis=-1))
      actor = jax.tree.map(lambda x: x[row], params["actor"])
      mean, log_std = policy_net.apply(actor, o, no_code())
      if deterministic:
        return jnp.tanh(mean), {}
      return tanh_gaussian_sample(key, mean, log_std)[0], {}

    return policy

  return make_policy


def policy_template(env: TaskEnv, hidden_sizes: tuple[int, ...], num_tasks: int | None = None):
  """``(make_policy, params)`` of an untrained snapshot for ``num_tasks`` agents (default: the
  env's number of benchmark tasks): the layout a restore must match."""
  if num_tasks is None:
    num_tasks = int(jax.tree.leaves(env.all_benchmark_tasks())[0].shape[0])
  policy = TanhGaussianPolicy(tuple(hidden_sizes), env.action_size)
  actor = jax.jit(lambda ks: jax.lax.map(lambda k: init_actor(policy, env, k), ks))(
      jax.random.split(jax.random.key(0), num_tasks))
  params = {"actor": actor, "task_vectors": jnp.zeros((num_tasks, env.task_size), jnp.float32)}
  return make_policy_factory(env, hidden_sizes), params


def checkpoint_settings(cfg: PerTaskSACConfig, **values) -> dict:
  """What a resumable run's checkpoint is keyed by (both trainers): the static config and the
  arguments that change the trajectory, as numbers."""
  return {**dataclasses.asdict(cfg),
          **{k: v if v is None or isinstance(v, (str, int)) else float(v)
             for k, v in values.items()}}


def check_at_least(name, value, lo=1):
  """``ValueError`` naming ``name`` unless ``int(value) >= lo``."""
  if int(value) < lo:
    raise ValueError(f"{name} must be >= {lo}, got {value}")


def schedule(num_timesteps: int, num_snapshots: int, num_envs: int, warmup_steps: int,
             after_warmup: bool = False) -> int:
  """Iterations per snapshot interval: the ``num_timesteps // num_envs`` iterations of a budget
  of ``num_timesteps`` env steps per task split evenly into ``num_snapshots - 1`` intervals
  (``ValueError`` if they are fewer, or if the warm-up leaves no updating iteration).

  ``after_warmup``: the warm-up's ``warmup_steps // num_envs`` iterations (``warmup_steps`` a
  multiple of ``num_envs``) come first and the rest of the budget is split, so snapshot ``k``
  follows ``warmup_steps + k * seg * num_envs`` env steps."""
  if after_warmup:
    if warmup_steps % num_envs:
      raise ValueError(f"intervals_after_warmup needs warmup_steps={warmup_steps} to be a "
                       f"multiple of num_envs={num_envs} (whole warm-up iterations)")
    seg = (int(num_timesteps) - warmup_steps) // num_envs // (num_snapshots - 1)
    if seg < 1:
      raise ValueError(f"num_timesteps={num_timesteps} leaves fewer than {num_snapshots - 1} "
                       f"iterations of {num_envs} envs per task after warmup_steps="
                       f"{warmup_steps}; raise num_timesteps or lower num_snapshots")
    return seg
  seg = int(num_timesteps) // num_envs // (num_snapshots - 1)
  total = seg * (num_snapshots - 1) * num_envs
  if seg < 1 or warmup_steps >= total:
    raise ValueError(f"num_timesteps={num_timesteps} gives {total} env steps per task in "
                     f"{num_snapshots - 1} snapshot intervals of whole iterations ({num_envs} "
                     f"envs per task), not more than warmup_steps={warmup_steps}; raise "
                     "num_timesteps or lower warmup_steps / num_snapshots")
  return seg


def task_sharding(num_tasks: int, devices: int | None = None) -> NamedSharding | None:
  """Shards a leading task axis over ``gcd(num_tasks, devices)`` of ``jax.devices()`` (all of
  them by default; None on one). The agents are independent, so each device trains its share of
  the tasks in parallel: on a CPU host split into several XLA CPU devices
  (``jax_num_cpu_devices``) this is what lets the small per-task networks use more than one core
  (one device's program runs them on about one)."""
  avail = jax.devices()
  n = math.gcd(num_tasks, len(avail) if devices is None else min(int(devices), len(avail)))
  if n <= 1:
    return None
  return NamedSharding(Mesh(np.asarray(avail[:n]), ("task",)), PartitionSpec("task"))


def shard_over_tasks(tree, sharding: NamedSharding | None, num_tasks: int):
  """Leaves with a leading task (or task x env) axis sharded over ``sharding``, the rest
  replicated on its devices."""
  if sharding is None:
    return tree
  rep = NamedSharding(sharding.mesh, PartitionSpec())
  n = sharding.mesh.size

  def put(x):
    lead = np.shape(x)[0] if np.ndim(x) else 0
    ok = lead and lead % num_tasks == 0 and lead % n == 0
    return jax.device_put(x, sharding if ok else rep)

  return jax.tree.map(put, tree)


def check_run(num_timesteps: int, num_snapshots: int, num_envs: int, warmup_steps: int,
              batch_size: int, updates_per_iteration: int, buffer_size: int | None,
              intervals_after_warmup: bool, keep_replay: bool,
              replay_note: str = "") -> tuple[int, int, int]:
  """Checks the sizes of a behaviour run (both trainers' arguments; ``ValueError`` naming the
  first bad one) and returns ``(seg, warm_iters, buffer_size)``: the iterations per snapshot
  interval (:func:`schedule`), the warm-up iterations run before the first interval (with
  ``intervals_after_warmup``; else 0) and the ring-buffer size per task (default
  ``min(num_timesteps, 1e6)``), which must hold the whole run with ``keep_replay``
  (``replay_note`` is added to that error)."""
  check_at_least("num_snapshots", num_snapshots, 2)
  for name, v in (("num_envs", num_envs), ("batch_size", batch_size),
                  ("updates_per_iteration", updates_per_iteration)):
    check_at_least(name, v)
  check_at_least("warmup_steps", warmup_steps, 0)
  seg = schedule(num_timesteps, num_snapshots, num_envs, warmup_steps, intervals_after_warmup)
  warm_iters = warmup_steps // num_envs if intervals_after_warmup else 0
  buffer_size = int(buffer_size) if buffer_size else min(int(num_timesteps), 1_000_000)
  if buffer_size < num_envs:
    raise ValueError(f"buffer_size={buffer_size} is smaller than num_envs={num_envs}")
  total_steps = (warm_iters + seg * (num_snapshots - 1)) * num_envs
  if keep_replay and buffer_size < total_steps:
    raise ValueError(f"keep_replay needs a buffer that holds the whole run: buffer_size="
                     f"{buffer_size} < {total_steps} env steps per task{replay_note}; raise "
                     "buffer_size")
  return seg, warm_iters, buffer_size


def sac_config(hidden_sizes, num_envs, batch_size, buffer_size, updates_per_iteration,
               learn_entropy, target_entropy, train_reward,
               init_scheme: str = "lecun_normal") -> PerTaskSACConfig:
  """The static ``PerTaskSACConfig`` of a trainer's arguments (both trainers)."""
  return PerTaskSACConfig(hidden_sizes=tuple(hidden_sizes), num_envs=int(num_envs),
                          batch_size=int(batch_size), buffer_size=buffer_size,
                          updates_per_iteration=int(updates_per_iteration),
                          learn_entropy=bool(learn_entropy), target_entropy=target_entropy,
                          train_reward=train_reward, init_scheme=init_scheme)


def sac_hparams(actor_lr, critic_lr, alpha_lr, discount, tau, entropy_alpha,
                reward_scale) -> HParams:
  """The traced SAC hyper-parameters of a trainer's arguments (both trainers)."""
  return HParams.create(actor_lr=actor_lr, critic_lr=critic_lr, alpha_lr=alpha_lr,
                        discount=discount, tau=tau, entropy_alpha=entropy_alpha,
                        reward_scale=reward_scale)


def sac_checkpoint(checkpoint_dir: str | None, algo: str, env: TaskEnv, tasks: Task,
                   cfg: PerTaskSACConfig, every_seconds: float, every_iterations: int,
                   **values) -> resumable.Checkpoint | None:
  """The ``resumable.Checkpoint`` in ``checkpoint_dir`` of a run of ``algo`` keyed by ``cfg``
  and ``values`` (:func:`checkpoint_settings`), or None without a directory."""
  if checkpoint_dir is None:
    return None
  run_settings = resumable.settings(algo, env, tasks, **checkpoint_settings(cfg, **values))
  return resumable.Checkpoint(checkpoint_dir, run_settings, every_seconds=every_seconds,
                              every_iterations=every_iterations)


def behaviour_result(env: TaskEnv, cfg: PerTaskSACConfig, state, snapshots: list,
                     keep_replay: bool, make_policy_factory: Callable, algo: str):
  """What a trainer returns: the ``BehaviourPolicies`` of ``snapshots`` (``[(env steps,
  params)]``, stacked ``[K, ...]``) and, with ``keep_replay``, the ``Replay`` of the final
  ``state``'s buffers (which then hold the whole run)."""
  steps = np.asarray([s for s, _ in snapshots], np.int64)
  params = jax.tree.map(lambda *xs: np.stack(xs), *[p for _, p in snapshots])
  policies = BehaviourPolicies(params=params, steps=steps,
                               make_policy=make_policy_factory(env, cfg.hidden_sizes),
                               hidden_sizes=cfg.hidden_sizes, algo=algo,
                               normalize_observations=False)
  if not keep_replay:
    return policies
  # No wrap-around (checked by check_run): entries [0, steps) are the run in insertion order.
  stored = jax.tree.map(lambda x: np.asarray(x[:, :int(state.steps)]), state.buffer)
  return policies, Replay(transitions=stored, num_envs=cfg.num_envs)


def _task_keys(task_keys: jax.Array | None, seed: int, tasks: Task) -> jax.Array:
  """``task_keys`` (``ValueError`` unless one per task of ``tasks``), by default task ``t``'s
  ``fold_in(key(seed), t)``."""
  num_tasks = int(jax.tree.leaves(tasks)[0].shape[0])
  if task_keys is None:
    base = jax.random.key(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(num_tasks))
  if task_keys.shape[0] != num_tasks:
    raise ValueError(f"task_keys has {task_keys.shape[0]} keys for {num_tasks} tasks")
  return task_keys


def _train_per_task(env: TaskEnv, cfg: PerTaskSACConfig, tasks: Task, hp: HParams, task_keys,
                    init_alpha, devices: int | None, ckpt: resumable.Checkpoint | None, **loop):
  """Builds the per-task trainer, shards the tasks over ``devices`` (:func:`task_sharding`) and
  runs ``resumable.train_intervals`` (``loop``: its schedule and ``progress_fn``) from a fresh
  state or ``ckpt``'s; returns ``(state, snapshots)``."""
  num_tasks = int(task_keys.shape[0])
  init, run = make_trainer(env, cfg)
  sharding = task_sharding(num_tasks, devices)
  tasks = shard_over_tasks(tasks, sharding, num_tasks)
  vectors = np.asarray(jax.vmap(env.task_vector)(tasks), np.float32)
  snap = lambda s: {"actor": jax.tree.map(np.array, s.agents.actor), "task_vectors": vectors}
  abstract = template = None
  if ckpt is not None:
    abstract = jax.eval_shape(init, task_keys, tasks, init_alpha)
    template = {"actor": abstract.agents.actor, "task_vectors": vectors}
  fresh = lambda: shard_over_tasks(init(task_keys, tasks, init_alpha), sharding, num_tasks)

  def place(tree):  # a restored host state, laid out as a fresh one
    return jax.device_put(tree) if sharding is None else shard_over_tasks(tree, sharding, num_tasks)

  return resumable.train_intervals(run, tasks, hp, fresh=fresh, place=place, snapshot=snap,
                                   abstract_state=abstract, snapshot_template=template,
                                   checkpoint=ckpt, **loop)


def train_sac_per_task(env: TaskEnv, tasks: Task, *, num_timesteps: int, num_snapshots: int,
                       seed: int, num_envs: int = 2, hidden_sizes: tuple[int, ...] = (128, 128),
                       batch_size: int = 256, buffer_size: int | None = None,
                       warmup_steps: int = 10_000, updates_per_iteration: int = 1,
                       actor_lr: float = 3e-4, critic_lr: float = 3e-4, alpha_lr: float = 3e-4,
                       discount: float = 0.99, tau: float = 0.005, entropy_alpha: float = 0.2,
                       learn_entropy: bool = False, init_alpha: float = 0.1,
                       target_entropy: float | None = None, reward_scale: float = 1.0,
                       train_reward: str | None = None,
                       progress_fn: Callable[[int, dict], None] | None = None,
                       task_keys: jax.Array | None = None, keep_replay: bool = False,
                       devices: int | None = None, intervals_after_warmup: bool = False,
                       init_scheme: str = "lecun_normal", checkpoint_dir: str | None = None,
                       checkpoint_seconds: float = 600.0, checkpoint_iterations: int = 1000,
                       ) -> BehaviourPolicies | tuple[BehaviourPolicies, Replay]:
  """Trains one SAC agent per task of ``tasks``, all at once; returns K actor snapshots.

  Args:
    env: the multi-task env; tasks: ``[T]`` task table (one agent per row).
    num_timesteps: env steps per task in total (warm-up included).
    num_snapshots: K >= 2 snapshots (untrained first, final last).
    seed: task ``t``'s agent uses ``fold_in(key(seed), t)`` (or ``task_keys[t]``).
    num_envs: envs per task; hidden_sizes: actor and critic hidden sizes.
    batch_size: minibatch per update and task; buffer_size: ring buffer per task
      (default ``min(num_timesteps, 1e6)``, i.e. nothing is overwritten).
    warmup_steps: env steps per task with uniform random actions before the first update.
    updates_per_iteration: SAC updates per task after each step of its ``num_envs`` envs.
    actor_lr, critic_lr, alpha_lr, discount, tau, reward_scale: SAC hyper-parameters.
    entropy_alpha: the fixed temperature (``learn_entropy=False``, CORRO/UNICORN).
    learn_entropy, init_alpha, target_entropy: a learnt temperature (FOCAL's pytorch_sac),
      started at ``init_alpha``, target ``-action_size`` by default.
    train_reward: an ``EnvState.info`` reward to train on instead of the env reward.
    progress_fn: ``progress_fn(env steps per task, metrics)`` after each snapshot interval;
      metrics hold per-task arrays ``[T]`` (``train/return``: mean env-reward return of the
      episodes that ended in the interval) and ``"train/seconds"``.
    task_keys: ``[T]`` per-agent keys overriding the ``seed`` derivation.
    keep_replay: also return the run's ``Replay`` (every stored transition, host arrays); the
      buffer must then hold the whole run (``buffer_size`` >= the env steps per task).
    devices: how many of ``jax.devices()`` share the tasks (:func:`task_sharding`; default
      all, 1 = one device). The agents do not depend on it (up to float rounding: the
      partitioned program may sum in another order).
    intervals_after_warmup: split only the ``num_timesteps - warmup_steps`` steps after the
      warm-up into the ``num_snapshots - 1`` intervals (the first call runs the warm-up and the
      first interval), so no snapshot falls inside the warm-up and each trained snapshot follows
      a fixed number of updates (CORRO's ``agent<i>.pt``); default: equal intervals of the whole
      budget, warm-up included.
    init_scheme: the networks' init, ``"lecun_normal"`` (flax's, default) or ``"rlkit"``
      (CORRO/UNICORN's torchkit: fan-in uniform hidden layers, biases 0.1, small uniform heads).
    checkpoint_dir: makes the run resumable (``jcomrl.datagen.resumable``): the whole train state,
      replay buffers and snapshots so far are written there at the end of every snapshot
      interval and, inside one, after a compiled call of at most ``checkpoint_iterations``
      iterations that ends ``checkpoint_seconds`` or more after the last write; a run started
      with a committed checkpoint of the same settings there continues from it, to the agents
      an uninterrupted run gives, bit for bit. A checkpoint made with other settings is a
      ``jcomrl.checkpoint.CheckpointError`` (never overwritten). The directory is left in place;
      the caller deletes it once the result is saved.
  Returns:
    ``BehaviourPolicies`` with ``algo="sac_per_task"``; ``params`` leaves have leading
    ``[K, T]`` (see ``make_policy_factory``); ``steps`` counts env steps per task. With
    ``keep_replay``: ``(policies, replay)``.
  """
  seg, warm_iters, buffer_size = check_run(
      num_timesteps, num_snapshots, num_envs, warmup_steps, batch_size, updates_per_iteration,
      buffer_size, intervals_after_warmup, keep_replay, " (nothing may be overwritten)")
  cfg = sac_config(hidden_sizes, num_envs, batch_size, buffer_size, updates_per_iteration,
                   learn_entropy, target_entropy, train_reward, check_init(init_scheme))
  hp = sac_hparams(actor_lr, critic_lr, alpha_lr, discount, tau, entropy_alpha, reward_scale)
  task_keys = _task_keys(task_keys, seed, tasks)
  ckpt = sac_checkpoint(
      checkpoint_dir, ALGO, env, tasks, cfg, checkpoint_seconds, checkpoint_iterations,
      num_timesteps=num_timesteps, num_snapshots=num_snapshots, seed=seed,
      warmup_steps=warmup_steps, actor_lr=actor_lr, critic_lr=critic_lr, alpha_lr=alpha_lr,
      discount=discount, tau=tau, entropy_alpha=entropy_alpha, init_alpha=init_alpha,
      reward_scale=reward_scale, task_keys=resumable.digest(task_keys),
      intervals_after_warmup=int(bool(intervals_after_warmup)))
  state, snapshots = _train_per_task(
      env, cfg, tasks, hp, task_keys, init_alpha, devices, ckpt, warmup_steps=warmup_steps,
      seg=seg, num_snapshots=num_snapshots, num_envs=num_envs, progress_fn=progress_fn,
      warm_iters=warm_iters)
  return behaviour_result(env, cfg, state, snapshots, keep_replay, make_policy_factory, ALGO)
