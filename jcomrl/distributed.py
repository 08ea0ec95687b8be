"""Multi-process runs on JAX's own runtime (multi-controller JAX): start-up and the host side.

Every process runs the same program. ``initialize`` (before any other JAX call) joins the
processes; ``jax.devices()`` then lists every process's devices, the learner's seed mesh
(``jcomrl.algos.learner.seed_sharding``) spans them, and the train state is one global array
per leaf, each process holding its seeds' shards. Inputs every process holds whole (the
dataset, the hyper-parameters, the task pool) become replicated global arrays (``replicate``);
host reads of a sharded result go through ``to_host`` (a gather over the processes). Files
are written by process 0 only (``is_main``), checkpoints by all processes together (orbax's
multi-host path). With one process every helper is the single-process identity, so a
single-process run is unchanged.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, auto: bool = False,
               initialization_timeout: int = 300) -> None:
  """Joins this process to a multi-process run (``jax.distributed.initialize``).

  Args:
    coordinator_address: ``host:port`` of process 0's coordinator service.
    num_processes / process_id: the run's process count and this process's index.
    auto: let JAX detect the settings not given (SLURM, Open MPI, mpi4py, Cloud TPU, ...).
      ``auto=True`` with no settings is ``jax.distributed.initialize()`` with no arguments.
    initialization_timeout: seconds to wait for every process to connect.

  Must run before any other JAX call. CPU processes exchange data with JAX's default CPU
  collectives (gloo in jax 0.10/0.11).
  """
  given = (coordinator_address, num_processes, process_id)
  if not auto and None in given:
    raise ValueError("a multi-process run needs coordinator_address, num_processes and "
                     f"process_id (got {given}); or auto=True to detect them")
  jax.distributed.initialize(coordinator_address, num_processes, process_id,
                             initialization_timeout=initialization_timeout)


def is_multiprocess() -> bool:
  return jax.process_count() > 1


def is_main() -> bool:
  """Whether this process writes the run's files and logs (process 0)."""
  return jax.process_index() == 0


def ordered_devices() -> list:
  """Every device of the run, process by process (each process's devices contiguous)."""
  return sorted(jax.devices(), key=lambda d: (d.process_index, d.id))


def replicate(tree: Any, mesh: Mesh | None) -> Any:
  """``tree`` as global arrays replicated over ``mesh`` (every process passes the same
  values); unchanged with one process or without a mesh."""
  if not is_multiprocess() or mesh is None:
    return tree
  sharding = NamedSharding(mesh, PartitionSpec())
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def to_host(tree: Any) -> Any:
  """Numpy copies of ``tree``'s arrays, whole on every process (a collective when arrays span
  several processes: every process must call it); ``jax.device_get`` with one process."""
  if not is_multiprocess():
    return jax.device_get(tree)
  return jax.tree.map(
      lambda x: (np.asarray(multihost_utils.process_allgather(x, tiled=True))
                 if isinstance(x, jax.Array) and not x.is_fully_addressable
                 else np.asarray(jax.device_get(x))), tree)


def broadcast_from_main(value: Any) -> Any:
  """Process 0's ``value`` (a pytree of numbers or arrays) on every process (a collective)."""
  if not is_multiprocess():
    return value
  return jax.tree.map(np.asarray, multihost_utils.broadcast_one_to_all(value))


def all_ok(ok):
  """Whether ``ok`` (a bool, or a list of bools compared item by item) holds on every process
  (a collective): a failure on one process can then stop every process instead of leaving
  the others waiting in a collective."""
  flags = np.asarray(ok, bool)
  if is_multiprocess():
    gathered = multihost_utils.process_allgather(flags.astype(np.int32))
    flags = np.all(np.asarray(gathered).reshape((-1,) + flags.shape) != 0, axis=0)
  return flags.tolist()
