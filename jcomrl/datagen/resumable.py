"""The host loop of jcomrl's own SAC behaviour trainers, and its checkpoints: a killed run started
again with the same settings resumes to the same agents, bit for bit.

``per_task_sac.train_sac_per_task`` and ``shared_sac.train_sac_shared`` run one compiled program
(``run(state, tasks, hp, warmup_steps, num_iterations) -> (state, sums)``) from a thin host loop
over the snapshot intervals, :func:`train_intervals`. Given a :class:`Checkpoint`, the loop runs
each interval in compiled calls of at most ``checkpoint_iterations`` iterations (default 1000)
and writes a checkpoint at the end of every interval and after every call that ends
``checkpoint_seconds`` (default 600) or more after the last write. Why inside an interval: one
interval of the papers' per-task recipe (40 cheetah-vel agents, 1e6 env steps each with 2 envs,
10 snapshots) is 55.6k iterations of 80 env steps and 40 updates; from the fast recipe's
measured 52 ms per iteration on the 2-core CPU (benchmarks/results/issue35), with about 2.5x its
update compute, that is 1.5 hours or more, half a 3-hour session lost to a kill at its end. The
defaults bound the loss to about 10 minutes; each call costs one host round trip, nothing at
1000 iterations. A call is the same program with a smaller traced iteration count, so the train
state after two calls is the state after one call of their sum, bit for bit (tested): where the
cuts fall changes only the summation order of the progress metrics.

Layout of a checkpoint directory::

    settings.json         the settings the run was started with (trainer, env, a digest of the
                          task table, every argument that changes the trajectory)
    state.npz             the train state without its replay buffer (agent params, optimiser
                          states, target nets, log temperature, env states, running episode
                          returns, RNG key data, ring-buffer write position and fill, env steps),
                          the snapshots taken so far and the unfinished interval's metric sums.
                          Replaced atomically after the buffer segments: the commit point.
    buffer/A-B.npz        the replay-buffer entries of env steps [A, B) of every task (each
                          field ``[T, B - A, ...]``); step s's entry sits at ring position
                          ``s % buffer_size``.

A write adds only the buffer entries stored since the previous one: the per-task recipe's full
buffer is 40 x 1e6 transitions of 196 bytes, 7.8 GB on cheetah-vel, which rewriting at every
checkpoint would cost tens of GB of disk traffic over a run (and twice its size in disk space,
for the atomic swap). There a write is ``state.npz`` (36 MB of agents and optimiser states, 3.3
MB per snapshot taken, 0.2 s to write here) plus 16 KB of buffer per iteration since the last
write (about 0.1 GB per 10 minutes). Segments no longer needed (overwritten by the ring, or
written by a call whose commit never happened) are deleted after each commit. A kill at any
point leaves the last committed checkpoint readable.

A checkpoint made with other settings is an error (``jcomrl.checkpoint.CheckpointError``, one
line naming the directory and the differing settings), never overwritten: it can hold hours of
training. Settings that do not change the trajectory are not part of the key (the checkpoint
cadence, ``keep_replay``, the progress callback, and the device count of ``per_task_sac``'s
sharding: resumed on another count, a run continues correctly but only equals an uninterrupted
one up to float rounding).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jcomrl import atomic
from jcomrl.checkpoint import CheckpointError

FORMAT_VERSION = 1
SETTINGS_FILE = "settings.json"
STATE_FILE = "state.npz"
BUFFER_DIR = "buffer"
_SEGMENT = re.compile(r"^(\d{12})-(\d{12})\.npz$")
# Sums of ``run``'s stats that are not averaged over the updating iterations.
_COUNTS = ("return_sum", "episodes", "updated")


def digest(tree) -> str:
  """sha256 of a pytree's leaves (paths, dtypes, shapes and bytes), e.g. of a task table."""
  h = hashlib.sha256()
  for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
    x = np.asarray(_key_data(x))
    h.update(f"{jax.tree_util.keystr(path)}:{x.dtype}:{x.shape};".encode())
    h.update(np.ascontiguousarray(x).tobytes())
  return h.hexdigest()


