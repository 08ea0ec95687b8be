"""Shared MuJoCo machinery for the locomotion task families.

Every MuJoCo env in jcomrl is a :class:`MjxTaskEnv`: the MJCF model (brax's MJX-ready assets in
``brax/envs/assets``) is compiled once with the C MuJoCo library and stepped ``frame_skip`` times
per env step (``dt = timestep * frame_skip``) by one of two physics backends (``physics=``):
``"mjx"`` moves it to JAX with ``mjx.put_model`` and steps ``mjx.step`` inside the compiled
program (the physics state is the full ``mjx.Data``); ``"c"`` steps C MuJoCo through one batched
host callback (:mod:`jcomrl.envs.c_physics`; the state holds only what the family reads);
``"auto"`` is ``"c"`` on a CPU, ``"mjx"`` on an accelerator. Observation, reward, termination,
tasks and reset are the same JAX code under both. Nothing auto-resets.

Per-task physics (hopper / walker parameter tasks) never lives in the env object. A task is a
pytree of per-element multipliers and :meth:`RandParamEnv.task_model` builds the task's
``mjx.Model`` *inside the traced step* by scaling the base model's arrays, e.g.
``sys.replace(body_mass=sys.body_mass * task["body_mass"])``, so ``vmap(step)`` over a batch of
tasks simulates a different MDP per batch element in one call (under ``"c"`` the host builds and
caches one ``MjModel`` per distinct task by the same rule). Multipliers of exactly 1.0 give
the base model's arrays bit for bit. As in ``rand_param_envs`` (which overwrote the arrays of a
compiled MuJoCo 1.31 model), only the scaled arrays change: derived constants that MuJoCo computes
at compile time (``body_subtreemass``, ``*_invweight0`` used for constraint regularisation,
``stat.meaninertia``) keep their base-model values.

Benchmark task tables are drawn with NumPy's frozen legacy ``RandomState(task_seed)`` stream, so
they are identical across JAX versions and machines; ``sample_tasks`` uses ``jax.random``.

Benchmark splits (:func:`make_split`):
  * ``"interleaved"`` (UNICORN lineage default, 20/20 of 40): tasks are stored sorted by their
    scalar parameter where they have one (velocity, direction, angle); train = even ids, test =
    odd ids, so the test tasks interleave the train tasks over the whole range.
  * ``"first_last"`` (FOCAL): the first ``num_tasks - num_test`` ids train, the last test.
  * ``"evenly_spaced"`` (CSRO): :func:`jcomrl.envs.base.evenly_spaced_split`.
  * ``"same"`` (2-task direction envs of the FOCAL lineage): train = test = all ids.
  * ``"held_out_combinations"`` (the multi-confounder grid, :data:`MULTI_CONFOUNDER`): tasks
    are the ``L x L`` combinations of two parameter groups' levels, id ``i * L + j`` for level
    ``i`` of the first group and ``j`` of the second; the ``L`` test tasks are the
    combinations ``(i, (i + 2) mod L)``: one per row and per column of the grid, so each is a
    combination never trained on whose two levels each appear in ``L - 1`` training tasks.
"""

from __future__ import annotations

import abc

import contextlib
import functools
import importlib.util
import io
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

with contextlib.redirect_stdout(io.StringIO()):  # mjx prints a notice when warp is absent
  from mujoco import mjx

from jcomrl.envs import c_physics
from jcomrl.envs.base import EnvState, TaskEnv, evenly_spaced_split

__all__ = ["CONFOUNDER_LEVELS", "MULTI_CONFOUNDER", "PARAM_LOG_BASES", "MjxTaskEnv",
           "PlanarParamEnv", "RandParamEnv", "asset_path", "held_out_combinations",
           "load_mj_model", "make_split", "mjx", "resolve_variant"]


# ---------------------------------------------------------------------------------------------
# Model loading


def asset_path(name: str) -> str:
  """Path of ``brax/envs/assets/<name>.xml`` (found without importing brax)."""
  spec = importlib.util.find_spec("brax")
  if spec is None or not spec.submodule_search_locations:
    raise ImportError("the MuJoCo envs need the 'brax' package for their MJCF assets")
  path = os.path.join(next(iter(spec.submodule_search_locations)), "envs", "assets", f"{name}.xml")
  if not os.path.exists(path):
    raise FileNotFoundError(f"no MJCF asset {name!r} at {path}")
  return path


