"""The C-MuJoCo physics backend of the MuJoCo task families (``physics="c"``).

MJX compiles MuJoCo's algorithms to XLA; on an accelerator that is the fast way to step thousands
of envs, but on a CPU the C library it was ported from is far faster per env step. Under
``physics="c"`` an env's observation, reward, termination, task sampling and reset stay the JAX
code of its family; only the frame-skipped physics step (and the reset's kinematics) leaves the
compiled program, as ONE ``jax.pure_callback`` per step for a whole (possibly nested-)vmapped
batch (``vmap_method="broadcast_all"``: the callback sees every batch axis at once). The host
side (:class:`HostStepper`) hands the whole batch to ``mujoco.batch.Batch``, MuJoCo's own
stepper of many simulations: one C++ call runs ``mj_step`` for every env on a thread pool
without the GIL (the earlier per-env Python loop held the GIL between MuJoCo calls and did not
scale past one core).

The physics state is :class:`HostData`: ``qpos``, ``qvel``, the solver warmstart
``qacc_warmstart`` (MJX carries it in ``mjx.Data`` too; with the 4 Newton iterations of these
models the warmstart changes the contact solution, by up to 0.2 in the ant's qpos in a step), and
only the extra fields the family reads (``xpos`` for the cheetah's torso position, ``cfrc_ext``
for the FOCAL ant's contact cost, from ``mj_rnePostConstraint`` as MJX's
``rne_postconstraint``: the stepped model carries one accelerometer so that ``mj_step`` runs
it). Every env step sets the whole state it depends on, so a step is a pure function of
``(state, action, task)`` whatever thread runs it: the same key gives the same trajectory.

Per-task physics (``RandParamEnv``): a task's multipliers arrive on the host flattened in
``rand_params`` order and become per-env model arrays of the batch (``Batch.expand``): only the
scaled arrays change (``array = base_array * multiplier``; derived constants keep their base
values: the rule of ``RandParamEnv.task_model``), so one call steps a batch that mixes any
number of tasks.
"""

from __future__ import annotations