def settings(algo: str, env, tasks, **kwargs) -> dict:
  """The settings a checkpoint is keyed by, as ``settings.json`` reads back (tuples as lists):
  the trainer, the env's identity and sizes, the task table's digest, and ``kwargs``."""
  env_info = {"name": env.name, "observation_size": int(env.observation_size),
              "action_size": int(env.action_size), "task_size": int(env.task_size),
              "episode_length": int(env.episode_length), "end_convention": env.end_convention,
              "physics": getattr(env, "physics", None)}
  out = {"format": FORMAT_VERSION, "algo": algo, "env": env_info, "tasks": digest(tasks),
         **kwargs}
  return json.loads(json.dumps(out))


def _is_key(x) -> bool:
  return jnp.issubdtype(getattr(x, "dtype", np.float32), jax.dtypes.prng_key)


def _key_data(x):
  return jax.random.key_data(x) if _is_key(x) else x


def flatten(tree, prefix: str) -> dict[str, np.ndarray]:
  """``{prefix + keystr(path): host array}``; typed PRNG keys are stored as their key data with
  their implementation's name under ``"keyimpl:" + name``."""
  out = {}
  for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
    name = prefix + jax.tree_util.keystr(path)
    if _is_key(x):
      out[f"keyimpl:{name}"] = np.asarray(str(jax.random.key_impl(x)))
    out[name] = np.asarray(jax.device_get(_key_data(x)))
  return out


def unflatten(template, arrays: dict[str, np.ndarray], prefix: str, lead: tuple = ()):
  """The inverse of :func:`flatten` into ``template``'s structure, each leaf checked against the
  template's shape (after ``lead`` extra leading axes) and dtype. Raises ``ValueError`` naming
  the first leaf that is missing or does not fit."""
  paths, treedef = jax.tree_util.tree_flatten_with_path(template)
  leaves = []
  for path, t in paths:
    name = prefix + jax.tree_util.keystr(path)
    if name not in arrays:
      raise ValueError(f"no entry {name}")
    x = arrays[name]
    if _is_key(t):
      impl = arrays.get(f"keyimpl:{name}")
      if impl is None:
        raise ValueError(f"{name} is a PRNG key without its implementation")
      x = jax.random.wrap_key_data(x, impl=str(impl))
    if tuple(x.shape) != tuple(lead) + tuple(np.shape(t)) or x.dtype != t.dtype:
      raise ValueError(f"{name} is {x.dtype}{list(x.shape)}, expected "
                       f"{t.dtype}{list(lead) + list(np.shape(t))}")
    leaves.append(x)
  expected = {prefix + jax.tree_util.keystr(p) for p, _ in paths}
  extra = sorted(k for k in arrays if k.startswith(prefix) and k not in expected)
  if extra:
    raise ValueError(f"unexpected entry {extra[0]}")
  return jax.tree_util.tree_unflatten(treedef, leaves)


@dataclasses.dataclass
class Resumed:
  """What a checkpoint restores: ``state`` (host arrays, buffer included), the ``snapshots``
  taken so far (``[(env steps, params)]``), and the unfinished interval's metric ``sums`` and
  ``seconds`` (None at an interval's end)."""

  state: Any
  snapshots: list
  sums: dict | None
  seconds: float


