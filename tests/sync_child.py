"""Runs an ``experiments`` entry point in a child process that reports one event on a pipe.

The lock and kill tests synchronise on these events instead of sleeping or polling files::

    python tests/sync_child.py EVENT READY_FD HOLD_FD MODULE [ARGS...]

``EVENT`` is ``lock`` (right after the run directory's lock is taken), ``checkpoint`` (right
after the first checkpoint is saved, ``jcomrl.checkpoint.save`` being synchronous) or
``behaviour_checkpoint`` (right after a SAC behaviour trainer's first checkpoint is committed,
``jcomrl.datagen.resumable.Checkpoint.save``; the step reported is its env steps per task). At the
first such event the child writes ``<event> <pid> <step>`` and a newline to the inherited file
descriptor ``READY_FD`` and then blocks reading ``HOLD_FD`` until the parent writes a byte or
closes it (or kills the child), so the parent acts while the child is known to be at that
point. ``MODULE`` runs as ``python -m MODULE ARGS`` would. The parent side is :class:`SyncChild`
(``from sync_child import SyncChild`` in a test module).
"""

import os
import runpy
import subprocess
import sys


class SyncChild:
  """A ``python -m MODULE ARGS`` child (``tests/sync_child.py``) that stops at its first
  ``event`` ("lock", "checkpoint" or "behaviour_checkpoint") until :meth:`release`; :meth:`wait_event` blocks on the
  child's pipe (no sleeps, no polling) and returns ``(pid, step)``, or None when the child
  ended without reaching the event."""

  def __init__(self, event, module, args, *, cwd, env, stdout=subprocess.PIPE,
               stderr=subprocess.PIPE):
    self._ready_r, ready_w = os.pipe()
    hold_r, self._hold_w = os.pipe()
    script = os.path.abspath(__file__)
    self.proc = subprocess.Popen(
        [sys.executable, script, event, str(ready_w), str(hold_r), module, *args], cwd=cwd,
        env=env, stdout=stdout, stderr=stderr, text=True, pass_fds=(ready_w, hold_r))
    os.close(ready_w)
    os.close(hold_r)
    self._buf = b""

  def wait_event(self):
    while not self._buf.endswith(b"\n"):
      chunk = os.read(self._ready_r, 256)  # blocks; b"" once the child has exited
      if not chunk:
        return None
      self._buf += chunk
    _, pid, step = self._buf.decode().split()
    return int(pid), int(step)

  def release(self):
    if self._hold_w is not None:
      os.close(self._hold_w)
      self._hold_w = None

  def close(self):
    self.release()
    os.close(self._ready_r)


def main() -> None:
  event, ready, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
  module, args = sys.argv[4], sys.argv[5:]
  fired = []

  def report(step=-1):
    if fired:
      return
    fired.append(True)
    os.write(ready, f"{event} {os.getpid()} {step}\n".encode())
    os.read(hold, 1)  # returns when the parent writes or closes its end

  if event == "lock":
    # experiments first, as under `python -m experiments.<cmd>` (it quiets MJX's Warp notices)
    import experiments  # noqa: F401
    from jcomrl.run import RunLock
    acquire = RunLock.acquire

    def acquire_and_report(self):
      out = acquire(self)
      report()
      return out

    RunLock.acquire = acquire_and_report
  elif event == "checkpoint":
    from jcomrl import checkpoint
    save = checkpoint.save

    def save_and_report(directory, step, *a, **kw):
      save(directory, step, *a, **kw)
      report(step)

    checkpoint.save = save_and_report
  elif event == "behaviour_checkpoint":
    from jcomrl.datagen import resumable
    save_behaviour = resumable.Checkpoint.save

    def save_behaviour_and_report(self, state, *a, **kw):
      save_behaviour(self, state, *a, **kw)
      report(int(state.steps))

    resumable.Checkpoint.save = save_behaviour_and_report
  else:
    raise SystemExit(f"unknown event {event!r}")
  sys.argv = [module, *args]
  runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
  main()
