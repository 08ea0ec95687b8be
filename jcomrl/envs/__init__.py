"""Multi-task environments. ``make(name, **overrides)`` builds one by registered name."""

from __future__ import annotations

from typing import Callable

from jcomrl.envs.base import EnvState, Task, TaskEnv, evenly_spaced_split, split_tasks

_REGISTRY: dict[str, Callable[..., TaskEnv]] = {}


def register(name: str, factory: Callable[..., TaskEnv]) -> None:
  """Registers an env factory under ``name`` (overrides are passed as keyword arguments)."""
  if name in _REGISTRY:
    raise ValueError(f"environment {name!r} is already registered")
  _REGISTRY[name] = factory


def registered() -> list[str]:
  return sorted(_REGISTRY)


def make(name: str, **overrides) -> TaskEnv:
  """Builds the env ``name``; unknown names and unknown overrides raise a ``ValueError``."""
  if name not in _REGISTRY:
    raise ValueError(f"unknown environment {name!r}; registered: {', '.join(registered())}")
  try:
    return _REGISTRY[name](**overrides)
  except TypeError as e:
    raise ValueError(f"bad overrides {overrides!r} for environment {name!r}: {e}") from e


def _register_builtin() -> None:
  from jcomrl.envs import point_robot

  register("point_robot", point_robot.PointRobot)
  register("sparse_point_robot", lambda **kw: point_robot.PointRobot(sparse=True, **kw))

  # MuJoCo (MJX) families: the module (and mujoco) is imported only when the env is made.
  def _lazy(module: str, cls: str) -> Callable[..., TaskEnv]:
    def factory(**overrides) -> TaskEnv:
      import importlib

      return getattr(importlib.import_module(f"jcomrl.envs.{module}"), cls)(**overrides)

    return factory

  register("cheetah_vel", _lazy("half_cheetah", "HalfCheetahVel"))
  register("cheetah_dir", _lazy("half_cheetah", "HalfCheetahDir"))
  register("ant_dir", _lazy("ant", "AntDir"))
  register("hopper_param", _lazy("hopper", "HopperParam"))
  register("walker_param", _lazy("walker", "WalkerParam"))


_register_builtin()

__all__ = ["EnvState", "Task", "TaskEnv", "make", "register", "registered", "split_tasks",
           "evenly_spaced_split"]
