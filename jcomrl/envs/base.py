"""The multi-task environment interface every env family follows.

A ``TaskEnv`` is a stateless description of a *family* of MDPs. The task (goal, target velocity,
physics scales...) is an explicit argument of ``reset`` and ``step``, never stored in the env
object, so one compiled step serves every task and ``jax.vmap`` over tasks runs different MDPs in
one call::

    env = jcomrl.envs.make("point_robot")
    train, test = env.benchmark_tasks()            # Task pytrees with a leading task axis
    states = jax.vmap(env.reset)(keys, test)       # one state per task
    states = jax.vmap(env.step)(states, actions, test)

Conventions:
  * Actions are in [-1, 1]^action_size; each env rescales internally.
  * ``EnvState.done`` is 1.0 when the episode ends (true termination *or* time limit);
    ``EnvState.truncation`` is 1.0 when it ended only because of the time limit. The true
    termination flag is ``terminal = done * (1 - truncation)``. ``obs`` after a done step is the
    real final observation: envs never auto-reset (see jax-rl-codebases.md on brax auto-reset).
  * Stepping a state that is already done is allowed and keeps counting; callers reset.
  * ``TaskEnv.end_convention`` says what an early end (a fall) means downstream, per env variant:
    ``"true_terminal"`` (FOCAL/CSRO lineage, the default): the stored ``terminal`` is the true
    termination flag (bootstrapping stops there) and an evaluation episode counts rewards up to
    and including its first ``done``. ``"no_terminal"`` (UNICORN/CORRO lineage): the stored
    ``terminal`` is always 0 (an early end is stored as an episode boundary, ``timeout = 1``, so
    the learner bootstraps through it) and an evaluation episode sums all ``episode_length``
    rewards, stepping on past an early end without a reset. The env's own ``EnvState.done`` /
    ``terminal`` are the same under both conventions (behaviour training and collection
    resets use them).
"""

from __future__ import annotations

import abc
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

Task = Any  # a pytree of arrays; a batch of tasks has a leading axis on every leaf.

END_CONVENTIONS = ("true_terminal", "no_terminal")


def check_end_convention(value: str) -> str:
  """Returns ``value`` if it is one of ``END_CONVENTIONS``; raises a one-line ``ValueError``."""
  if value not in END_CONVENTIONS:
    raise ValueError(f"end_convention must be one of {END_CONVENTIONS}, got {value!r}")
  return value


@struct.dataclass
class EnvState:
  """State of one environment instance.

  Attributes:
    physics: env-specific pytree (positions, MJX data...).
    obs: ``[observation_size]`` current observation.
    reward: scalar reward of the last step (0 after reset).
    done: 1.0 if the episode has ended (terminal or time limit).
    truncation: 1.0 if it ended because of the time limit only.
    step_count: int32 number of steps since reset.
    info: dict of extra scalars (e.g. ``x_velocity``) for tests and diagnostics.
  """

  physics: Any
  obs: jnp.ndarray
  reward: jnp.ndarray
  done: jnp.ndarray
  truncation: jnp.ndarray
  step_count: jnp.ndarray
  info: dict = struct.field(default_factory=dict)

  @property
  def terminal(self) -> jnp.ndarray:
    return self.done * (1.0 - self.truncation)


