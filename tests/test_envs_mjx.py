"""Tests of the MuJoCo (MJX) task families: cheetah_vel, cheetah_dir, ant_dir, hopper_param,
walker_param.

Compile time is the constraint (one MJX rollout compiles in ~15-20 s of CPU), so every env is
compiled exactly once, as one jitted ``reset -> scan(vmap(step))`` rollout over a batch of 4
tasks, shared by all tests through ``_compiled`` (a module-level cache); a retrace counter checks
that nothing recompiles. Episodes are shortened to ``EPISODE`` steps and the rollout runs
``EPISODE + 2`` steps so time-limit semantics are visible. Tests compile with LLVM optimisation
level 0 (about a quarter less compile time; the programs are tiny at run time).
Extra compiles: the unbatched per-task loop (hopper) and the FOCAL ant variant.
"""

from __future__ import annotations

import copy
import functools
import subprocess
import sys
import time
import types

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcomrl import envs

mujoco = pytest.importorskip("mujoco")

ENV_NAMES = ["cheetah_vel", "cheetah_dir", "ant_dir", "hopper_param", "walker_param"]
EPISODE = 5
STEPS = EPISODE + 2
BATCH = 4
TASK_IDS = [0, 13, 26, 39]  # spans the sorted benchmark tables (both cheetah directions)
COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}
TRACES: dict[str, int] = {}
COMPILE_SECONDS: dict[str, float] = {}


def _view(s):
  return {"obs": s.obs, "reward": s.reward, "done": s.done, "truncation": s.truncation,
          "step_count": s.step_count, "info": s.info, "qpos": s.physics.qpos,
          "qvel": s.physics.qvel}


def _rollout_fn(env, label, batched=True):
  """``(keys, tasks, actions [T, (B,) A], qpos_delta) -> (start view, trajectory view)``.

  ``qpos_delta`` shifts the start configuration (test-only; lets one compiled function also
  start from hand-made states). The start view is taken before the shift.
  """
  vm = jax.vmap if batched else (lambda f: f)

  def rollout(keys, tasks, actions, qpos_delta):
    TRACES[label] = TRACES.get(label, 0) + 1

    def reset(key, task, dq):
      s = env.reset(key, task)
      return s, s.replace(physics=s.physics.replace(qpos=s.physics.qpos + dq))

    start, s = vm(reset)(keys, tasks, qpos_delta)

    def body(s, a):
      s = vm(env.step)(s, a, tasks)
      return s, _view(s)

    _, traj = jax.lax.scan(body, s, actions)
    return _view(start), traj

  return rollout


def _inputs(env, tasks, seed=0, same_start=False, batched=True):
  key_r, key_a = jax.random.split(jax.random.PRNGKey(seed))
  if not batched:
    actions = jax.random.uniform(key_a, (STEPS, env.action_size), minval=-1.5, maxval=1.5)
    return key_r, tasks, actions, jnp.zeros(env.mj_model.nq)
  keys = jax.random.split(key_r, BATCH)
  actions = jax.random.uniform(key_a, (STEPS, BATCH, env.action_size), minval=-1.5, maxval=1.5)
  if same_start:
    keys = jnp.broadcast_to(keys[:1], keys.shape)
    actions = jnp.broadcast_to(actions[:, :1], actions.shape)
  return keys, tasks, actions, jnp.zeros((BATCH, env.mj_model.nq))


def _benchmark_batch(env):
  return jax.tree.map(lambda x: x[jnp.asarray(TASK_IDS)], env.all_benchmark_tasks())


