"""Resumable behaviour training (jcomrl.datagen.resumable): a per-task or shared SAC run killed at
any point and started again with the same settings ends with the snapshots, replay buffers and step
counts of an uninterrupted run, bit for bit (C-MuJoCo env states included); a dataset work
directory resumes a killed behaviour phase to the same dataset; a checkpoint made with other
settings is refused, untouched."""

import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from jcomrl import envs
from jcomrl.checkpoint import CheckpointError
from jcomrl.datagen import per_task_sac, pipeline, resumable, shared_sac
from jcomrl.logging import Progress
from jcomrl.data.dataset import load_dataset
from sync_child import SyncChild

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASK_IDS = np.array([0, 13, 26, 39])
TRAINERS = {"sac_per_task": per_task_sac.train_sac_per_task,
            "sac_shared": shared_sac.train_sac_shared}
# 240 env steps per task, 2 envs: 3 snapshot intervals of 40 iterations (80 env steps).
SMALL = {"num_timesteps": 240, "num_snapshots": 4, "seed": 3, "hidden_sizes": (16,),
         "num_envs": 2, "batch_size": 16, "warmup_steps": 40, "updates_per_iteration": 2,
         "discount": 0.9, "learn_entropy": True, "actor_lr": 1e-3, "critic_lr": 1e-3}
# Compiled calls of at most 15 iterations (15, 15, 10 per interval), a checkpoint after each.
CKPT = {"checkpoint_seconds": 0.0, "checkpoint_iterations": 15}


class Killed(Exception):
  pass


@pytest.fixture(scope="module")
def tasks(point_env):
  return jax.tree.map(lambda x: x[TASK_IDS], point_env.all_benchmark_tasks())