@contextlib.contextmanager
def _quiet_mujoco_warnings(sink: list):
  """Routes MuJoCo's C warnings (which otherwise write MUJOCO_LOG.TXT into the cwd) to ``sink``."""
  previous = mujoco.get_mju_user_warning()
  mujoco.set_mju_user_warning(sink.append)
  try:
    yield
  finally:
    mujoco.set_mju_user_warning(previous)


RNE_POST_SENSOR = "jcomrl_rne_post_constraint"


@functools.cache
def load_mj_model(asset: str, edits: tuple = (), rne_post_constraint: bool = False
                  ) -> mujoco.MjModel:
  """Compiles a brax MJCF asset, optionally edited, into a (shared, treat as read-only) MjModel.

  Args:
    asset: asset name, e.g. ``"hopper"``.
    edits: ``((kind, element_name, attribute, value), ...)`` applied through ``mujoco.MjSpec``
      before compiling, e.g. ``(("joint", "rootz", "ref", 1.25),)``.
    rne_post_constraint: add a world site with an accelerometer (named
      :data:`RNE_POST_SENSOR`), so that ``mj_step`` computes ``cfrc_ext``
      (``mj_rnePostConstraint``) for the C stepper; sensors only read the state, the dynamics
      stay the same.
  """
  warnings: list = []  # brax's cheetah uses the deprecated (still working) settotalmass
  with _quiet_mujoco_warnings(warnings):
    if not edits and not rne_post_constraint:
      return mujoco.MjModel.from_xml_path(asset_path(asset))
    spec = mujoco.MjSpec.from_file(asset_path(asset))
    for kind, name, attribute, value in edits:
      element = getattr(spec, kind)(name)
      if element is None:
        raise ValueError(f"asset {asset!r} has no {kind} named {name!r}")
      setattr(element, attribute, value)
    if rne_post_constraint:
      spec.worldbody.add_site(name=RNE_POST_SENSOR)
      spec.add_sensor(name=RNE_POST_SENSOR, type=mujoco.mjtSensor.mjSENS_ACCELEROMETER,
                      objtype=mujoco.mjtObj.mjOBJ_SITE, objname=RNE_POST_SENSOR)
    return spec.compile()


# ---------------------------------------------------------------------------------------------
# Task tables and splits


HELD_OUT_SHIFT = 2


def held_out_combinations(num_levels: int) -> dict[str, list[int]]:
  """The ``"held_out_combinations"`` split of an ``L x L`` grid (module docstring): test ids
  ``i * L + (i + 2) mod L``, the rest train."""
  if num_levels <= HELD_OUT_SHIFT:
    raise ValueError(f"a held-out-combinations grid needs more than {HELD_OUT_SHIFT} levels per "
                     f"group, got {num_levels}")
  test = [i * num_levels + (i + HELD_OUT_SHIFT) % num_levels for i in range(num_levels)]
  return {"train": [t for t in range(num_levels ** 2) if t not in set(test)], "test": test}


def make_split(kind: str, num_tasks: int, num_test: int) -> dict[str, list[int]]:
  """Deterministic ``{"train", "test"}`` id lists; see the module docstring for the kinds."""
  if kind == "interleaved":
    if num_test != num_tasks // 2:
      raise ValueError(f"the interleaved split holds out every other task: num_test must be "
                       f"{num_tasks // 2} for {num_tasks} tasks, got {num_test}")
    return {"train": list(range(0, num_tasks, 2)), "test": list(range(1, num_tasks, 2))}
  if kind == "first_last":
    if not 0 < num_test < num_tasks:
      raise ValueError(f"need 0 < num_test < num_tasks, got {num_test} of {num_tasks}")
    return {"train": list(range(num_tasks - num_test)),
            "test": list(range(num_tasks - num_test, num_tasks))}
  if kind == "evenly_spaced":
    return evenly_spaced_split(num_tasks, num_test)
  if kind == "same":
    return {"train": list(range(num_tasks)), "test": list(range(num_tasks))}
  if kind == "held_out_combinations":
    if num_tasks != num_test ** 2:
      raise ValueError(f"the held-out-combinations split holds out one task per level of an "
                       f"L x L grid: num_tasks must be num_test^2 = {num_test ** 2}, got "
                       f"{num_tasks}")
    return held_out_combinations(num_test)
  raise ValueError(f"unknown split kind {kind!r}")


