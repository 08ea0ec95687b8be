"""The C-MuJoCo physics backend of the MuJoCo task families (``physics="c"``).

MJX compiles MuJoCo's algorithms to XLA; on an accelerator that is the fast way to step thousands
of envs, but on a CPU the C library it was ported from is far faster per env step. Under
``physics="c"`` an env's observation, reward, termination, task sampling and reset stay the JAX
code of its family; only the frame-skipped physics step (and the reset's kinematics) leaves the
compiled program, as ONE ``jax.pure_callback`` per step for a whole (possibly nested-)vmapped
batch (``vmap_method="broadcast_all"``: the callback sees every batch axis at once). The host
side (:class:`HostStepper`) splits the batch over the calling thread and a thread pool; each
runs ``mj_step`` (which releases the GIL) for its share of envs on its own scratch ``MjData``.

The physics state is :class:`HostData`: ``qpos``, ``qvel``, the solver warmstart
``qacc_warmstart`` (MJX carries it in ``mjx.Data`` too; with the 4 Newton iterations of these
models the warmstart changes the contact solution, by up to 0.2 in the ant's qpos in a step), and
only the extra fields the family reads (``xpos`` for the cheetah's torso position, ``cfrc_ext``
for the FOCAL ant's contact cost, from ``mj_rnePostConstraint`` as MJX's
``rne_postconstraint``). Every env step sets the whole state it depends on, so a step is a pure
function of ``(state, action, task)`` whatever thread runs it: the same key gives the same
trajectory.

Per-task physics (``RandParamEnv``): a task's multipliers arrive on the host flattened in
``rand_params`` order; each distinct task gets its own ``MjModel``, a copy of the base model in
which only the scaled arrays change (``array = base_array * multiplier``; derived constants keep
their base values: the rule of ``RandParamEnv.task_model``), kept in an LRU cache, so one call
can step a batch that mixes many tasks.
"""

from __future__ import annotations

import collections
import copy
import functools
import os
import threading
from collections.abc import Sequence
from concurrent import futures

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct

PHYSICS = ("auto", "c", "mjx")
HOST_FIELDS = ("xpos", "cfrc_ext")
MIN_ENVS_PER_THREAD = 8  # smaller shares are not worth a thread hand-off

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
    qacc_warmstart: ``[nv]`` the constraint solver's warmstart (the last substep's ``qacc``).
    xpos: ``[nbody, 3]`` body positions (kinematics of the last substep), or None.
    cfrc_ext: ``[nbody, 6]`` external (contact) forces of the last substep, or None.
  """

  qpos: jax.Array
  qvel: jax.Array
  qacc_warmstart: jax.Array
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
    model: the base ``MjModel``.
    frame_skip: MuJoCo steps per env step (the control is held).
    rand_params: names of the per-task scaled model arrays (``RandParamEnv.rand_params``).
    fields: extra physics fields to return, a subset of :data:`HOST_FIELDS`.
    nthread: worker threads (None: :func:`default_threads`); a batch is split into at most this
      many contiguous shares of at least :data:`MIN_ENVS_PER_THREAD` envs.
    cache_size: per-task models kept (least recently used dropped; never those in use).
  """

  def __init__(self, model: mujoco.MjModel, frame_skip: int, rand_params: Sequence[str] = (),
               fields: Sequence[str] = (), nthread: int | None = None, cache_size: int = 4096):
    unknown = set(fields) - set(HOST_FIELDS)
    if unknown:
      raise ValueError(f"unknown host physics fields {sorted(unknown)}; have {HOST_FIELDS}")
    if model.na or model.nmocap:
      raise ValueError("physics='c' carries qpos, qvel and the warmstart between steps; this "
                       "model has actuator activations or mocap bodies: use physics='mjx'")
    self.model = model
    self.frame_skip = int(frame_skip)
    self.rand_params = tuple(rand_params)
    self.fields = tuple(f for f in HOST_FIELDS if f in fields)
    self.nthread = default_threads() if nthread is None else int(nthread)
    self.cache_size = int(cache_size)
    self.param_shapes = [tuple(np.shape(getattr(model, p))) for p in self.rand_params]
    self.param_size = int(sum(np.prod(s) for s in self.param_shapes))
    state = mujoco.mjtState
    # One mj_setState call sets [qpos, qvel, warmstart, ctrl] (state bits in this order), one
    # mj_getState call reads back the first three.
    self._spec = int(state.mjSTATE_QPOS | state.mjSTATE_QVEL | state.mjSTATE_WARMSTART)
    self._spec_in = self._spec | int(state.mjSTATE_CTRL)
    self._nstate = mujoco.mj_stateSize(model, self._spec)
    if mujoco.mj_stateSize(model, self._spec_in) != self._nstate + model.nu:
      raise ValueError("unexpected MuJoCo state layout")
    self._models: collections.OrderedDict[bytes, mujoco.MjModel] = collections.OrderedDict()
    self._pool: futures.ThreadPoolExecutor | None = None
    self._datas: list[mujoco.MjData] = []
    # Programs sharded over several host devices may call back concurrently; the scratch
    # MjData, the pool and the model cache are shared, so calls take turns (each one is
    # multithreaded itself).
    self._lock = threading.Lock()

  # --- per-task models
  def task_model(self, params: np.ndarray) -> mujoco.MjModel:
    """The (cached) ``MjModel`` of one task's flattened float32 multipliers."""
    params = np.ascontiguousarray(params, np.float32)
    key = params.tobytes()
    model = self._models.get(key)
    if model is not None:
      if len(self._models) >= self.cache_size:  # LRU order matters only near the limit
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
    while len(self._models) > keep:  # an evicted model of this batch lives on in `models`
      self._models.popitem(last=False)
    return models

  def _pool_and_datas(self, nchunk: int):
    if nchunk > 1 and (self._pool is None or self._pool._max_workers < nchunk - 1):
      if self._pool is not None:
        self._pool.shutdown(wait=False)
      self._pool = futures.ThreadPoolExecutor(nchunk - 1, thread_name_prefix="jcomrl-mujoco")
    while len(self._datas) < nchunk:
      self._datas.append(mujoco.MjData(self.model))
    return (self._pool if nchunk > 1 else None), self._datas[:nchunk]

  # --- stepping
  def step(self, qpos, qvel, warmstart, ctrl, params) -> dict[str, np.ndarray]:
    """One env step of a batch with any leading shape ``L``: ``qpos [*L, nq]``, ``qvel [*L, nv]``,
    ``warmstart [*L, nv]``, ``ctrl [*L, nu]``, ``params [*L, param_size]`` -> ``{"qpos", "qvel",
    "qacc_warmstart", *fields}`` as float32 arrays with leading shape ``L``."""
    m = self.model
    lead = tuple(np.shape(qpos)[:-1])
    batch = int(np.prod(lead, dtype=int))
    n = self._nstate
    state = np.empty((batch, n + m.nu))  # [qpos, qvel, warmstart, ctrl]
    state[:, :m.nq] = np.reshape(qpos, (batch, m.nq))
    state[:, m.nq:m.nq + m.nv] = np.reshape(qvel, (batch, m.nv))
    state[:, m.nq + m.nv:n] = np.reshape(warmstart, (batch, m.nv))
    state[:, n:] = np.reshape(ctrl, (batch, m.nu))
    params = np.asarray(params, np.float32).reshape(batch, self.param_size)
    shapes = {"xpos": (m.nbody, 3), "cfrc_ext": (m.nbody, 6)}
    extra = {f: np.empty((batch,) + shapes[f]) for f in self.fields}
    with self._lock:
      models = self._batch_models(params)
      nchunk = max(1, min(self.nthread, batch // MIN_ENVS_PER_THREAD))
      pool, datas = self._pool_and_datas(nchunk)
      bounds = [batch * j // nchunk for j in range(nchunk + 1)]
      run = functools.partial(self._step_envs, models, state, extra)
      jobs = [pool.submit(run, datas[j], range(bounds[j], bounds[j + 1]))
              for j in range(1, nchunk)]
      run(datas[0], range(bounds[0], bounds[1]))  # the calling thread takes the first share
      for job in jobs:
        job.result()
    out = {"qpos": state[:, :m.nq], "qvel": state[:, m.nq:m.nq + m.nv],
           "qacc_warmstart": state[:, m.nq + m.nv:n], **extra}
    return {k: v.astype(np.float32).reshape(lead + v.shape[1:]) for k, v in out.items()}

  def _step_envs(self, models, state, extra, d: mujoco.MjData, rows: range) -> None:
    """Steps ``rows`` of the batch in place on the scratch data ``d`` (one worker's share)."""
    spec, spec_in, n, skip = self._spec, self._spec_in, self._nstate, self.frame_skip
    xpos, cfrc = extra.get("xpos"), extra.get("cfrc_ext")
    shared = None if isinstance(models, list) else models
    for i in rows:
      model = models[i] if shared is None else shared
      row = state[i]
      mujoco.mj_setState(model, d, row, spec_in)
      mujoco.mj_step(model, d, skip)
      mujoco.mj_getState(model, d, row[:n], spec)
      if xpos is not None:
        xpos[i] = d.xpos
      if cfrc is not None:
        mujoco.mj_rnePostConstraint(model, d)
        cfrc[i] = d.cfrc_ext

  def kinematics(self, qpos) -> tuple[np.ndarray, np.ndarray]:
    """``(qpos, xpos [*L, nbody, 3])`` at ``qpos [*L, nq]`` (the reset's kinematics); the
    returned ``qpos`` has unit quaternions, as ``mjx.kinematics`` leaves it."""
    m = self.model
    lead = tuple(np.shape(qpos)[:-1])
    qpos = np.array(qpos, np.float64).reshape(-1, m.nq)
    xpos = np.empty((qpos.shape[0], m.nbody, 3), np.float32)
    with self._lock:
      d = self._pool_and_datas(1)[1][0]
      for i, q in enumerate(qpos):
        mujoco.mj_normalizeQuat(m, q)
        d.qpos[:] = q
        mujoco.mj_kinematics(m, d)
        xpos[i] = d.xpos
    return qpos.astype(np.float32).reshape(lead + (m.nq,)), xpos.reshape(lead + (m.nbody, 3))

  # --- the JAX side
  def _out_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
    m = self.model
    shapes = {"qpos": (m.nq,), "qvel": (m.nv,), "qacc_warmstart": (m.nv,),
              "xpos": (m.nbody, 3), "cfrc_ext": (m.nbody, 6)}
    return [(k, shapes[k]) for k in ("qpos", "qvel", "qacc_warmstart", *self.fields)]

  def _step_packed(self, packed: np.ndarray) -> np.ndarray:
    """:meth:`step` on one packed array ``[*L, nq + 2 nv + nu + param_size]`` (each argument
    and result of a callback costs a conversion: one of each is cheapest)."""
    m = self.model
    cuts = np.cumsum([m.nq, m.nv, m.nv, m.nu])
    out = self.step(*np.split(np.asarray(packed), cuts, axis=-1))
    lead = packed.shape[:-1]
    return np.concatenate([out[k].reshape(lead + (-1,)) for k, _ in self._out_shapes()], -1)

  def jax_step(self, data: HostData, action: jax.Array, params: jax.Array) -> HostData:
    """``HostData`` after one env step, through one ``pure_callback`` per (vmapped) batch."""
    shapes = self._out_shapes()
    sizes = [int(np.prod(shape)) for _, shape in shapes]
    packed = jnp.concatenate([data.qpos, data.qvel, data.qacc_warmstart,
                              jnp.asarray(action, jnp.float32), params]).astype(jnp.float32)
    out = jax.pure_callback(self._step_packed, jax.ShapeDtypeStruct((sum(sizes),), jnp.float32),
                            packed, vmap_method="broadcast_all")
    parts = jnp.split(out, np.cumsum(sizes)[:-1])
    return HostData(**{k: x.reshape(shape) for (k, shape), x in zip(shapes, parts)})

  def jax_init(self, qpos: jax.Array, qvel: jax.Array) -> HostData:
    """``HostData`` at ``(qpos, qvel)`` (zero warmstart) with the fields this stepper returns;
    like ``mjx.kinematics``, quaternions in ``qpos`` come back normalised."""
    m = self.model
    extra = {}
    quats = np.isin(m.jnt_type, (mujoco.mjtJoint.mjJNT_FREE, mujoco.mjtJoint.mjJNT_BALL)).any()
    if "xpos" in self.fields or quats:
      qpos, xpos = jax.pure_callback(
          self.kinematics, (jax.ShapeDtypeStruct((m.nq,), jnp.float32),
                            jax.ShapeDtypeStruct((m.nbody, 3), jnp.float32)),
          qpos, vmap_method="broadcast_all")
      if "xpos" in self.fields:
        extra["xpos"] = xpos
    if "cfrc_ext" in self.fields:
      extra["cfrc_ext"] = jnp.zeros((m.nbody, 6), jnp.float32)
    return HostData(qpos=qpos, qvel=qvel, qacc_warmstart=jnp.zeros((m.nv,), jnp.float32),
                    **extra)
