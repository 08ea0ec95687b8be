"""The C-MuJoCo physics backend of the MuJoCo task families (``physics="c"``).

MJX compiles MuJoCo's algorithms to XLA; on an accelerator that is the fast way to step thousands
of envs, but on a CPU the C library it was ported from is far faster per env step. Under
``physics="c"`` an env's observation, reward, termination, task sampling and reset stay the JAX
code of its family; only the frame-skipped physics step (and the reset's kinematics) leaves the
compiled program, as ONE ``jax.pure_callback`` per step for a whole (possibly nested-)vmapped
batch (``vmap_method="broadcast_all"``: the callback sees every batch axis at once). The host
side (:class:`HostStepper`) steps the batch with ``mujoco.rollout`` on a thread pool.

The physics state is :class:`HostData`: ``qpos``, ``qvel`` and only the extra fields the family
reads (``xpos`` for the cheetah's torso position, ``cfrc_ext`` for the FOCAL ant's contact cost).
Each env step starts the C solver from a zero warmstart, so a step is a pure function of
``(qpos, qvel, action, task)`` and the result does not depend on which thread ran which env.
``xpos`` has MJX's post-step meaning (the kinematics of the last substep, before its
integration): it is read from ``framepos`` sensors of every body, which C MuJoCo evaluates at the
same point of ``mj_step``. Those sensors are added to a separate copy of the MJCF for this
backend; sensors do not change the dynamics.

Per-task physics (``RandParamEnv``): a task's multipliers arrive on the host flattened in
``rand_params`` order; each distinct task gets its own ``MjModel``, a copy of the base model in
which only the scaled arrays change (``array = base_array * multiplier``, derived constants keep
their base values: the rule of ``RandParamEnv.task_model``), kept in an LRU cache, so one call
can step a batch that mixes many tasks.
"""

from __future__ import annotations

import collections
import copy
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct
from mujoco import rollout as mj_rollout

PHYSICS = ("auto", "c", "mjx")
HOST_FIELDS = ("xpos", "cfrc_ext")

__all__ = ["HOST_FIELDS", "PHYSICS", "HostData", "HostStepper", "resolve_physics"]


def resolve_physics(physics: str) -> str:
  """``"c"`` or ``"mjx"``; ``"auto"`` is ``"c"`` when JAX's default backend is the CPU."""
  if physics not in PHYSICS:
    raise ValueError(f"physics must be one of {PHYSICS}, got {physics!r}")
  if physics == "auto":
    return "c" if jax.default_backend() == "cpu" else "mjx"
  return physics


@struct.dataclass
class HostData:
  """Physics state under ``physics="c"``: the fields of ``mjx.Data`` that the families read.

  Attributes:
    qpos: ``[nq]`` joint positions.
    qvel: ``[nv]`` joint velocities.
    xpos: ``[nbody, 3]`` body positions (kinematics of the last substep), or None.
    cfrc_ext: ``[nbody, 6]`` external (contact) forces of the last substep, or None.
  """

  qpos: jax.Array
  qvel: jax.Array
  xpos: jax.Array | None = None
  cfrc_ext: jax.Array | None = None


def default_threads() -> int:
  """Threads for the host stepper: the CPUs this process may run on."""
  try:
    return max(1, len(os.sched_getaffinity(0)))
  except AttributeError:  # not on Linux
    return max(1, os.cpu_count() or 1)