# rand_param_envs' four randomised quantities, and the FOCAL / CSRO lineage variants that the
# hopper and walker families share (same ranges, splits, seeds, observation clipping and
# termination; FOCAL / CSRO ``rlkit/envs/*`` and dennisl88/rand_param_envs ``base.py``
# ``RandomEnv.sample_tasks``).
ALL_RAND_PARAMS = ("body_mass", "body_inertia", "dof_damping", "geom_friction")
RAND_PARAM_LINEAGE_VARIANTS: dict[str, dict] = {
    "focal": {
        "rand_params": ALL_RAND_PARAMS, "log_scale_range": (-3.0, 3.0), "num_tasks": 50,
        "num_test_tasks": 10, "split": "first_last", "task_seed": 1337, "obs_mode": "clipped",
        "alive_bonus": 1.0, "termination": "rand_param", "levels": None,
    },
    "csro": {
        "rand_params": ALL_RAND_PARAMS, "log_scale_range": (-3.0, 3.0), "num_tasks": 40,
        "num_test_tasks": 10, "split": "evenly_spaced", "task_seed": 1234,
        "obs_mode": "clipped", "alive_bonus": 1.0, "termination": "rand_param", "levels": None,
    },
}

# The multi-confounder tasks (variant "multi" of hopper_param / walker_param, for DOMINO, Mu et
# al. 2022): two parameter groups, body mass and joint damping, each scaled as a whole array
# by one level of {0.5, 0.75, 1, 1.25, 1.5}, on the full 5 x 5 grid of combinations, so the two
# confounders vary independently across the tasks; the split holds out 5 combinations
# (``"held_out_combinations"``). Groups and levels are DOMINO's hopper setting
# (YaoMarkMu/DOMINO_MB-MetaRL 1618435 domino/envs/config.py:108-110: mass and damping scale
# sets; hopper_env.py:95-102 scales model.body_mass and model.dof_damping as whole arrays),
# there drawn independently per episode (hopper_env.py:67-73) and tested on out-of-range corners
# (config.py:112-117); here fixed tasks with held-out combinations inside the trained range.
# Mass and damping both change the transition dynamics (not the reward function), through
# different terms of the equations of motion (inertia vs. velocity-proportional joint torque):
# two confounders a context must tell apart. Walker (DOMINO has none) takes the same groups and
# levels. The other settings are the env's "unicorn" variant (the suite's).
CONFOUNDER_LEVELS = (0.5, 0.75, 1.0, 1.25, 1.5)
MULTI_CONFOUNDER = {
    "rand_params": ("body_mass", "dof_damping"), "levels": CONFOUNDER_LEVELS,
    "num_tasks": len(CONFOUNDER_LEVELS) ** 2, "num_test_tasks": len(CONFOUNDER_LEVELS),
    "split": "held_out_combinations",
}


def resolve_variant(variants: dict[str, dict], variant: str, **given) -> dict[str, Any]:
  """Fills the ``None`` entries of ``given`` from the named variant's defaults."""
  if variant not in variants:
    raise ValueError(f"unknown variant {variant!r}; choose from {sorted(variants)}")
  out = dict(variants[variant])
  unknown = set(given) - set(out)
  if unknown:
    raise TypeError(f"unexpected overrides {sorted(unknown)}")
  out.update({k: v for k, v in given.items() if v is not None})
  return out


# ---------------------------------------------------------------------------------------------
# The MJX env base class