@functools.cache
def _compiled(name: str, variant: str | None = None, batched: bool = True):
  """``(env, compiled rollout)``; lower + compile time goes to ``COMPILE_SECONDS``."""
  kw = {"episode_length": EPISODE, "physics": "mjx"}  # these tests are about MJX itself
  if variant:
    kw["variant"] = variant
  env = envs.make(name, **kw)
  label = f"{name}{'/' + variant if variant else ''}{'' if batched else '/unbatched'}"
  if batched:
    tasks = _benchmark_batch(env) if variant is None else env.sample_tasks(
        jax.random.PRNGKey(0), BATCH)
  else:
    tasks = jax.tree.map(lambda x: x[0], env.all_benchmark_tasks())
  t0 = time.perf_counter()
  fn = jax.jit(_rollout_fn(env, label, batched)).lower(
      *_inputs(env, tasks, batched=batched)).compile(COMPILER_OPTIONS)
  COMPILE_SECONDS[label] = time.perf_counter() - t0
  return env, fn


@functools.cache
def _default_run(name: str):
  env, fn = _compiled(name)
  tasks = _benchmark_batch(env)
  args = _inputs(env, tasks)
  start, traj = fn(*args)
  return env, tasks, args[2], start, traj


# --------------------------------------------------------------------------------------------
# Cheap checks (no MJX compile)


def test_import_is_lazy():
  code = "import sys, jcomrl.envs as e; e.registered(); print('mujoco' in sys.modules)"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip().endswith("False")


@pytest.mark.parametrize("name", ENV_NAMES)
def test_benchmark_tasks_and_split(name):
  env = envs.make(name)
  assert name in envs.registered() and env.name == name
  tasks = env.all_benchmark_tasks()
  leaves = jax.tree.leaves(tasks)
  assert all(x.shape[0] == 40 and x.dtype == jnp.float32 for x in leaves)
  split = env.benchmark_split()
  assert split == {"train": list(range(0, 40, 2)), "test": list(range(1, 40, 2))}
  again = envs.make(name).all_benchmark_tasks()  # deterministic, from a fixed seed
  jax.tree.map(np.testing.assert_array_equal, tasks, again)
  vecs = jax.vmap(env.task_vector)(tasks)
  chex.assert_shape(vecs, (40, env.task_size))
  assert np.all(np.isfinite(vecs))
  assert len({tuple(np.round(v, 6)) for v in np.asarray(vecs)}) == (2 if name == "cheetah_dir"
                                                                      else 40)
  train, test = env.benchmark_tasks()
  assert jax.tree.leaves(train)[0].shape[0] == 20 == jax.tree.leaves(test)[0].shape[0]
  sampled = env.sample_tasks(jax.random.PRNGKey(3), 7)
  chex.assert_trees_all_equal_structs(sampled, tasks)
  assert all(x.shape[0] == 7 for x in jax.tree.leaves(sampled))