def assert_same(a, b):
  leaves_a, tree_a = jax.tree.flatten(a)
  leaves_b, tree_b = jax.tree.flatten(b)
  assert tree_a == tree_b
  for x, y in zip(leaves_a, leaves_b, strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def die_after_save(monkeypatch, count):
  """Makes the ``count``-th checkpoint write raise ``Killed`` once it has committed (a kill right
  after it); returns the list of the env steps of every write."""
  saved, save = [], resumable.Checkpoint.save

  def save_then_die(self, state, *a, **kw):
    save(self, state, *a, **kw)
    saved.append(int(state.steps))
    if len(saved) == count:
      raise Killed

  monkeypatch.setattr(resumable.Checkpoint, "save", save_then_die)
  return saved


@pytest.mark.parametrize("algo", sorted(TRAINERS))
def test_a_killed_run_resumes_to_the_uninterrupted_agents(algo, point_env, tasks, tmp_path,
                                                          monkeypatch):
  train = TRAINERS[algo]
  ref, ref_replay = train(point_env, tasks, keep_replay=True, **SMALL)
  ckpt = str(tmp_path / "ckpt")
  run = lambda **kw: train(point_env, tasks, keep_replay=True, checkpoint_dir=ckpt, **CKPT,
                           **SMALL, **kw)

  # Killed right after a checkpoint inside the second interval.
  saved = die_after_save(monkeypatch, 4)
  with pytest.raises(Killed):
    run()
  monkeypatch.undo()
  assert saved == [30, 60, 80, 110]  # env steps per task; 80 ends the first interval
  assert resumable.resume_step(ckpt) == 110
  # Resumed, then killed in the progress callback that ends the second interval.
  seen = {}

  def progress(step, metrics):
    seen[step] = metrics
    if step == 160:
      raise Killed

  with pytest.raises(Killed):
    run(progress_fn=progress)
  assert sorted(seen) == [160]  # the first interval's callback is not repeated
  # Resumed again: the third interval only.
  policies, replay = run(progress_fn=progress)
  assert sorted(seen) == [160, 240]

  assert policies.steps.tolist() == ref.steps.tolist() == [0, 80, 160, 240]
  assert_same(policies.params, ref.params)
  assert_same(replay.transitions, ref_replay.transitions)
  assert replay.num_envs == ref_replay.num_envs == 2
  # The resumed intervals report what an uninterrupted run cut the same way reports: the second
  # interval's sums were carried over its kill.
  whole = {}
  _, _ = train(point_env, tasks, keep_replay=True, checkpoint_dir=str(tmp_path / "whole"), **CKPT,
               **SMALL, progress_fn=lambda s, m: whole.__setitem__(s, m))
  for step in (160, 240):
    assert set(seen[step]) == set(whole[step])
    for k in seen[step]:
      if k != "train/seconds":
        np.testing.assert_array_equal(seen[step][k], whole[step][k], err_msg=k)


def test_the_ring_buffer_resumes_after_wrapping(point_env, tasks, tmp_path, monkeypatch):
  """A 50-entry ring (the run stores 240 steps per task): the entries the ring still holds come
  back from the segments, and only the segments it needs stay on disk."""
  kw = dict(SMALL, buffer_size=50)
  ref = per_task_sac.train_sac_per_task(point_env, tasks, **kw)
  ckpt = str(tmp_path / "ckpt")
  saved = die_after_save(monkeypatch, 6)
  with pytest.raises(Killed):
    per_task_sac.train_sac_per_task(point_env, tasks, checkpoint_dir=ckpt, **CKPT, **kw)
  monkeypatch.undo()
  assert saved[-1] == 160
  assert sorted(os.listdir(os.path.join(ckpt, "buffer"))) == [
      "000000000110-000000000140.npz", "000000000140-000000000160.npz"]
  out = per_task_sac.train_sac_per_task(point_env, tasks, checkpoint_dir=ckpt, **CKPT, **kw)
  assert_same(out.params, ref.params)
  assert sorted(os.listdir(os.path.join(ckpt, "buffer"))) == [
      "000000000190-000000000220.npz", "000000000220-000000000240.npz"]


def test_a_checkpoint_of_other_settings_is_refused_untouched(point_env, tasks, tmp_path):
  ckpt = str(tmp_path / "ckpt")
  kw = dict(SMALL, num_timesteps=80, num_snapshots=2)
  first = shared_sac.train_sac_shared(point_env, tasks, checkpoint_dir=ckpt, **kw)
  with open(os.path.join(ckpt, resumable.STATE_FILE), "rb") as f:
    committed = f.read()
  for change, detail in (({"seed": 4}, "seed: saved 3 vs asked 4"),
                         ({"discount": 0.99}, "discount: saved 0.9 vs asked 0.99")):
    with pytest.raises(CheckpointError, match=f"{ckpt} holds a behaviour checkpoint made with "
                                              f"other settings \\({detail}\\); rerun"):
      shared_sac.train_sac_shared(point_env, tasks, checkpoint_dir=ckpt, **dict(kw, **change))
  with pytest.raises(CheckpointError, match="algo: saved 'sac_shared' vs asked 'sac_per_task'"):
    per_task_sac.train_sac_per_task(point_env, tasks, checkpoint_dir=ckpt, **kw)
  with open(os.path.join(ckpt, resumable.STATE_FILE), "rb") as f:
    assert f.read() == committed
  # The same settings on a finished checkpoint: its snapshots, nothing trained.
  again = shared_sac.train_sac_shared(point_env, tasks, checkpoint_dir=ckpt, **kw,
                                      progress_fn=lambda *a: pytest.fail("trained again"))
  assert_same(again.params, first.params)
  # Settings without a committed state (killed before its first write) are simply replaced.
  fresh = str(tmp_path / "fresh")
  os.makedirs(fresh)
  with open(os.path.join(fresh, resumable.SETTINGS_FILE), "w") as f:
    f.write('{"seed": 99}')
  shared_sac.train_sac_shared(point_env, tasks, checkpoint_dir=fresh, **kw)
  with open(os.path.join(fresh, resumable.SETTINGS_FILE)) as f, \
       open(os.path.join(ckpt, resumable.SETTINGS_FILE)) as g:
    assert f.read() == g.read()


@pytest.mark.parametrize("physics", ["c", "mjx"])
def test_typed_keys_and_mujoco_env_states_round_trip(physics, tmp_path):
  """A typed PRNG key array and the MuJoCo physics states come back exactly, with their dtypes:
  C MuJoCo's (qpos, qvel, the solver warmstart, the body positions the cheetah reads) and the
  whole ``mjx.Data`` (float, int and bool leaves)."""
  env = envs.make("cheetah_vel", physics=physics)
  tasks = jax.tree.map(lambda x: x[:2], env.all_benchmark_tasks())
  cfg = per_task_sac.PerTaskSACConfig(hidden_sizes=(4,), num_envs=2, buffer_size=4)
  init, _ = per_task_sac.make_trainer(env, cfg)
  keys = jax.random.split(jax.random.key(0), 2)
  state = init(keys, tasks, 0.1)
  # non-trivial warmstarts, positions, counters
  state = state.replace(env=jax.tree.map(
      lambda x: (x + np.arange(x.size).reshape(x.shape) / 4).astype(x.dtype), state.env))
  fields = [jax.tree_util.keystr(p) for p, _ in
            jax.tree_util.tree_flatten_with_path(state.env.physics)[0]]
  if physics == "c":
    assert fields == [".qpos", ".qvel", ".qacc_warmstart", ".xpos"]
  else:
    assert {".qpos", ".qvel", ".qacc_warmstart", ".time"} <= set(fields)
  ckpt = resumable.Checkpoint(str(tmp_path / "c"), {"test": 1})
  snapshot = {"actor": state.agents.actor, "key": keys}
  ckpt.save(state, [(0, snapshot)])
  back = resumable.Checkpoint(str(tmp_path / "c"), {"test": 1}).load(
      jax.eval_shape(init, keys, tasks, 0.1), snapshot)
  assert_same(back.state, jax.device_get(state))
  (step, snap), = back.snapshots
  assert step == 0 and snap["key"].dtype == keys.dtype
  np.testing.assert_array_equal(jax.random.key_data(snap["key"]), jax.random.key_data(keys))


@pytest.mark.slow  # compiles the cheetah training program twice (~45 s on 2 cores)
def test_a_c_mujoco_run_resumes_bit_for_bit(tmp_path):
  env = envs.make("cheetah_vel", physics="c")
  tasks = jax.tree.map(lambda x: x[:2], env.all_benchmark_tasks())
  kw = dict(num_timesteps=12, num_snapshots=3, seed=0, hidden_sizes=(8,), num_envs=2,
            batch_size=4, warmup_steps=4, keep_replay=True)
  ref, ref_replay = per_task_sac.train_sac_per_task(env, tasks, **kw)
  ckpt = str(tmp_path / "ckpt")

  def die(step, metrics):
    raise Killed

  with pytest.raises(Killed):
    per_task_sac.train_sac_per_task(env, tasks, checkpoint_dir=ckpt, progress_fn=die,
                                    checkpoint_seconds=0.0, checkpoint_iterations=1, **kw)
  assert resumable.resume_step(ckpt) == 6
  out, replay = per_task_sac.train_sac_per_task(env, tasks, checkpoint_dir=ckpt,
                                                checkpoint_seconds=0.0,
                                                checkpoint_iterations=1, **kw)
  assert_same(out.params, ref.params)
  assert_same(replay.transitions, ref_replay.transitions)


PIPELINE = dict(quality="replay", seed=0, return_episodes=1, behaviour_kwargs={
    "algo": "sac_per_task", "num_snapshots": 3, "num_timesteps": 160, "num_envs": 2,
    "hidden_sizes": (16,), "batch_size": 16, "warmup_steps": 40, "discount": 0.9})


def test_the_pipeline_resumes_a_killed_behaviour_phase(tmp_path):
  ref_data, ref_policies, ref_meta = pipeline.generate("point_robot", {}, **PIPELINE)
  work = str(tmp_path / "work")
  ckpt = os.path.join(work, pipeline.BEHAVIOUR_CHECKPOINT_DIR)

  def die(step, metrics):
    raise Killed

  with pytest.raises(Killed):  # after the first interval's checkpoint
    pipeline.generate("point_robot", {}, work_dir=work, progress=die, **PIPELINE)
  assert resumable.resume_step(ckpt) == 80
  assert not os.path.exists(os.path.join(work, pipeline.BEHAVIOUR_DIR))
  # The killed process's training time so far (to its first interval's end) is on disk.
  before = pipeline.read_behaviour_seconds(work)
  assert before is not None and before > 0
  messages = []
  data, policies, meta = pipeline.generate("point_robot", {}, work_dir=work,
                                           message=messages.append, **PIPELINE)
  assert any(m.startswith(f"resuming sac_per_task behaviour training from env step 80 per task "
                          f"({ckpt}; ") for m in messages), messages
  # experiments.collect reads the resume step from that message: its ETA uses this process's
  # rate only (60 s from step 80 to 120 of 240: 120 steps left at 40 steps / 60 s = 180 s).
  from experiments import collect as collect_cli
  assert [collect_cli.resumed_step(m) for m in messages if m.startswith("resuming sac")] == [80]
  assert collect_cli.resumed_step("training sac_per_task behaviour policies") is None
  now = [0.0]
  shown = Progress(240, "behaviour step", clock=lambda: now[0])
  shown.update(80, timed=False)  # the resumed step: not this process's work
  now[0] = 60.0
  assert shown.update(120).eta == 180.0
  fresh = Progress(240, "behaviour step", clock=lambda: 0.0)
  assert fresh.update(120, seconds=60.0).eta == 60.0
  assert fresh.update(240).eta is None
  # The dataset's behaviour time counts both processes.
  assert meta["creation"]["behaviour_seconds"] > before
  assert not os.path.exists(ckpt)  # deleted once the snapshots and replay.npz are saved
  assert os.path.exists(os.path.join(work, "replay.npz"))
  assert_same(data.transitions, ref_data.transitions)
  np.testing.assert_array_equal(data.checkpoint_id, ref_data.checkpoint_id)
  np.testing.assert_array_equal(data.episode_id, ref_data.episode_id)
  assert_same(policies.params, ref_policies.params)
  assert meta["normalisation"] == ref_meta["normalisation"]


@pytest.mark.slow  # three experiments.collect processes
def test_a_sigkilled_collection_resumes_its_behaviour_training(tmp_path):
  """The real thing: ``experiments.collect`` killed (SIGKILL) right after its first behaviour
  checkpoint, started again, writes the dataset an uninterrupted run writes."""
  def cmd(out):
    return ["--config=experiments/configs/data.py:tiny", "--config.behaviour.algo=sac_per_task",
            "--config.quality=replay", f"--config.out={out}", "--cpu_devices=1"]

  env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
  killed = str(tmp_path / "killed")
  child = SyncChild("behaviour_checkpoint", "experiments.collect", cmd(killed), cwd=ROOT, env=env,
                    stdout=subprocess.DEVNULL)
  try:
    event = child.wait_event()
    assert event is not None, child.proc.communicate()[1][-2000:]
    os.kill(child.proc.pid, signal.SIGKILL)
  finally:
    child.proc.communicate()
    child.close()
  assert child.proc.returncode == -signal.SIGKILL
  ckpt = os.path.join(pipeline.work_dir_for(killed), pipeline.BEHAVIOUR_CHECKPOINT_DIR)
  assert resumable.resume_step(ckpt) == event[1] > 0
  done = [subprocess.run([sys.executable, "-m", "experiments.collect", *cmd(out)], cwd=ROOT,
                         env=env, capture_output=True, text=True, check=False)
          for out in (killed, str(tmp_path / "whole"))]
  for d in done:
    assert d.returncode == 0, d.stderr[-3000:]
  assert f"resuming sac_per_task behaviour training from env step {event[1]:,}" in done[0].stdout
  a, meta_a = load_dataset(killed)
  b, meta_b = load_dataset(str(tmp_path / "whole"))
  assert_same(a.transitions, b.transitions)
  assert meta_a["normalisation"] == meta_b["normalisation"]


@pytest.mark.parametrize("algo", sorted(TRAINERS))
def test_a_run_with_intervals_after_warmup_resumes_inside_the_long_first_interval(
    algo, point_env, tasks, tmp_path, monkeypatch):
  # The official recipe's schedule: the 20-iteration warm-up (40 env steps), then 3 intervals of
  # floor(200 env steps / 2 envs / 3) = 33 iterations; the first interval is 20 + 33 = 53 long.
  # The shared agent (the fast recipe) schedules it as the per-task agents do.
  train = TRAINERS[algo]
  kw = dict(SMALL, intervals_after_warmup=True)
  ref, ref_replay = train(point_env, tasks, keep_replay=True, **kw)
  assert ref.steps.tolist() == [0, 106, 172, 238]
  assert ref_replay.num_steps == 238  # 40 warm-up + 3 x 33 iterations x 2 envs, nothing more
  ckpt = str(tmp_path / "ckpt")
  saved = die_after_save(monkeypatch, 3)  # calls of 15, 15, 15 iterations inside interval 1
  with pytest.raises(Killed):
    train(point_env, tasks, keep_replay=True, checkpoint_dir=ckpt, **CKPT, **kw)
  monkeypatch.undo()
  assert saved == [30, 60, 90]
  # The schedule is part of the checkpoint's key: the other one is refused.
  with pytest.raises(CheckpointError, match="intervals_after_warmup"):
    train(point_env, tasks, checkpoint_dir=ckpt, **CKPT, **SMALL)
  policies, replay = train(point_env, tasks, keep_replay=True, checkpoint_dir=ckpt, **CKPT, **kw)
  assert policies.steps.tolist() == [0, 106, 172, 238]
  assert_same(policies.params, ref.params)
  assert_same(replay.transitions, ref_replay.transitions)


def test_the_shared_agents_checkpoint_key_is_unchanged_without_intervals_after_warmup(
    point_env, tasks, tmp_path):
  """A shared run's checkpoint key gains ``intervals_after_warmup`` only when it is set, so a
  checkpoint written before the option existed still resumes."""
  kw = dict(SMALL, num_timesteps=80, num_snapshots=2)
  for name, extra in (("plain", {}), ("after", {"intervals_after_warmup": True})):
    shared_sac.train_sac_shared(point_env, tasks, checkpoint_dir=str(tmp_path / name), **kw,
                                **extra)
  with open(tmp_path / "plain" / resumable.SETTINGS_FILE) as f:
    plain = json.load(f)
  with open(tmp_path / "after" / resumable.SETTINGS_FILE) as f:
    after = json.load(f)
  assert "intervals_after_warmup" not in plain
  assert after == dict(plain, intervals_after_warmup=1)