class MjxTaskEnv(TaskEnv):
  """Base of the MuJoCo envs: reset noise, frame-skipped physics step, time limit, EnvState.

  Subclasses define ``_obs(data)`` and ``_reward(data_before, data_after, action, task)`` (which
  returns ``(reward, terminal, info)``), the task methods of :class:`TaskEnv`, and ``info_keys``.
  ``reset`` draws ``qpos = qpos0 + U(-s, s)`` and ``qvel = s * N(0, 1)`` (``qvel_noise="normal"``,
  cheetah/ant) or ``qvel = U(-s, s)`` (``"uniform"``, hopper/walker), s = ``reset_noise_scale``,
  and runs kinematics so body positions in the first observation are current.

  ``physics`` picks the backend of the frame-skipped physics step (everything else is the same
  JAX code under both): ``"mjx"`` steps ``mjx.step`` inside the compiled program and the state is
  the full ``mjx.Data``; ``"c"`` steps C MuJoCo through one ``jax.pure_callback`` per batch
  (:mod:`jcomrl.envs.c_physics`) and the state is a :class:`~jcomrl.envs.c_physics.HostData`
  holding ``qpos``, ``qvel`` and the ``host_fields`` the family reads; ``"auto"`` is ``"c"`` when
  JAX's default backend is the CPU, else ``"mjx"``. ``c_threads``: threads of the C stepper
  (None: every CPU this process may use).
  """

  info_keys: tuple[str, ...] = ()
  # Extra physics fields _obs / _reward read beyond qpos and qvel (c_physics.HOST_FIELDS).
  host_fields: tuple[str, ...] = ()

  def __init__(self, *, asset: str, frame_skip: int, episode_length: int,
               reset_noise_scale: float, qvel_noise: str, edits: tuple = (),
               physics: str = "auto", c_threads: int | None = None):
    if episode_length < 1:
      raise ValueError(f"episode_length must be >= 1, got {episode_length}")
    if frame_skip < 1:
      raise ValueError(f"frame_skip must be >= 1, got {frame_skip}")
    if qvel_noise not in ("normal", "uniform"):
      raise ValueError(f"qvel_noise must be 'normal' or 'uniform', got {qvel_noise!r}")
    self.physics = c_physics.resolve_physics(physics)
    self.asset, self.edits = asset, tuple(edits)
    self.mj_model = load_mj_model(asset, self.edits)
    self.sys = mjx.put_model(self.mj_model)  # eager: built under a trace it would leak tracers
    self.frame_skip = int(frame_skip)
    self._episode_length = int(episode_length)
    self.reset_noise_scale = float(reset_noise_scale)
    self.qvel_noise = qvel_noise
    self.c_threads = c_threads
    self._qpos0 = np.asarray(self.mj_model.qpos0, np.float32)

  @functools.cached_property
  def host(self) -> c_physics.HostStepper:
    """The C-MuJoCo stepper of ``physics="c"`` (built on first use)."""
    fields = tuple(self.host_fields)
    step_model = (load_mj_model(self.asset, self.edits, rne_post_constraint=True)
                  if "cfrc_ext" in fields else None)
    return c_physics.HostStepper(self.mj_model, self.frame_skip,
                                 getattr(self, "rand_params", ()), fields,
                                 nthread=self.c_threads, step_model=step_model)

  # --- sizes
  episode_length = property(lambda self: self._episode_length)
  action_size = property(lambda self: int(self.mj_model.nu))

  @property
  def dt(self) -> float:
    """Seconds of simulated time per env step (``timestep * frame_skip``)."""
    return float(self.mj_model.opt.timestep) * self.frame_skip

  def body_id(self, name: str) -> int:
    i = mujoco.mj_name2id(self.mj_model, mujoco.mjtObj.mjOBJ_BODY, name)
    if i < 0:
      raise ValueError(f"no body named {name!r}")
    return int(i)

  # --- physics
  def task_model(self, task) -> mjx.Model:
    """The task's ``mjx.Model`` (the base model unless the task changes physics)."""
    del task
    return self.sys

  def host_task_params(self, task) -> jax.Array:
    """The task's physics multipliers, flat, for the C stepper (empty: no per-task physics)."""
    del task
    return jnp.zeros((0,), jnp.float32)

  def init_data(self, qpos: jax.Array, qvel: jax.Array):
    """Physics state at ``(qpos, qvel)`` with kinematics (body poses) computed."""
    if self.physics == "c":
      return self.host.jax_init(qpos, qvel)
    data = mjx.make_data(self.sys).replace(qpos=qpos, qvel=qvel)
    return mjx.kinematics(self.sys, data)

  def physics_step(self, data, action: jax.Array, task):
    """Holds ``ctrl = action`` for ``frame_skip`` physics steps of the task's model.

    ``"mjx"``: a scan of ``mjx.step``. ``"c"``: one ``pure_callback`` into C MuJoCo for the
    whole vmapped batch (:meth:`jcomrl.envs.c_physics.HostStepper.jax_step`).
    """
    if self.physics == "c":
      return self.host.jax_step(data, action, self.host_task_params(task))
    model = self.task_model(task)
    data = data.replace(ctrl=action)

    def substep(d, _):
      return mjx.step(model, d), None

    data, _ = jax.lax.scan(substep, data, None, length=self.frame_skip)
    return data

  def contact_forces(self, data, task) -> jax.Array:
    """``cfrc_ext [nbody, 6]`` of the last substep (``"c"``: needs ``"cfrc_ext"`` in
    ``host_fields``)."""
    if self.physics == "c":
      return data.cfrc_ext
    return mjx.rne_postconstraint(self.task_model(task), data)._impl.cfrc_ext

  # --- TaskEnv
  def reset(self, key, task) -> EnvState:
    del task  # the start-state distribution does not depend on the task
    k_pos, k_vel = jax.random.split(key)
    s = self.reset_noise_scale
    nq, nv = self.mj_model.nq, self.mj_model.nv
    qpos = jnp.asarray(self._qpos0) + jax.random.uniform(k_pos, (nq,), minval=-s, maxval=s)
    if self.qvel_noise == "normal":
      qvel = s * jax.random.normal(k_vel, (nv,))
    else:
      qvel = jax.random.uniform(k_vel, (nv,), minval=-s, maxval=s)
    data = self.init_data(qpos, qvel)
    zero = jnp.zeros((), jnp.float32)
    return EnvState(physics=data, obs=self._obs(data), reward=zero, done=zero, truncation=zero,
                    step_count=jnp.zeros((), jnp.int32),
                    info={k: zero for k in self.info_keys})

  def step(self, state: EnvState, action, task) -> EnvState:
    action = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
    before = state.physics
    after = self.physics_step(before, action, task)
    reward, terminal, info = self._reward(before, after, action, task)
    step_count = state.step_count + 1
    done, truncation = self._time_limit(step_count, terminal)
    info = {k: jnp.asarray(info[k], jnp.float32) for k in self.info_keys}
    return state.replace(physics=after, obs=self._obs(after),
                         reward=jnp.asarray(reward, jnp.float32), done=done,
                         truncation=truncation, step_count=step_count, info=info)

  @abc.abstractmethod
  def _obs(self, data: mjx.Data) -> jax.Array:
    """The observation of one env state (each family defines it)."""

  @abc.abstractmethod
  def _reward(self, before: mjx.Data, after: mjx.Data, action, task):
    """``(reward, info)`` of one transition (each family defines it)."""