import collections
import copy
import functools
import os
import threading
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct
from mujoco import batch as mujoco_batch

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

  The batch runs on :class:`mujoco.batch.Batch` (MuJoCo's own many-simulation stepper: one C++
  call steps every env on a thread pool without the GIL, bit-identical to a loop of ``mj_step``
  over one ``MjData`` per env at any thread count). One ``Batch`` is kept per batch size and
  thread count; its state rows are overwritten by every call, so a step is a pure function of
  its inputs.

  Args:
    model: the base ``MjModel`` (task models scale its arrays).
    frame_skip: MuJoCo steps per env step (the control is held).
    rand_params: names of the per-task scaled model arrays (``RandParamEnv.rand_params``).
    fields: extra physics fields to return, a subset of :data:`HOST_FIELDS`.
    nthread: threads, the caller's included (None: :func:`default_threads`).
    step_model: the model that is stepped, when it is not ``model``: ``model`` with an
      acceleration sensor added (:func:`jcomrl.envs.mjx_base.load_mj_model`'s
      ``rne_post_constraint``), so that ``mj_step`` runs ``mj_rnePostConstraint`` and
      ``cfrc_ext`` comes out of the batch. Required for the ``"cfrc_ext"`` field. Sensors only
      read the state, so its trajectories are ``model``'s bit for bit (tested).
    max_batches: batch sizes kept (least recently used dropped).
  """

  def __init__(self, model: mujoco.MjModel, frame_skip: int, rand_params: Sequence[str] = (),
               fields: Sequence[str] = (), nthread: int | None = None,
               step_model: mujoco.MjModel | None = None, max_batches: int = 8):
    unknown = set(fields) - set(HOST_FIELDS)
    if unknown:
      raise ValueError(f"unknown host physics fields {sorted(unknown)}; have {HOST_FIELDS}")
    if model.na or model.nmocap:
      raise ValueError("physics='c' carries qpos, qvel and the warmstart between steps; this "
                       "model has actuator activations or mocap bodies: use physics='mjx'")
    step_model = model if step_model is None else step_model
    sizes = ("nq", "nv", "nu", "nbody", "ngeom", "njnt")
    if any(getattr(step_model, s) != getattr(model, s) for s in sizes):
      raise ValueError(f"step_model must have the sizes {sizes} of model")
    self.fields = tuple(f for f in HOST_FIELDS if f in fields)
    if "cfrc_ext" in self.fields and not np.any(
        step_model.sensor_needstage == int(mujoco.mjtStage.mjSTAGE_ACC)):
      raise ValueError("the 'cfrc_ext' field needs a step_model with an acceleration-stage "
                       "sensor (load_mj_model(..., rne_post_constraint=True))")
    self.model = model
    self.step_model = step_model
    self.frame_skip = int(frame_skip)
    self.rand_params = tuple(rand_params)
    self.nthread = default_threads() if nthread is None else int(nthread)
    self.max_batches = int(max_batches)
    self.param_shapes = [tuple(np.shape(getattr(model, p))) for p in self.rand_params]
    self.param_size = int(sum(np.prod(s) for s in self.param_shapes))
    self._batches: collections.OrderedDict[tuple[int, int], _BoundBatch] = (
        collections.OrderedDict())
    # Programs sharded over several host devices may call back concurrently; a Batch must not
    # be used from two Python threads at once, so calls take turns (each is multithreaded).
    self._lock = threading.Lock()

  # --- per-task models
  def task_model(self, params: np.ndarray) -> mujoco.MjModel:
    """One task's ``MjModel`` from its flattened multipliers (``array = base_array *
    multiplier`` for each of ``rand_params``; derived constants keep their base values): the
    rule the batched step applies per env through ``Batch.expand``."""
    params = np.asarray(params, np.float32).reshape(self.param_size)
    model = copy.copy(self.step_model)
    for name, mult in zip(self.rand_params, self._split_params(params[None])):
      getattr(model, name)[...] = getattr(self.step_model, name) * mult[0]
    return model

  def _split_params(self, params: np.ndarray) -> list[np.ndarray]:
    """``[batch, param_size]`` float32 -> per ``rand_params`` float64 ``[batch, *shape]``."""
    out, offset = [], 0
    for shape in self.param_shapes:
      size = int(np.prod(shape))
      out.append(params[:, offset:offset + size].astype(np.float64).reshape((-1,) + shape))
      offset += size
    return out

  def _batch(self, nsim: int) -> "_BoundBatch":
    key = (nsim, self.nthread)
    bound = self._batches.get(key)
    if bound is None:
      bound = _BoundBatch(self.step_model, nsim, self.nthread, self.rand_params, self.fields)
      self._batches[key] = bound
      while len(self._batches) > self.max_batches:
        self._batches.popitem(last=False)
    else:
      self._batches.move_to_end(key)
    return bound

  # --- stepping
  def step(self, qpos, qvel, warmstart, ctrl, params) -> dict[str, np.ndarray]:
    """One env step of a batch with any leading shape ``L``: ``qpos [*L, nq]``, ``qvel [*L, nv]``,
    ``warmstart [*L, nv]``, ``ctrl [*L, nu]``, ``params [*L, param_size]`` -> ``{"qpos", "qvel",
    "qacc_warmstart", *fields}`` as float32 arrays with leading shape ``L``."""
    m = self.model
    lead = tuple(np.shape(qpos)[:-1])
    nsim = int(np.prod(lead, dtype=int))
    params = np.asarray(params, np.float32).reshape(nsim, self.param_size)
    if nsim == 0:  # an empty vmap: Batch needs at least one simulation
      return {k: np.zeros(lead + shape, np.float32) for k, shape in self._out_shapes()}
    with self._lock:
      b = self._batch(nsim)
      b.time[:] = 0.0
      b.qpos[:] = np.reshape(qpos, (nsim, m.nq))
      b.qvel[:] = np.reshape(qvel, (nsim, m.nv))
      b.warmstart[:] = np.reshape(warmstart, (nsim, m.nv))
      b.ctrl[:] = np.reshape(ctrl, (nsim, m.nu))
      for name, mult in zip(self.rand_params, self._split_params(params)):
        np.multiply(getattr(self.step_model, name), mult, out=b.params[name])
      b.batch.step(nstep=self.frame_skip)
      out = {"qpos": b.qpos, "qvel": b.qvel, "qacc_warmstart": b.warmstart,
             **{f: b.outputs[f] for f in self.fields}}
      return {k: v.astype(np.float32).reshape(lead + v.shape[1:]) for k, v in out.items()}

  def kinematics(self, qpos) -> tuple[np.ndarray, np.ndarray]:
    """``(qpos, xpos [*L, nbody, 3])`` at ``qpos [*L, nq]`` (the reset's kinematics); the
    returned ``qpos`` has unit quaternions (``mj_normalizeQuat``'s rule), as
    ``mjx.kinematics`` leaves it."""
    m = self.model
    lead = tuple(np.shape(qpos)[:-1])
    qpos = np.array(qpos, np.float64).reshape(-1, m.nq)
    if qpos.shape[0] == 0:
      return (qpos.astype(np.float32).reshape(lead + (m.nq,)),
              np.zeros(lead + (m.nbody, 3), np.float32))
    for adr in self._quat_adrs:
      q = qpos[:, adr:adr + 4]
      norm = np.sqrt(np.sum(q * q, axis=-1, keepdims=True))
      tiny = norm[:, 0] < mujoco.mjMINVAL
      scale = np.abs(norm[:, 0] - 1.0) > mujoco.mjMINVAL
      q[scale] = q[scale] / norm[scale]
      q[tiny] = (1.0, 0.0, 0.0, 0.0)
    with self._lock:
      b = self._batch(qpos.shape[0])
      b.qpos[:] = qpos
      b.batch.forward(stage=mujoco.mjtStage.mjSTAGE_POS)
      xpos = b.xpos.astype(np.float32)
    return qpos.astype(np.float32).reshape(lead + (m.nq,)), xpos.reshape(lead + (m.nbody, 3))

  @functools.cached_property
  def _quat_adrs(self) -> list[int]:
    """``qpos`` addresses of the quaternions (free joints at +3, ball joints at +0)."""
    m, adrs = self.model, []
    for j in range(m.njnt):
      if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE:
        adrs.append(int(m.jnt_qposadr[j]) + 3)
      elif m.jnt_type[j] == mujoco.mjtJoint.mjJNT_BALL:
        adrs.append(int(m.jnt_qposadr[j]))
    return adrs

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


class _BoundBatch:
  """A ``mujoco.batch.Batch`` of ``nsim`` envs with the views :class:`HostStepper` uses."""

  def __init__(self, model: mujoco.MjModel, nsim: int, nthread: int,
               rand_params: Sequence[str], fields: Sequence[str]):
    self.batch = mujoco_batch.Batch(model, nsim, nthread=nthread)
    self.batch.reset(stage=mujoco.mjtStage.mjSTAGE_NONE)  # every other state component: defaults
    bind = self.batch.bind
    self.time, self.qpos, self.qvel = bind("time"), bind("qpos"), bind("qvel")
    self.warmstart, self.ctrl = bind("qacc_warmstart"), bind("ctrl")
    self.params = {p: self.batch.expand(p) for p in rand_params}  # per-env model arrays
    self.outputs = {f: bind(f) for f in fields}  # derived, refreshed by every call
    self.xpos = bind("xpos")
