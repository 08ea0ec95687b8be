"""Multi-task environments. ``make(name, physics="auto", **overrides)`` builds one by name.

``physics`` picks the physics backend of the MuJoCo families (``"c"``: C MuJoCo through a
batched host callback, ``"mjx"``: MJX inside the compiled program, ``"auto"``: ``"c"`` when
JAX's default backend is the CPU, else ``"mjx"``); pure-JAX envs (point robot) have no physics
engine and accept any of the three.
"""

from __future__ import annotations

from typing import Callable

from jcomrl.envs.base import EnvState, Task, TaskEnv, evenly_spaced_split, split_tasks

_REGISTRY: dict[str, Callable[..., TaskEnv]] = {}
_PHYSICS_ENVS: set[str] = set()
PHYSICS = ("auto", "c", "mjx")


def register(name: str, factory: Callable[..., TaskEnv], physics: bool = False) -> None:
  """Registers an env factory under ``name`` (overrides are passed as keyword arguments).

  ``physics=True``: the factory takes the ``physics`` backend argument of ``make``.
  """
  if name in _REGISTRY:
    raise ValueError(f"environment {name!r} is already registered")
  _REGISTRY[name] = factory
  if physics:
    _PHYSICS_ENVS.add(name)


def registered() -> list[str]:
  return sorted(_REGISTRY)


def make(name: str, physics: str = "auto", **overrides) -> TaskEnv:
  """Builds the env ``name``; unknown names, backends and overrides raise a ``ValueError``."""
  if name not in _REGISTRY:
    raise ValueError(f"unknown environment {name!r}; registered: {', '.join(registered())}")
  if physics not in PHYSICS:
    raise ValueError(f"unknown physics backend {physics!r}; choose from {PHYSICS}")
  if name in _PHYSICS_ENVS:
    overrides["physics"] = physics
  try:
    return _REGISTRY[name](**overrides)
  except TypeError as e:
    raise ValueError(f"bad overrides {overrides!r} for environment {name!r}: {e}") from e


def _register_builtin() -> None:
  from jcomrl.envs import point_robot

  register("point_robot", point_robot.PointRobot)
  register("sparse_point_robot", lambda **kw: point_robot.PointRobot(sparse=True, **kw))

  # MuJoCo families (C MuJoCo or MJX physics): the module (and mujoco) is imported only when
  # the env is made.
  def _lazy(module: str, cls: str) -> Callable[..., TaskEnv]:
    def factory(**overrides) -> TaskEnv:
      import importlib

      return getattr(importlib.import_module(f"jcomrl.envs.{module}"), cls)(**overrides)

    return factory

  register("cheetah_vel", _lazy("half_cheetah", "HalfCheetahVel"), physics=True)
  register("cheetah_dir", _lazy("half_cheetah", "HalfCheetahDir"), physics=True)
  register("ant_dir", _lazy("ant", "AntDir"), physics=True)
  register("hopper_param", _lazy("hopper", "HopperParam"), physics=True)
  register("walker_param", _lazy("walker", "WalkerParam"), physics=True)


_register_builtin()

__all__ = ["PHYSICS", "EnvState", "Task", "TaskEnv", "make", "register", "registered",
           "split_tasks", "evenly_spaced_split"]