class HostStepper:
  """Steps batches of one MuJoCo model family in C MuJoCo (host side of ``physics="c"``).

  Args:
    model: the base ``MjModel`` (with ``framepos`` sensors for every non-world body, in body
      order, when ``"xpos"`` is in ``fields``; see :func:`add_body_sensors`).
    frame_skip: MuJoCo steps per env step (the control is held).
    rand_params: names of the per-task scaled model arrays (``RandParamEnv.rand_params``).
    fields: extra physics fields to return, a subset of :data:`HOST_FIELDS`.
    nthread: rollout threads (None: :func:`default_threads`).
    cache_size: per-task models kept (least recently used dropped; never those in use).
  """

  def __init__(self, model: mujoco.MjModel, frame_skip: int, rand_params: Sequence[str] = (),
               fields: Sequence[str] = (), nthread: int | None = None, cache_size: int = 4096):
    unknown = set(fields) - set(HOST_FIELDS)
    if unknown:
      raise ValueError(f"unknown host physics fields {sorted(unknown)}; have {HOST_FIELDS}")
    if model.na or model.nmocap:
      raise ValueError("physics='c' carries only qpos and qvel between steps; this model has "
                       "actuator activations or mocap bodies: use physics='mjx'")
    if "xpos" in fields and model.nsensordata != 3 * (model.nbody - 1):
      raise ValueError("the xpos field needs the model from add_body_sensors")
    self.model = model
    self.frame_skip = int(frame_skip)
    self.rand_params = tuple(rand_params)
    self.fields = tuple(f for f in HOST_FIELDS if f in fields)
    self.nthread = default_threads() if nthread is None else int(nthread)
    self.cache_size = int(cache_size)
    self.param_shapes = [tuple(np.shape(getattr(model, p))) for p in self.rand_params]
    self.param_size = int(sum(np.prod(s) for s in self.param_shapes))
    self._nstate = mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_FULLPHYSICS.value)
    self._models: collections.OrderedDict[bytes, mujoco.MjModel] = collections.OrderedDict()
    self._pool = None
    self._datas: list[mujoco.MjData] = []

  # --- per-task models
  def task_model(self, params: np.ndarray) -> mujoco.MjModel:
    """The (cached) ``MjModel`` of one task's flattened float32 multipliers."""
    params = np.ascontiguousarray(params, np.float32)
    key = params.tobytes()
    model = self._models.get(key)
    if model is not None:
      self._models.move_to_end(key)
      return model
    model = copy.copy(self.model)
    offset = 0
    for name, shape in zip(self.rand_params, self.param_shapes):
      size = int(np.prod(shape))
      mult = params[offset:offset + size].astype(np.float64).reshape(shape)
      getattr(model, name)[...] = getattr(self.model, name) * mult
      offset += size
    self._models[key] = model
    return model

  def _batch_models(self, params: np.ndarray):
    if not self.rand_params:
      return self.model
    models = [self.task_model(p) for p in params]
    keep = max(self.cache_size, len(models))
    while len(self._models) > keep:  # the batch's models were just touched: they stay
      self._models.popitem(last=False)
    return models

  def _threads(self, batch: int):
    nthread = min(self.nthread, batch)
    if nthread <= 1:
      if not self._datas:
        self._datas = [mujoco.MjData(self.model)]
      return None, self._datas[:1]
    if self._pool is None or self._pool.nthread != nthread:
      self._pool = mj_rollout.Rollout(nthread=nthread)
    while len(self._datas) < nthread:
      self._datas.append(mujoco.MjData(self.model))
    return self._pool, self._datas[:nthread]

  # --- stepping
  def step(self, qpos, qvel, ctrl, params) -> dict[str, np.ndarray]:
    """One env step of a batch with any leading shape ``L``: ``qpos [*L, nq]``, ``qvel
    [*L, nv]``, ``ctrl [*L, nu]``, ``params [*L, param_size]`` -> ``{"qpos", "qvel", *fields}``
    as float32 arrays with leading shape ``L``."""
    m = self.model
    lead = np.shape(qpos)[:-1]
    qpos = np.asarray(qpos, np.float64).reshape(-1, m.nq)
    qvel = np.asarray(qvel, np.float64).reshape(-1, m.nv)
    ctrl = np.asarray(ctrl, np.float64).reshape(-1, 1, m.nu)
    params = np.asarray(params, np.float32).reshape(qpos.shape[0], self.param_size)
    models = self._batch_models(params)
    if "cfrc_ext" in self.fields:
      out = self._step_loop(models, qpos, qvel, ctrl[:, 0])
    else:
      out = self._step_rollout(models, qpos, qvel, ctrl)
    return {k: v.astype(np.float32).reshape(lead + v.shape[1:]) for k, v in out.items()}

  def _step_rollout(self, models, qpos, qvel, ctrl):
    m, batch = self.model, qpos.shape[0]
    state0 = np.zeros((batch, self._nstate))
    state0[:, 1:1 + m.nq] = qpos  # FULLPHYSICS layout: time, qpos, qvel, (empty) rest
    state0[:, 1 + m.nq:1 + m.nq + m.nv] = qvel
    pool, datas = self._threads(batch)
    run = pool.rollout if pool is not None else mj_rollout.rollout
    state, sensordata = run(models, datas, state0, ctrl, nstep=self.frame_skip,
                            initial_warmstart=np.zeros((batch, m.nv)))
    last = state[:, -1]
    out = {"qpos": last[:, 1:1 + m.nq], "qvel": last[:, 1 + m.nq:1 + m.nq + m.nv]}
    if "xpos" in self.fields:
      xpos = np.zeros((batch, m.nbody, 3))
      xpos[:, 1:] = sensordata[:, -1].reshape(batch, m.nbody - 1, 3)
      out["xpos"] = xpos
    return out

  def _step_loop(self, models, qpos, qvel, ctrl):
    """A plain ``mj_step`` loop on this thread, for fields that no sensor gives (cfrc_ext)."""
    m, batch = self.model, qpos.shape[0]
    _, datas = self._threads(1)
    d = datas[0]
    out = {"qpos": np.empty((batch, m.nq)), "qvel": np.empty((batch, m.nv))}
    for f, shape in (("xpos", (m.nbody, 3)), ("cfrc_ext", (m.nbody, 6))):
      if f in self.fields:
        out[f] = np.empty((batch,) + shape)
    for i in range(batch):
      model = models if isinstance(models, mujoco.MjModel) else models[i]
      mujoco.mj_resetData(model, d)
      d.qpos[:], d.qvel[:], d.ctrl[:] = qpos[i], qvel[i], ctrl[i]
      for _ in range(self.frame_skip):
        mujoco.mj_step(model, d)
      out["qpos"][i], out["qvel"][i] = d.qpos, d.qvel
      if "xpos" in out:
        out["xpos"][i] = d.xpos
      if "cfrc_ext" in out:
        mujoco.mj_rnePostConstraint(model, d)
        out["cfrc_ext"][i] = d.cfrc_ext
    return out

  def kinematics(self, qpos) -> np.ndarray:
    """``xpos [*L, nbody, 3]`` of ``qpos [*L, nq]`` (the reset's kinematics)."""
    m = self.model
    lead = np.shape(qpos)[:-1]
    qpos = np.asarray(qpos, np.float64).reshape(-1, m.nq)
    _, datas = self._threads(1)
    d = datas[0]
    xpos = np.empty((qpos.shape[0], m.nbody, 3), np.float32)
    for i, q in enumerate(qpos):
      mujoco.mj_resetData(m, d)
      d.qpos[:] = q
      mujoco.mj_kinematics(m, d)
      xpos[i] = d.xpos
    return xpos.reshape(lead + (m.nbody, 3))

  # --- the JAX side
  def jax_step(self, data: HostData, action: jax.Array, params: jax.Array) -> HostData:
    """``HostData`` after one env step, through one ``pure_callback`` per (vmapped) batch."""
    m = self.model
    shapes = {"qpos": (m.nq,), "qvel": (m.nv,), "xpos": (m.nbody, 3),
              "cfrc_ext": (m.nbody, 6)}
    result = {k: jax.ShapeDtypeStruct(shapes[k], jnp.float32)
              for k in ("qpos", "qvel", *self.fields)}
    out = jax.pure_callback(self.step, result, data.qpos, data.qvel,
                            jnp.asarray(action, jnp.float32), params,
                            vmap_method="broadcast_all")
    return HostData(**out)

  def jax_init(self, qpos: jax.Array, qvel: jax.Array) -> HostData:
    """``HostData`` at ``(qpos, qvel)`` with the fields this stepper returns."""
    m = self.model
    extra = {}
    if "xpos" in self.fields:
      extra["xpos"] = jax.pure_callback(
          self.kinematics, jax.ShapeDtypeStruct((m.nbody, 3), jnp.float32), qpos,
          vmap_method="broadcast_all")
    if "cfrc_ext" in self.fields:
      extra["cfrc_ext"] = jnp.zeros((m.nbody, 6), jnp.float32)
    return HostData(qpos=qpos, qvel=qvel, **extra)


def add_body_sensors(spec: mujoco.MjSpec) -> None:
  """Adds a ``framepos`` sensor of every body frame (``xpos``), world excluded, in body order."""
  for body in spec.bodies[1:]:
    spec.add_sensor(type=mujoco.mjtSensor.mjSENS_FRAMEPOS, objtype=mujoco.mjtObj.mjOBJ_XBODY,
                    objname=body.name)