class Checkpoint:
  """One trainer's checkpoint directory (see the module docstring).

  Args:
    directory: the checkpoint directory (created on the first write).
    settings: the run's settings (:func:`settings`); a committed checkpoint with others is an
      error.
    every_seconds: the least time between two checkpoints inside a snapshot interval (one is
      always written at an interval's end).
    every_iterations: the most iterations one compiled call runs between two chances to write.
  """

  def __init__(self, directory: str, settings: dict, *, every_seconds: float = 600.0,
               every_iterations: int = 1000):
    if int(every_iterations) < 1:
      raise ValueError(f"checkpoint_iterations must be >= 1, got {every_iterations}")
    self.directory = os.path.abspath(directory)
    self.settings = json.loads(json.dumps(settings))
    self.every_seconds = float(every_seconds)
    self.every_iterations = int(every_iterations)
    self._chain: list[tuple[int, int]] = []  # committed buffer segments, oldest first
    self._committed = 0  # env steps per task whose buffer entries are on disk
    self._last_write = time.monotonic()
    self._settings_written = False

  @property
  def _buffer_dir(self) -> str:
    return os.path.join(self.directory, BUFFER_DIR)

  def _segment_file(self, a: int, b: int) -> str:
    return os.path.join(self._buffer_dir, f"{a:012d}-{b:012d}.npz")

  def _fail(self, why: str) -> CheckpointError:
    return CheckpointError(f"{self.directory}: {why}; delete that directory to start the "
                           "behaviour training afresh")

  def load(self, abstract_state, snapshot_template) -> Resumed | None:
    """The committed checkpoint, or None when there is none (a fresh start).

    Args:
      abstract_state: the train state's structure, shapes and dtypes (``jax.eval_shape`` of the
        trainer's ``init``); its ``buffer`` is ``[T, buffer_size, ...]``.
      snapshot_template: one snapshot's params (shapes and dtypes).
    Raises:
      CheckpointError: the checkpoint was made with other settings, or is incomplete.
    """
    state_file = os.path.join(self.directory, STATE_FILE)
    if not os.path.exists(state_file):
      return None
    try:
      with open(os.path.join(self.directory, SETTINGS_FILE)) as f:
        have = json.load(f)
    except (OSError, ValueError) as e:
      raise self._fail(f"unreadable {SETTINGS_FILE} of a behaviour checkpoint ({e})") from e
    if have != self.settings:
      keys = sorted(k for k in set(have) | set(self.settings)
                    if have.get(k) != self.settings.get(k))
      diff = "; ".join(f"{k}: saved {have.get(k)!r} vs asked {self.settings.get(k)!r}"
                       for k in keys)
      raise CheckpointError(
          f"{self.directory} holds a behaviour checkpoint made with other settings ({diff}); "
          "rerun with the same settings to resume it, or delete that directory to start afresh")
    try:
      with np.load(state_file) as z:
        arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
      raise self._fail(f"unreadable {STATE_FILE} ({e})") from e
    try:
      state = unflatten(abstract_state.replace(buffer=None), arrays, "state")
      steps = [int(s) for s in arrays["snapshot_steps"]]
      stacked = unflatten(snapshot_template, arrays, "snapshots", lead=(len(steps),))
    except (ValueError, KeyError) as e:
      raise self._fail(f"{STATE_FILE} does not fit this trainer's state ({e})") from e
    snapshots = [(s, jax.tree.map(lambda x, i=i: x[i], stacked)) for i, s in enumerate(steps)]
    sums = {k[len("sums/"):]: v for k, v in arrays.items() if k.startswith("sums/")} or None
    seconds = float(arrays.get("seconds", 0.0))
    buffer = self._load_buffer(abstract_state.buffer, int(state.steps))
    self._last_write = time.monotonic()
    return Resumed(state=state.replace(buffer=buffer), snapshots=snapshots, sums=sums,
                   seconds=seconds)

  def _segments(self) -> dict[int, list[int]]:
    """``{end: [starts]}`` of the segment files present."""
    out: dict[int, list[int]] = {}
    with contextlib.suppress(FileNotFoundError):
      for name in os.listdir(self._buffer_dir):
        m = _SEGMENT.match(name)
        if m:
          out.setdefault(int(m.group(2)), []).append(int(m.group(1)))
    return out

  def _load_buffer(self, abstract_buffer, steps: int):
    capacity = int(jax.tree.leaves(abstract_buffer)[0].shape[1])
    by_end = self._segments()
    chain, at, floor = [], steps, max(0, steps - capacity)
    while at > floor:  # walk back from the committed step over contiguous segments
      starts = [a for a in by_end.get(at, []) if a < at]
      if not starts:
        raise self._fail(f"the replay-buffer segment ending at env step {at} is missing")
      a = min(starts)
      chain.append((a, at))
      at = a
    chain.reverse()
    buffer = jax.tree.map(lambda t: np.zeros(t.shape, t.dtype), abstract_buffer)
    paths = jax.tree_util.tree_flatten_with_path(abstract_buffer)[0]
    for a, b in chain:  # oldest first: a newer entry overwrites the one the ring replaced
      file = self._segment_file(a, b)
      try:
        with np.load(file) as z:
          arrays = {k: z[k] for k in z.files}
        for (path, t), leaf in zip(paths, jax.tree.leaves(buffer)):
          name = jax.tree_util.keystr(path)
          x = arrays[name]
          if x.shape != (t.shape[0], b - a) + tuple(t.shape[2:]) or x.dtype != t.dtype:
            raise ValueError(f"{name} is {x.dtype}{list(x.shape)}")
          leaf[:, np.arange(a, b) % capacity] = x
      except (OSError, ValueError, EOFError, KeyError) as e:
        raise self._fail(f"unreadable replay-buffer segment {file} ({e})") from e
    self._chain, self._committed = chain, steps
    self._prune()
    return buffer

  def due(self) -> bool:
    """Whether a checkpoint inside an interval is due (``every_seconds`` since the last)."""
    return time.monotonic() - self._last_write >= self.every_seconds

  def save(self, state, snapshots: list, sums: dict | None = None, seconds: float = 0.0) -> None:
    """Writes the buffer entries stored since the last write, then commits ``state.npz``.

    Args:
      state: the train state (device arrays; read, not consumed).
      snapshots: ``[(env steps, params)]`` so far.
      sums, seconds: the unfinished interval's metric sums and run time (None at its end).
    """
    steps = int(state.steps)
    if not self._settings_written:  # (over)writes a settings file no committed state matched
      atomic.write_json(os.path.join(self.directory, SETTINGS_FILE), self.settings,
                        sort_keys=True)
      self._settings_written = True
    capacity = int(jax.tree.leaves(state.buffer)[0].shape[1])
    a = max(self._committed, steps - capacity)
    chain = [(x, y) for x, y in self._chain if y > steps - capacity]
    if steps > a:
      pos = jnp.asarray(np.arange(a, steps) % capacity)
      segment = jax.tree.map(lambda x: jnp.take(x, pos, axis=1), state.buffer)
      with atomic.atomic_file(self._segment_file(a, steps), "wb", suffix=".npz") as f:
        np.savez(f, **flatten(segment, ""))
      chain.append((a, steps))
    arrays = flatten(state.replace(buffer=None), "state")
    stack = lambda *xs: jnp.stack(xs) if _is_key(xs[0]) else np.stack([np.asarray(x) for x in xs])
    stacked = jax.tree.map(stack, *[p for _, p in snapshots])
    arrays.update(flatten(stacked, "snapshots"))
    arrays["snapshot_steps"] = np.asarray([s for s, _ in snapshots], np.int64)
    if sums is not None:
      arrays.update({f"sums/{k}": np.asarray(v) for k, v in sums.items()})
      arrays["seconds"] = np.asarray(seconds, np.float64)
    with atomic.atomic_file(os.path.join(self.directory, STATE_FILE), "wb", suffix=".npz") as f:
      np.savez(f, **arrays)
    self._chain, self._committed = chain, steps
    self._last_write = time.monotonic()
    self._prune()

  def _prune(self) -> None:
    """Deletes the segment files outside the committed chain and the temporary files of writes
    a kill interrupted."""
    keep = {os.path.basename(self._segment_file(a, b)) for a, b in self._chain}
    tmp = (f".{STATE_FILE}.", f".{SETTINGS_FILE}.")
    for directory, stale in ((self._buffer_dir, lambda n: n not in keep),
                             (self.directory, lambda n: n.startswith(tmp))):
      with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(directory):
          if stale(name):
            with contextlib.suppress(OSError):
              os.remove(os.path.join(directory, name))