# ---------------------------------------------------------------------------------------------
# rand_param_envs-style physics-parameter tasks

# Multiplier = base ** U(lo, hi) per array element (rand_param_envs, log_scale_limit 3).
PARAM_LOG_BASES = {"body_mass": 1.5, "body_inertia": 1.5, "dof_damping": 1.3,
                   "geom_friction": 1.5}


class RandParamEnv(MjxTaskEnv):
  """Tasks are per-element multipliers of ``rand_params`` arrays of the MJX model.

  Task pytree: ``{name: multipliers}`` for each randomised ``name`` in ``rand_params``, with the
  shape of the model array (``body_mass [nbody]``, ``body_inertia [nbody, 3]``,
  ``dof_damping [nv]``, ``geom_friction [ngeom, 3]``; the world body and floor are included, as
  in rand_param_envs). Multiplier = ``base ** u`` with ``u ~ U(log_scale_range)`` per element
  and ``base`` from :data:`PARAM_LOG_BASES`. ``task_vector`` is the concatenated exponents
  ``u = log(multiplier) / log(base)`` in the fixed order of ``PARAM_LOG_BASES``.
  Benchmark tasks: ``RandomState(task_seed)``, one task after another, groups in that order.

  With ``levels`` (the multi-confounder grid, :data:`MULTI_CONFOUNDER`) each of the two groups
  is scaled as a whole by one of ``levels``: the benchmark tasks are every combination (id
  ``i * L + j``: level ``i`` of the first group in ``PARAM_LOG_BASES`` order, ``j`` of the
  second), ``task_vector`` is the two scales (the confounders' values, in that order) and
  ``sample_tasks`` draws training combinations.
  """

  def __init__(self, *, rand_params: Sequence[str], log_scale_range: tuple[float, float],
               num_tasks: int, num_test_tasks: int, split: str, task_seed: int,
               levels: Sequence[float] | None = None, **kwargs):
    super().__init__(**kwargs)
    unknown = set(rand_params) - set(PARAM_LOG_BASES)
    if unknown or not rand_params:
      raise ValueError(f"rand_params must be a non-empty subset of {list(PARAM_LOG_BASES)}, "
                       f"got {rand_params}")
    self.rand_params = tuple(p for p in PARAM_LOG_BASES if p in set(rand_params))
    lo, hi = float(log_scale_range[0]), float(log_scale_range[1])
    if not lo <= hi:
      raise ValueError(f"log_scale_range must be (lo, hi) with lo <= hi, got {log_scale_range}")
    self.log_scale_range = (lo, hi)
    self.num_tasks = int(num_tasks)
    self.num_test_tasks = int(num_test_tasks)
    self.split = split
    self.task_seed = int(task_seed)
    self.levels = None if levels is None else tuple(float(v) for v in levels)
    if self.levels is not None:
      _check_grid(self.levels, self.rand_params, self.num_tasks, split)
    make_split(split, self.num_tasks, self.num_test_tasks)  # validate early

  def param_shape(self, name: str) -> tuple[int, ...]:
    return tuple(np.shape(getattr(self.mj_model, name)))

  @property
  def task_size(self) -> int:
    if self.levels is not None:
      return len(self.rand_params)
    return int(sum(np.prod(self.param_shape(p)) for p in self.rand_params))

  def nominal_task(self):
    """The all-ones task: the base model's physics."""
    return {p: jnp.ones(self.param_shape(p), jnp.float32) for p in self.rand_params}

  def sample_tasks(self, key, n):
    if self.levels is not None:  # training combinations of the grid
      ids = jax.random.choice(key, jnp.asarray(self.benchmark_split()["train"]), (n,))
      return jax.tree.map(lambda x: x[ids], self.all_benchmark_tasks())
    lo, hi = self.log_scale_range
    keys = jax.random.split(key, len(self.rand_params))
    u = {p: jax.random.uniform(k, (n,) + self.param_shape(p), minval=lo, maxval=hi)
         for p, k in zip(self.rand_params, keys)}
    return {p: jnp.power(jnp.float32(PARAM_LOG_BASES[p]), u[p]) for p in self.rand_params}

  def grid_scales(self) -> np.ndarray:
    """``[L * L, 2]``: each benchmark task's scale of the two groups (grid variant)."""
    levels = np.asarray(self.levels, np.float64)
    n = len(levels)
    return np.stack([np.repeat(levels, n), np.tile(levels, n)], axis=1)

  def all_benchmark_tasks(self):
    if self.levels is not None:
      scales = self.grid_scales()
      return {p: jnp.asarray(scales[:, g].reshape((-1,) + (1,) * len(self.param_shape(p)))
                             * np.ones(self.param_shape(p)), jnp.float32)
              for g, p in enumerate(self.rand_params)}
    lo, hi = self.log_scale_range
    rng = np.random.RandomState(self.task_seed)
    per_task = []
    for _ in range(self.num_tasks):
      per_task.append({p: PARAM_LOG_BASES[p] ** rng.uniform(lo, hi, size=self.param_shape(p))
                       for p in self.rand_params})
    return {p: jnp.asarray(np.stack([t[p] for t in per_task]), jnp.float32)
            for p in self.rand_params}

  def benchmark_split(self):
    return make_split(self.split, self.num_tasks, self.num_test_tasks)

  def task_vector(self, task):
    if self.levels is not None:  # each group is scaled as a whole: its scale
      return jnp.stack([jnp.mean(task[p]) for p in self.rand_params])
    return jnp.concatenate([jnp.log(task[p]).reshape(-1) / np.log(PARAM_LOG_BASES[p])
                            for p in self.rand_params])

  def task_model(self, task) -> mjx.Model:
    return self.sys.replace(**{p: getattr(self.sys, p) * task[p] for p in self.rand_params})

  def host_task_params(self, task) -> jax.Array:
    return jnp.concatenate([jnp.asarray(task[p], jnp.float32).reshape(-1)
                            for p in self.rand_params])


