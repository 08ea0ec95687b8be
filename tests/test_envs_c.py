"""Tests of the C-MuJoCo physics backend (``physics="c"``) of the MuJoCo task families.

The C backend must simulate the same MDPs as MJX: :func:`test_c_matches_mjx_over_50_steps` walks
a 50-step MJX trajectory (4 benchmark tasks at once, random actions) and, from every MJX state,
takes the same step under ``"c"``; positions must agree within the tolerance of
``test_envs_mjx.test_mjx_matches_mujoco_c`` (MJX float32 vs C MuJoCo float64, atol 2e-4), and
rewards, observations and done flags accordingly. It compares step by step rather than two free
runs because free-running float32 MJX itself leaves float64 C MuJoCo by more than that after
about 20 steps under random actions (chaotic contact dynamics; cheetah: 1e-3 at step 20, 8e-2
at step 50); the first steps of the free runs are compared too.

Each family costs one MJX compile of ``vmap(step)`` (tens of seconds on 2 cores, opt level 0);
everything else compiles C programs (seconds). Brax PPO behaviour training and dataset collection
on ``"c"`` are covered by ``test_collect.test_tiny_mjx_dataset_generates_from_its_config``: its
data configs use ``physics="auto"``, i.e. ``"c"`` on a CPU, and it checks the recorded backend.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcomrl import envs
from jcomrl.envs import c_physics

mujoco = pytest.importorskip("mujoco")

ENV_NAMES = ["cheetah_vel", "cheetah_dir", "ant_dir", "hopper_param", "walker_param"]
TASK_IDS = [0, 13, 26, 39]
BATCH = len(TASK_IDS)
STEPS = 50
FREE_STEPS = 10  # free-running horizon over which float32 MJX stays within ATOL of C MuJoCo
ATOL = 2e-4  # test_envs_mjx.test_mjx_matches_mujoco_c
COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


def _tasks(env, ids=TASK_IDS):
  n = env.num_tasks
  return jax.tree.map(lambda x: x[jnp.asarray([i % n for i in ids])], env.all_benchmark_tasks())


@functools.cache
def _env_fns(name: str, physics: str, variant: str = "unicorn", **kw):
  """``(env, jit(vmap(reset)), jit(vmap(step)))`` (compiled on first call)."""
  env = envs.make(name, physics=physics, variant=variant, episode_length=1000, **kw)
  reset = jax.jit(jax.vmap(env.reset), compiler_options=COMPILER_OPTIONS)
  step = jax.jit(jax.vmap(env.step), compiler_options=COMPILER_OPTIONS)
  return env, reset, step


def _to_host(env_c, state):
  """The ``"c"`` state of an ``"mjx"`` state (the fields the C backend carries)."""
  p = state.physics
  extra = {}
  if "xpos" in env_c.host_fields:
    extra["xpos"] = p.xpos
  if "cfrc_ext" in env_c.host_fields:
    extra["cfrc_ext"] = jnp.zeros(p.xpos.shape[:-1] + (6,), jnp.float32)
  return state.replace(physics=c_physics.HostData(qpos=p.qpos, qvel=p.qvel,
                                                     qacc_warmstart=p.qacc_warmstart, **extra))


def _actions(env, seed=1, steps=STEPS):
  return jax.random.uniform(jax.random.PRNGKey(seed), (steps, BATCH, env.action_size),
                            minval=-1.5, maxval=1.5)


# --------------------------------------------------------------------------------------------
# Backend choice


def test_make_picks_the_backend(monkeypatch):
  cpu = jax.default_backend() == "cpu"
  assert envs.make("cheetah_vel").physics == ("c" if cpu else "mjx")
  assert envs.make("hopper_param", physics="mjx").physics == "mjx"
  assert envs.make("hopper_param", physics="c").physics == "c"
  envs.make("point_robot", physics="c")  # no physics engine: any backend is accepted
  with pytest.raises(ValueError, match="unknown physics backend 'cuda'"):
    envs.make("ant_dir", physics="cuda")
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")  # on an accelerator: MJX
  assert c_physics.resolve_physics("auto") == "mjx"
  assert envs.make("walker_param").physics == "mjx"


# --------------------------------------------------------------------------------------------
# C vs MJX


@pytest.mark.slow
@pytest.mark.parametrize("name,variant", [(n, "unicorn") for n in ENV_NAMES]
                         + [("ant_dir", "focal")])
def test_c_matches_mjx_over_50_steps(name, variant):
  env_m, reset_m, step_m = _env_fns(name, "mjx", variant)
  env_c, reset_c, step_c = _env_fns(name, "c", variant)
  tasks = _tasks(env_m)
  keys = jax.random.split(jax.random.PRNGKey(0), BATCH)
  actions = _actions(env_m)
  sm, sc = reset_m(keys, tasks), reset_c(keys, tasks)
  # same JAX reset (the ant's quaternion normalised by both kinematics, to float32 rounding)
  np.testing.assert_allclose(sc.physics.qpos, sm.physics.qpos, atol=1e-6)
  np.testing.assert_allclose(sc.obs, sm.obs, atol=1e-6)  # incl. the cheetah's torso position
  free = sc
  for t in range(STEPS):
    nm = step_m(sm, actions[t], tasks)
    nc = step_c(_to_host(env_c, sm), actions[t], tasks)
    msg = f"{name}/{variant} step {t}"
    np.testing.assert_allclose(nc.physics.qpos, nm.physics.qpos, atol=ATOL, err_msg=msg)
    np.testing.assert_allclose(nc.obs, nm.obs, atol=ATOL / env_m.dt, err_msg=msg)
    np.testing.assert_allclose(nc.reward, nm.reward, atol=ATOL / env_m.dt, err_msg=msg)
    np.testing.assert_array_equal(nc.done, nm.done, err_msg=msg)
    if t < FREE_STEPS:
      free = step_c(free, actions[t], tasks)
      np.testing.assert_allclose(free.physics.qpos, nm.physics.qpos, atol=ATOL, err_msg=msg)
    sm = nm
  if variant == "focal":  # the contact cost is live (cfrc_ext from mj_rnePostConstraint)
    assert float(np.max(nc.info["contact_cost"])) > 0


# --------------------------------------------------------------------------------------------
# Batching, per-task models, determinism


def _rollout(env, steps):
  def run(keys, tasks, actions):
    def body(s, a):
      s = env.step(s, a, tasks)
      return s, (s.obs, s.reward, s.done, s.physics.qpos)

    return jax.lax.scan(body, env.reset(keys, tasks), actions)[1]

  return run


@pytest.mark.parametrize("name", ["hopper_param", "walker_param"])
def test_mixed_param_batch_equals_per_task_loop(name):
  """One call steps 40 tasks with 40 models; each row equals its task alone, and (hopper) nested
  vmaps (tasks x episodes) equal the flat batch."""
  env = envs.make(name, physics="c", episode_length=1000)
  tasks = env.all_benchmark_tasks()  # 40 tasks
  n, steps = 40, 20
  keys = jax.random.split(jax.random.PRNGKey(3), n)
  actions = jax.random.uniform(jax.random.PRNGKey(4), (steps, n, env.action_size),
                               minval=-1.0, maxval=1.0)
  calls = []
  step = env.host.step
  env.host.step = lambda *a: calls.append(a[0].shape) or step(*a)
  run = _rollout(env, steps)
  flat = jax.jit(jax.vmap(run, in_axes=(0, 0, 1)))(keys, tasks, actions)  # [n, steps, ...]
  assert calls == [(n, env.mj_model.nq)] * steps  # one callback per step for the whole batch
  single = jax.jit(run)
  for i in (0, 17, 39):
    task = jax.tree.map(lambda x, i=i: x[i], tasks)
    obs, reward, _, qpos = single(keys[i], task, actions[:, i])
    np.testing.assert_array_equal(qpos, flat[3][i])  # host physics: bit for bit
    np.testing.assert_allclose(reward, flat[1][i], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(obs, flat[0][i], rtol=1e-6, atol=1e-6)
  final = np.asarray(flat[3][:, -1])
  assert len({tuple(np.round(q, 5)) for q in final}) == n  # 40 different dynamics
  if name == "hopper_param":  # nested vmap: [10 tasks, 4 episodes], same keys and actions
    nested = jax.jit(jax.vmap(jax.vmap(run, in_axes=(0, 0, 1)), in_axes=(0, 0, 1)))
    shape = lambda x: x.reshape((10, 4) + x.shape[1:])
    _, reward_n, _, qpos_n = nested(shape(keys), jax.tree.map(shape, tasks),
                                    actions.reshape(steps, 10, 4, -1))
    np.testing.assert_array_equal(qpos_n.reshape(flat[3].shape), flat[3])
    np.testing.assert_array_equal(reward_n.reshape(flat[1].shape), flat[1])


def test_same_key_same_trajectory_any_thread_count():
  """Deterministic: the same key gives the same trajectory, whatever the rollout threads."""
  env = envs.make("cheetah_vel", physics="c")
  fn = jax.jit(jax.vmap(_rollout(env, 30), in_axes=(0, 0, 1)))
  tasks, actions = _tasks(env), _actions(env, seed=6, steps=30)
  keys = jax.random.split(jax.random.PRNGKey(5), BATCH)
  trajs = []
  for threads in (1, 2, 2, 4):
    env.host.nthread = threads
    trajs.append(fn(keys, tasks, actions))
  for other in trajs[1:]:
    jax.tree.map(np.testing.assert_array_equal, trajs[0], other)
  again = fn(jax.random.split(jax.random.PRNGKey(7), BATCH), tasks, actions)
  assert not np.allclose(again[3], trajs[0][3])  # another key, another trajectory


def test_task_models_scale_only_the_task_arrays():
  env = envs.make("walker_param", variant="focal", physics="c")
  task = jax.tree.map(lambda x: x[3], env.all_benchmark_tasks())
  model = env.host.task_model(np.asarray(env.host_task_params(task)))
  base = env.host.model
  for p in env.rand_params:
    np.testing.assert_allclose(getattr(model, p),
                               getattr(base, p) * np.asarray(task[p], np.float64), rtol=1e-12)
    assert not np.array_equal(getattr(model, p), getattr(base, p))
  for derived in ("body_subtreemass", "dof_invweight0", "body_invweight0"):
    np.testing.assert_array_equal(getattr(model, derived), getattr(base, derived))


@pytest.mark.parametrize("name,variant", [("cheetah_vel", "unicorn"), ("ant_dir", "focal"),
                                          ("hopper_param", "unicorn"),
                                          ("walker_param", "unicorn")])
def test_batched_host_step_equals_mj_step_loop(name, variant):
  """The batched C step (``mujoco.batch.Batch``, per-env task arrays, the accelerometer model
  for ``cfrc_ext``) equals plain ``mj_step`` on one ``MjData`` per env, on the base model or
  the task's own ``MjModel`` (``HostStepper.task_model``), with ``mj_rnePostConstraint`` run
  by hand: bit for bit, over 25 chained steps of 12 envs with 12 different tasks."""
  env = envs.make(name, physics="c", variant=variant)
  host, m, n = env.host, env.mj_model, 12
  params = np.asarray(jax.vmap(env.host_task_params)(_tasks(env, range(n))))
  rng = np.random.default_rng(0)
  qpos = (m.qpos0 + rng.uniform(-0.1, 0.1, (n, m.nq))).astype(np.float32)
  qvel = rng.normal(0.0, 0.1, (n, m.nv)).astype(np.float32)
  warm = np.zeros((n, m.nv), np.float32)
  d = mujoco.MjData(m)
  contact = 0.0
  for _ in range(25):
    ctrl = rng.uniform(-1.0, 1.0, (n, m.nu)).astype(np.float32)
    out = host.step(qpos, qvel, warm, ctrl, params)
    assert set(out) == {"qpos", "qvel", "qacc_warmstart", *host.fields}
    for i in range(n):
      model = host.task_model(params[i]) if host.rand_params else m
      mujoco.mj_resetData(model, d)
      d.qpos, d.qvel, d.qacc_warmstart, d.ctrl = qpos[i], qvel[i], warm[i], ctrl[i]
      mujoco.mj_step(model, d, env.frame_skip)
      expect = {"qpos": d.qpos, "qvel": d.qvel, "qacc_warmstart": d.qacc_warmstart,
                "xpos": d.xpos}
      if "cfrc_ext" in host.fields:
        mujoco.mj_rnePostConstraint(model, d)
        expect["cfrc_ext"] = d.cfrc_ext
        contact = max(contact, float(np.abs(d.cfrc_ext).max()))
      for k in out:
        np.testing.assert_array_equal(out[k][i], expect[k].astype(np.float32), err_msg=k)
    qpos, qvel, warm = out["qpos"], out["qvel"], out["qacc_warmstart"]
  if "cfrc_ext" in host.fields:
    assert contact > 1.0  # the ant touched the floor: the contact forces were compared
  if host.rand_params:
    assert len({tuple(np.round(q, 4)) for q in qpos}) == n  # 12 different dynamics
  empty = host.step(*(x[:0] for x in (qpos, qvel, warm, ctrl, params)))  # an empty vmap
  assert {k: v.shape[0] for k, v in empty.items()} == {k: 0 for k in out}


def test_jax_step_packs_the_state_in_order():
  """``HostStepper.jax_step`` (the compiled side: packing into one callback array and unpacking
  its result) equals ``mj_step`` from a state whose qpos, qvel and warmstart all differ: a
  swapped or shifted field in the packing changes the step. Cheap (no MJX compile)."""
  env = envs.make("hopper_param", physics="c")
  host, m = env.host, env.mj_model
  task = jax.tree.map(lambda x: x[5], env.all_benchmark_tasks())
  params = np.asarray(env.host_task_params(task))
  rng = np.random.default_rng(1)
  qpos = (m.qpos0 + rng.uniform(-0.1, 0.1, m.nq)).astype(np.float32)
  qvel = rng.normal(0.0, 0.5, m.nv).astype(np.float32)
  warm = rng.normal(0.0, 5.0, m.nv).astype(np.float32)
  ctrl = rng.uniform(-1.0, 1.0, m.nu).astype(np.float32)
  state = c_physics.HostData(qpos=jnp.asarray(qpos), qvel=jnp.asarray(qvel),
                             qacc_warmstart=jnp.asarray(warm),
                             **{f: jnp.zeros(s, jnp.float32) for f, s in
                                (("xpos", (m.nbody, 3)), ("cfrc_ext", (m.nbody, 6)))
                                if f in host.fields})
  out = jax.jit(host.jax_step)(state, jnp.asarray(ctrl), jnp.asarray(params))
  model = host.task_model(params) if host.rand_params else m
  d = mujoco.MjData(model)
  d.qpos, d.qvel, d.qacc_warmstart, d.ctrl = qpos, qvel, warm, ctrl
  mujoco.mj_step(model, d, env.frame_skip)
  for k in ("qpos", "qvel", "qacc_warmstart"):
    np.testing.assert_array_equal(np.asarray(getattr(out, k)),
                                  getattr(d, k).astype(np.float32), err_msg=k)
  if "xpos" in host.fields:
    np.testing.assert_array_equal(np.asarray(out.xpos), d.xpos.astype(np.float32))


@pytest.mark.parametrize("name", ENV_NAMES)
def test_reward_formula_per_family_on_c_physics(name):
  """Fast tier: every family's reward from its formula, by hand from the qpos change, over 3
  C-physics steps of 4 benchmark tasks (the MJX version, with an MJX compile per family, is
  ``test_envs_mjx.test_reward_matches_formula_under_vmap``)."""
  env, reset, step = _env_fns(name, "c")
  tasks = _tasks(env)
  s = reset(jax.random.split(jax.random.PRNGKey(0), BATCH), tasks)
  for a in _actions(env, seed=2, steps=3):
    before = np.asarray(s.physics.qpos, np.float64)
    s = step(s, a, tasks)
    vel = (np.asarray(s.physics.qpos, np.float64) - before) / env.dt
    sq = np.sum(np.clip(np.asarray(a, np.float64), -1.0, 1.0) ** 2, axis=-1)
    if name == "cheetah_vel":
      want = -np.abs(vel[:, 0] - np.asarray(tasks["velocity"])) - 0.05 * sq
    elif name == "cheetah_dir":
      want = np.asarray(tasks["direction"]) * vel[:, 0] - 0.05 * sq
    elif name == "ant_dir":
      theta = np.asarray(tasks["angle"])
      want = vel[:, 0] * np.cos(theta) + vel[:, 1] * np.sin(theta)
    elif name == "hopper_param":
      want = vel[:, 0] - 1e-3 * sq
    else:
      want = vel[:, 0] + 1.0 - 1e-3 * sq
    np.testing.assert_allclose(np.asarray(s.reward), want, rtol=1e-4, atol=1e-4)
    assert np.abs(vel[:, 0]).max() > 1e-3  # the bodies move: the velocity term is exercised