def resume_step(directory: str) -> int | None:
  """The env steps per task of the checkpoint committed in ``directory`` (None: none there)."""
  try:
    with np.load(os.path.join(directory, STATE_FILE)) as z:
      return int(z["state.steps"])
  except (OSError, ValueError, EOFError, KeyError):
    return None


def metrics_of(sums: dict, seconds: float) -> dict:
  """The progress metrics of an interval from ``run``'s summed stats: update metrics averaged
  over the updating iterations, ``train/return`` the mean return of the episodes that ended."""
  n = np.maximum(sums["updated"], np.float32(1.0))
  out = {k: v / n for k, v in sums.items() if k not in _COUNTS}
  out["train/return"] = sums["return_sum"] / np.maximum(sums["episodes"], 1)
  out["train/seconds"] = seconds
  return out


def train_intervals(run: Callable, tasks, hp, *, warmup_steps: int, seg: int,
                    num_snapshots: int, num_envs: int, fresh: Callable[[], Any],
                    place: Callable[[Any], Any], snapshot: Callable[[Any], Any],
                    abstract_state=None, snapshot_template=None,
                    progress_fn: Callable[[int, dict], None] | None = None,
                    checkpoint: Checkpoint | None = None,
                    warm_iters: int = 0) -> tuple[Any, list]:
  """Runs the ``num_snapshots - 1`` intervals of ``seg`` iterations (the first one
  ``warm_iters`` longer: a warm-up that comes before the intervals, ``per_task_sac``'s
  ``intervals_after_warmup``); returns the final state and the snapshots ``[(env steps per task,
  params)]``, the untrained one first.

  Args:
    run: the trainer's compiled ``run`` (donates its state; returns summed stats).
    fresh: builds the initial (placed) train state; place: puts a restored host state on the
      devices as ``fresh`` would.
    snapshot: a state's snapshot params (host arrays).
    abstract_state, snapshot_template: what :meth:`Checkpoint.load` restores into.
    progress_fn: ``progress_fn(env steps per task, metrics_of(...))`` after each interval.
    checkpoint: where to write (and resume from); None: one call per interval, nothing written.
  """
  resumed = checkpoint.load(abstract_state, snapshot_template) if checkpoint else None
  if resumed is None:
    state = fresh()
    snapshots, sums, seconds = [(0, snapshot(state))], None, 0.0
  else:
    snapshots, sums, seconds = resumed.snapshots, resumed.sums, resumed.seconds
    state = place(resumed.state)
    del resumed  # the host copy of the buffer (gigabytes at the papers' scale)
  piece = min(seg, checkpoint.every_iterations) if checkpoint else seg
  warmup = jnp.asarray(warmup_steps, jnp.int32)
  for interval in range(len(snapshots) - 1, num_snapshots - 1):
    start = 0 if interval == 0 else warm_iters + interval * seg
    length = seg + (warm_iters if interval == 0 else 0)
    done = int(state.steps) // num_envs - start  # iterations of this interval done
    if not 0 <= done < length:
      raise checkpoint._fail(f"its {len(snapshots)} snapshots do not fit its env step "
                             f"{int(state.steps)}")
    while done < length:
      n = min(piece, length - done)
      t0 = time.time()
      state, stats = run(state, tasks, hp, warmup, jnp.asarray(n, jnp.int32))
      stats = jax.tree.map(np.asarray, stats)
      seconds += time.time() - t0
      sums = stats if sums is None else {k: sums[k] + v for k, v in stats.items()}
      done += n
      if checkpoint is not None and done < length and checkpoint.due():
        checkpoint.save(state, snapshots, sums, seconds)
    snapshots.append((int(state.steps), snapshot(state)))
    if checkpoint is not None:
      checkpoint.save(state, snapshots)
    if progress_fn is not None:
      progress_fn(int(state.steps), metrics_of(sums, seconds))
    sums, seconds = None, 0.0
  return state, snapshots