def test_task_ranges_variants_and_ood():
  vel = envs.make("cheetah_vel").all_benchmark_tasks()["velocity"]
  assert 0.0 <= vel.min() and vel.max() <= 3.0 and np.all(np.diff(vel) >= 0)
  ood = envs.make("cheetah_vel", velocity_range=(3.0, 4.0))
  assert np.all((ood.all_benchmark_tasks()["velocity"] >= 3.0)
                & (ood.all_benchmark_tasks()["velocity"] <= 4.0))
  s = ood.sample_tasks(jax.random.PRNGKey(0), 100)["velocity"]
  assert np.all((s >= 3.0) & (s <= 4.0))
  csro = envs.make("cheetah_vel", variant="csro")
  np.testing.assert_allclose(csro.all_benchmark_tasks()["velocity"], np.linspace(1, 3, 40),
                             rtol=1e-6)
  assert csro.benchmark_split()["test"] == list(range(2, 40, 4))
  focal = envs.make("cheetah_vel", variant="focal")
  assert focal.benchmark_split() == {"train": list(range(80)), "test": list(range(80, 100))}
  d = envs.make("cheetah_dir").all_benchmark_tasks()["direction"]
  train, test = envs.make("cheetah_dir").benchmark_tasks()
  assert float(train["direction"].sum()) == 0.0 == float(test["direction"].sum())  # 10 + 10
  assert set(np.asarray(d).tolist()) == {-1.0, 1.0}
  ant_focal = envs.make("ant_dir", variant="focal")
  np.testing.assert_allclose(ant_focal.all_benchmark_tasks()["angle"], [0.0, np.pi])
  assert ant_focal.benchmark_split() == {"train": [0, 1], "test": [0, 1]}
  theta = envs.make("ant_dir").all_benchmark_tasks()["angle"]
  assert 0.0 <= theta.min() and theta.max() < 2 * np.pi
  hop = envs.make("hopper_param")
  mult = hop.all_benchmark_tasks()
  assert set(mult) == {"body_mass", "body_inertia", "dof_damping", "geom_friction"}
  assert hop.task_size == 5 + 15 + 6 + 15
  u = jax.vmap(hop.task_vector)(mult)
  assert -3.0 - 1e-4 <= u.min() and u.max() <= 3.0 + 1e-4 and u.max() > 2.5
  assert set(envs.make("walker_param").all_benchmark_tasks()) == {"body_mass", "geom_friction"}
  assert set(envs.make("walker_param", variant="focal").all_benchmark_tasks()) == set(mult)
  wide = envs.make("hopper_param", log_scale_range=(3.0, 4.0)).sample_tasks(
      jax.random.PRNGKey(1), 3)
  assert float(jnp.min(wide["body_mass"])) >= 1.5 ** 3 * (1 - 1e-5)
  with pytest.raises(ValueError):
    envs.make("ant_dir", variant="nope")
  with pytest.raises(ValueError):
    envs.make("hopper_param", rand_params=("tendon_stiffness",))


@pytest.mark.parametrize("name", ["hopper_param", "walker_param"])
def test_nominal_task_is_exactly_the_base_model(name):
  env = envs.make(name)
  base_leaves = jax.tree.leaves(env.sys)
  nominal_leaves = jax.tree.leaves(env.task_model(env.nominal_task()))
  assert len(base_leaves) == len(nominal_leaves)
  for a, b in zip(base_leaves, nominal_leaves):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  task = jax.tree.map(lambda x: x[1], env.all_benchmark_tasks())
  scaled = env.task_model(task)
  for p in env.rand_params:
    np.testing.assert_array_equal(getattr(scaled, p), getattr(env.sys, p) * task[p])
    assert not np.array_equal(getattr(scaled, p), getattr(env.sys, p))


def test_focal_planar_obs_and_termination_rules():
  hop = envs.make("hopper_param", variant="focal")
  assert hop.observation_size == 11 and hop.alive_bonus == 1.0
  qpos = jnp.array([3.0, 1.2, 0.1, 0.0, 0.0, 0.0])
  qvel = jnp.array([20.0, -30.0, 1.0, 2.0, 3.0, 4.0])
  obs = hop._obs(types.SimpleNamespace(qpos=qpos, qvel=qvel))
  np.testing.assert_allclose(obs, [1.2, 0.1, 0, 0, 0, 10, -10, 1, 2, 3, 4])
  assert not hop._terminal(qpos, qvel)
  assert hop._terminal(qpos.at[1].set(0.69), qvel)
  assert hop._terminal(qpos.at[2].set(0.25), qvel)
  assert hop._terminal(qpos, qvel.at[3].set(150.0))
  assert hop._terminal(qpos, qvel.at[0].set(jnp.nan))
  assert not envs.make("hopper_param")._terminal(qpos.at[1].set(0.1), qvel)
  walk = envs.make("walker_param", variant="focal")
  assert walk.observation_size == 17
  q = jnp.zeros(9).at[1].set(1.2)
  assert not walk._terminal(q, None)
  for bad in (q.at[1].set(0.79), q.at[1].set(2.01), q.at[2].set(1.01), q.at[2].set(-1.01)):
    assert walk._terminal(bad, None)
  walk_u = envs.make("walker_param")
  assert not walk_u._terminal(q.at[1].set(0.7), None) and walk_u._terminal(q.at[1].set(0.5), None)