class TaskEnv(abc.ABC):
  """A family of MDPs indexed by a task pytree. Subclasses are pure and vmappable."""

  name: str = "task_env"
  # See the module docstring; variants of the UNICORN/CORRO lineage override it.
  end_convention: str = "true_terminal"

  @property
  @abc.abstractmethod
  def observation_size(self) -> int:
    ...

  @property
  @abc.abstractmethod
  def action_size(self) -> int:
    ...

  @property
  @abc.abstractmethod
  def episode_length(self) -> int:
    ...

  @property
  @abc.abstractmethod
  def task_size(self) -> int:
    """Length of ``task_vector(task)``."""

  @abc.abstractmethod
  def sample_tasks(self, key: jax.Array, n: int) -> Task:
    """``n`` tasks from the training distribution (leading axis ``n``)."""

  @abc.abstractmethod
  def all_benchmark_tasks(self) -> Task:
    """All deterministic benchmark tasks stacked in id order (leading axis = num tasks)."""

  @abc.abstractmethod
  def benchmark_split(self) -> dict[str, list[int]]:
    """``{"train": ids, "test": ids}`` indexing ``all_benchmark_tasks()``; never data-dependent."""

  def ood_tasks(self, num: int) -> Task:
    """``num`` deterministic tasks *outside* the training task range (extrapolation tests).

    Families with a natural outside (a velocity above the trained range, a goal off the trained
    arc) override this; the default raises ``NotImplementedError``.
    """
    raise NotImplementedError(
        f"environment {self.name!r} ({type(self).__name__}) defines no out-of-distribution tasks "
        "(TaskEnv.ood_tasks); the task_ood protocol is available for point_robot, "
        "sparse_point_robot, cheetah_vel and ant_dir trained on an arc")

  def stored_flags(self, state: EnvState) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(terminal, timeout)`` stored for the transition that produced ``state``.

    ``"true_terminal"``: the true termination and the time-limit truncation. ``"no_terminal"``:
    terminal 0 and every end (fall or time limit) a ``timeout`` episode boundary.
    """
    if self.end_convention == "no_terminal":
      return jnp.zeros_like(state.done), state.done
    return state.terminal, state.truncation

  def benchmark_tasks(self) -> tuple[Task, Task]:
    """The deterministic default benchmark: ``(train_tasks, test_tasks)``."""
    return split_tasks(self.all_benchmark_tasks(), self.benchmark_split())

  @abc.abstractmethod
  def task_vector(self, task: Task) -> jnp.ndarray:
    """Flat task parameters ``[task_size]`` of one task (vmap for a batch)."""

  @abc.abstractmethod
  def reset(self, key: jax.Array, task: Task) -> EnvState:
    ...

  @abc.abstractmethod
  def step(self, state: EnvState, action: jnp.ndarray, task: Task) -> EnvState:
    ...

  def _time_limit(self, step_count: jnp.ndarray, terminal: jnp.ndarray):
    """Returns ``(done, truncation)`` from the new step count and the true termination flag."""
    timeout = (step_count >= self.episode_length).astype(jnp.float32)
    terminal = terminal.astype(jnp.float32)
    done = jnp.maximum(terminal, timeout)
    truncation = timeout * (1.0 - terminal)
    return done, truncation


def split_tasks(all_tasks: Task, split: dict[str, list[int]]) -> tuple[Task, Task]:
  """Gathers ``(train, test)`` task pytrees from the stacked benchmark tasks by id."""
  train_ids = jnp.asarray(split["train"], dtype=jnp.int32)
  test_ids = jnp.asarray(split["test"], dtype=jnp.int32)
  take = lambda ids: jax.tree.map(lambda x: x[ids], all_tasks)
  return take(train_ids), take(test_ids)


def evenly_spaced_split(num_tasks: int, num_test: int) -> dict[str, list[int]]:
  """CSRO's deterministic interpolation split: test ids evenly spaced, starting at gap // 2.

  With 40 tasks and 10 test tasks the gap is ``num_train // num_test + 1 = 4`` and the test ids
  are 2, 6, 10, ..., 38 (``rlkit`` ``launch_experiment.py`` convention).
  """
  num_train = num_tasks - num_test
  if num_test <= 0 or num_train <= 0:
    raise ValueError(f"need 0 < num_test < num_tasks, got num_tasks={num_tasks}, num_test={num_test}")
  gap = num_train // num_test + 1
  test = [gap // 2 + gap * i for i in range(num_test)]
  if test[-1] >= num_tasks:
    raise ValueError(f"cannot space {num_test} test tasks among {num_tasks}")
  train = [i for i in range(num_tasks) if i not in set(test)]
  return {"train": train, "test": test}