def _check_grid(levels: tuple[float, ...], rand_params: tuple[str, ...], num_tasks: int,
                split: str) -> None:
  """``ValueError`` unless ``levels`` can make the multi-confounder grid of ``rand_params``."""
  if len(rand_params) != 2:
    raise ValueError(f"the levels grid crosses two parameter groups, got rand_params "
                     f"{rand_params}")
  if not levels or min(levels) <= 0:
    raise ValueError(f"levels must be positive scales, got {levels}")
  if num_tasks != len(levels) ** 2:
    raise ValueError(f"a grid of {len(levels)} levels per group has {len(levels) ** 2} tasks, "
                     f"got num_tasks={num_tasks}")
  if split != "held_out_combinations":
    raise ValueError(f"the levels grid's split is 'held_out_combinations', got {split!r}")


class PlanarParamEnv(RandParamEnv):
  """Shared hopper / walker logic (planar bodies on rootx, rootz, rooty joints).

  brax's assets drop the ``ref`` of the ``rootz`` slide joint; it is restored here (``ref =
  1.25``) so that, as in gym, ``qpos[1]`` is the torso height and ``qpos0[1] = 1.25``.
  Reward: ``(qpos_after[0] - qpos_before[0]) / dt + alive_bonus - ctrl_cost_weight ||a||^2``.
  Observation: ``obs_mode="full"`` -> ``qpos ⊕ qvel`` (CORRO/UNICORN); ``"clipped"`` ->
  ``qpos[1:] ⊕ clip(qvel, -10, 10)`` (rand_param_envs / FOCAL). Subclasses define
  ``_terminal(qpos, qvel)`` from ``self.termination``.
  """

  info_keys = ("x_velocity", "forward_reward", "ctrl_cost", "height", "angle")
  TERMINATIONS: tuple[str, ...] = ()

  def __init__(self, *, asset: str, obs_mode: str, alive_bonus: float, ctrl_cost_weight: float,
               termination: str, **kwargs):
    if obs_mode not in ("full", "clipped"):
      raise ValueError(f"obs_mode must be 'full' or 'clipped', got {obs_mode!r}")
    if termination not in self.TERMINATIONS:
      raise ValueError(f"termination must be one of {self.TERMINATIONS}, got {termination!r}")
    super().__init__(asset=asset, edits=(("joint", "rootz", "ref", 1.25),), **kwargs)
    self.obs_mode = obs_mode
    self.alive_bonus = float(alive_bonus)
    self.ctrl_cost_weight = float(ctrl_cost_weight)
    self.termination = termination

  @property
  def observation_size(self) -> int:
    nq, nv = self.mj_model.nq, self.mj_model.nv
    return nq + nv if self.obs_mode == "full" else nq - 1 + nv

  def _obs(self, data):
    if self.obs_mode == "full":
      return jnp.concatenate([data.qpos, data.qvel])
    return jnp.concatenate([data.qpos[1:], jnp.clip(data.qvel, -10.0, 10.0)])

  @abc.abstractmethod
  def _terminal(self, qpos, qvel):
    """True termination flag (each family defines it)."""

  def _reward(self, before, after, action, task):
    x_velocity = (after.qpos[0] - before.qpos[0]) / self.dt
    ctrl_cost = self.ctrl_cost_weight * jnp.sum(jnp.square(action))
    reward = x_velocity + self.alive_bonus - ctrl_cost
    info = {"x_velocity": x_velocity, "forward_reward": x_velocity, "ctrl_cost": ctrl_cost,
            "height": after.qpos[1], "angle": after.qpos[2]}
    return reward, self._terminal(after.qpos, after.qvel), info