# --------------------------------------------------------------------------------------------
# Rollout checks (one compile per env, shared)


@pytest.mark.parametrize("name", ENV_NAMES)
def test_shapes(name):
  env, _, _, start, traj = _default_run(name)
  obs_size = env.observation_size
  chex.assert_shape(start["obs"], (BATCH, obs_size))
  chex.assert_shape(traj["obs"], (STEPS, BATCH, obs_size))
  chex.assert_shape([traj["reward"], traj["done"], traj["truncation"], traj["step_count"]],
                    (STEPS, BATCH))
  chex.assert_type([traj["reward"], traj["done"], traj["truncation"]], jnp.float32)
  chex.assert_type(traj["step_count"], jnp.int32)
  chex.assert_shape(traj["qpos"], (STEPS, BATCH, env.mj_model.nq))
  assert set(traj["info"]) == set(start["info"]) == set(env.info_keys)
  assert "x_velocity" in traj["info"]
  chex.assert_tree_all_finite((start, traj))
  np.testing.assert_array_equal(start["reward"], 0.0)
  np.testing.assert_array_equal(start["done"], 0.0)
  assert np.std(np.asarray(start["qpos"]), axis=0).max() > 0  # keys randomise the start


@pytest.mark.slow
@pytest.mark.parametrize("name", ENV_NAMES)
def test_reward_matches_formula_under_vmap(name):
  env, tasks, actions, start, traj = _default_run(name)
  qpos = np.concatenate([np.asarray(start["qpos"])[None], np.asarray(traj["qpos"])])
  a = np.clip(np.asarray(actions), -1.0, 1.0)
  sq = np.sum(a ** 2, axis=-1)
  vel = (qpos[1:] - qpos[:-1]) / env.dt
  reward = np.asarray(traj["reward"])
  np.testing.assert_allclose(traj["info"]["x_velocity"], vel[..., 0], rtol=1e-4, atol=1e-4)

  def expected(task):
    if name == "cheetah_vel":
      return -np.abs(vel[..., 0] - np.asarray(task["velocity"])) - 0.05 * sq
    if name == "cheetah_dir":
      return np.asarray(task["direction"]) * vel[..., 0] - 0.05 * sq
    if name == "ant_dir":
      theta = np.asarray(task["angle"])
      return vel[..., 0] * np.cos(theta) + vel[..., 1] * np.sin(theta)
    if name == "hopper_param":
      return vel[..., 0] - 1e-3 * sq
    return vel[..., 0] + 1.0 - 1e-3 * sq

  np.testing.assert_allclose(reward, expected(tasks), rtol=1e-4, atol=1e-4)
  if name in ("cheetah_vel", "cheetah_dir", "ant_dir"):  # each row is rewarded by its own task
    rolled = jax.tree.map(lambda x: np.roll(np.asarray(x), 1), tasks)
    assert not np.allclose(reward, expected(rolled), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("name", ENV_NAMES)
def test_observation_definition(name):
  _, _, _, start, traj = _default_run(name)
  obs, qpos, qvel = (np.asarray(traj[k]) for k in ("obs", "qpos", "qvel"))
  if name.startswith("cheetah"):
    np.testing.assert_array_equal(obs[..., :8], qpos[..., 1:])
    np.testing.assert_array_equal(obs[..., 8:17], qvel)
    s_qpos = np.asarray(start["qpos"])
    torso0 = np.stack([s_qpos[:, 0], np.zeros(BATCH), 0.7 + s_qpos[:, 1]], -1)
    np.testing.assert_allclose(start["obs"][:, 17:], torso0, atol=1e-6)
    np.testing.assert_allclose(obs[..., 17], qpos[..., 0], atol=0.1)  # one substep behind
  elif name == "ant_dir":
    np.testing.assert_array_equal(obs, np.concatenate([qpos[..., 2:], qvel], -1))
  else:  # unicorn lineage: full qpos (x and the torso height qpos[1]) and unclipped qvel
    np.testing.assert_array_equal(obs, np.concatenate([qpos, qvel], -1))
    np.testing.assert_allclose(start["qpos"][:, 1], 1.25, atol=0.0051)


@pytest.mark.parametrize("name", ENV_NAMES)
def test_time_limit_semantics(name):
  _, _, _, _, traj = _default_run(name)
  steps = np.arange(1, STEPS + 1)[:, None]
  np.testing.assert_array_equal(traj["step_count"], np.broadcast_to(steps, (STEPS, BATCH)))
  done, trunc = np.asarray(traj["done"]), np.asarray(traj["truncation"])
  terminal = done * (1 - trunc)
  if name == "walker_param":
    np.testing.assert_array_equal(terminal, (np.asarray(traj["qpos"])[..., 1] <= 0.5))
  else:
    np.testing.assert_array_equal(terminal, 0.0)
  at_limit = steps >= EPISODE
  np.testing.assert_array_equal(done, np.where(at_limit, 1.0, terminal))
  np.testing.assert_array_equal(trunc, np.where(at_limit, 1.0 - terminal, 0.0))
  assert done[EPISODE - 1].all() and not done[: EPISODE - 1].any()


@pytest.mark.slow
@pytest.mark.parametrize("name", ENV_NAMES)
def test_mjx_matches_mujoco_c(name):
  """The MJX step (frame skip, controls, per-task arrays) against C MuJoCo in float64."""
  env, tasks, actions, start, traj = _default_run(name)
  for b in range(BATCH):
    model = copy.deepcopy(env.mj_model)
    for p in getattr(env, "rand_params", ()):
      getattr(model, p)[...] = getattr(model, p) * np.asarray(tasks[p][b], np.float64)
    data = mujoco.MjData(model)
    data.qpos[:] = np.asarray(start["qpos"][b], np.float64)
    data.qvel[:] = np.asarray(start["qvel"][b], np.float64)
    for t in range(STEPS):
      data.ctrl[:] = np.clip(np.asarray(actions[t, b], np.float64), -1, 1)
      for _ in range(env.frame_skip):
        mujoco.mj_step(model, data)
      np.testing.assert_allclose(traj["qpos"][t, b], data.qpos, atol=2e-4, err_msg=f"{b} {t}")


@pytest.mark.parametrize("name", ["hopper_param", "walker_param"])
def test_param_tasks_change_dynamics(name):
  env, fn = _compiled(name)
  tasks = jax.tree.map(lambda x: x[jnp.asarray(TASK_IDS)], env.all_benchmark_tasks())
  tasks = jax.tree.map(lambda n, t: t.at[0].set(n), env.nominal_task(), tasks)
  start, traj = fn(*_inputs(env, tasks, seed=5, same_start=True))
  np.testing.assert_array_equal(start["qpos"], np.broadcast_to(start["qpos"][:1],
                                                               (BATCH, env.mj_model.nq)))
  final = np.asarray(traj["qpos"][-1])
  for i in range(BATCH):
    for j in range(i + 1, BATCH):
      assert np.abs(final[i] - final[j]).max() > 1e-3, (i, j)
  # identical tasks give identical rows (no cross-talk between batch elements)
  same = jax.tree.map(lambda x: jnp.broadcast_to(x[1:2], x.shape), tasks)
  _, traj_same = fn(*_inputs(env, same, seed=5, same_start=True))
  np.testing.assert_array_equal(traj_same["qpos"][:, 0], traj["qpos"][:, 1])


def test_vmap_over_tasks_equals_per_task_loop():
  env, batched = _compiled("hopper_param")
  _, single = _compiled("hopper_param", batched=False)
  tasks = _benchmark_batch(env)
  keys, _, actions, dq = _inputs(env, tasks, seed=2)
  start_b, traj_b = batched(keys, tasks, actions, dq)
  for b in range(BATCH):
    task = jax.tree.map(lambda x, b=b: x[b], tasks)
    start_s, traj_s = single(keys[b], task, actions[:, b], dq[b])
    row_traj = jax.tree.map(lambda x, b=b: x[:, b], traj_b)
    row_start = jax.tree.map(lambda x, b=b: x[b], start_b)
    chex.assert_trees_all_close(row_traj, traj_s, atol=1e-5, rtol=1e-5)
    chex.assert_trees_all_close(row_start, start_s, atol=1e-6)


def test_walker_termination_sets_done_without_truncation():
  env, fn = _compiled("walker_param")
  keys, tasks, actions, dq = _inputs(env, _benchmark_batch(env), seed=3)
  # rows 0 and 2 start lying flat (torso pitched 90 degrees, torso height 0.3)
  lying = np.zeros(env.mj_model.nq, np.float32)
  lying[1], lying[2] = 0.3 - 1.25, np.pi / 2
  dq = dq.at[0].set(lying).at[2].set(lying)
  _, traj = fn(keys, tasks, actions, dq)
  done, trunc = np.asarray(traj["done"]), np.asarray(traj["truncation"])
  np.testing.assert_array_equal(done[0], [1, 0, 1, 0])
  np.testing.assert_array_equal(trunc[0], 0.0)
  assert traj["qpos"][0, 0, 1] <= 0.5
  # the final observation is the real one (no auto-reset): still lying down
  assert traj["obs"][0, 0, 1] <= 0.5 and traj["qpos"][1, 0, 1] <= 0.5
  np.testing.assert_array_equal(done[1:, 0], 1.0)  # stays done while lying; callers reset


def test_ant_focal_variant_reward_and_termination():
  env, fn = _compiled("ant_dir", variant="focal")
  tasks = {"angle": jnp.array([0.0, np.pi, 0.0, np.pi], jnp.float32)}
  keys, _, actions, dq = _inputs(env, tasks, seed=4)
  dq = dq.at[3, 2].set(0.5)  # row 3 starts with the torso at ~1.25 m: above the healthy range
  start, traj = fn(keys, tasks, actions, dq)
  qpos = np.concatenate([np.asarray(start["qpos"])[None], np.asarray(traj["qpos"])])
  qpos[0, 3, 2] += 0.5
  vel = (qpos[1:, :, :2] - qpos[:-1, :, :2]) / env.dt
  a = np.clip(np.asarray(actions), -1, 1)
  info = traj["info"]
  contact = np.asarray(info["contact_cost"])
  assert contact.min() >= 0 and contact.max() > 0  # the feet touch the floor
  assert contact.max() <= 0.5e-3 * 6 * env.mj_model.nbody
  expected = (vel[..., 0] * np.cos(tasks["angle"]) + vel[..., 1] * np.sin(tasks["angle"])
              - 0.5 * np.sum(a ** 2, -1) - contact + 1.0)
  np.testing.assert_allclose(traj["reward"], expected, rtol=1e-4, atol=1e-4)
  height = qpos[1:, :, 2]
  terminal = np.asarray(traj["done"] * (1 - traj["truncation"]))
  np.testing.assert_array_equal(terminal, ((height < 0.2) | (height > 1.0)).astype(np.float32))
  assert terminal[0, 3] == 1.0 and terminal[0, :3].sum() == 0


def test_each_rollout_compiled_once(capsys):
  """Whatever ran before (in any order, in this worker or none): the first env's rollout is
  compiled here if no test did, and a compiled rollout is reused, never traced again."""
  env, fn = _compiled(ENV_NAMES[0])
  assert _compiled(ENV_NAMES[0])[1] is fn
  fn(*_inputs(env, _benchmark_batch(env)))
  assert TRACES and all(n == 1 for n in TRACES.values()), TRACES
  with capsys.disabled():
    print("\nMJX rollout lower+compile seconds (opt level 0): "
          + ", ".join(f"{k} {v:.1f}" for k, v in sorted(COMPILE_SECONDS.items())))
