"""MACAW (jcomrl.algos.macaw): returns to go, the inner step, the outer gradient through it, a
point-robot learning run with its controls, and checkpoints through the trainer."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcomrl import checkpoint
from jcomrl.algos.config import HParams
from jcomrl.algos.learner import seed_keys, unstack_seed
from jcomrl.algos.macaw import Macaw, MacawConfig, chain_returns, dataset_returns, make_macaw
from jcomrl.algos.trainer import checkpoint_dir, run_training
from jcomrl.data.sampler import sample_context
from jcomrl.eval import protocols as P
from jcomrl.eval.rollout import evaluate_returns, random_policy_returns
from jcomrl.types import Transition

GAMMA = 0.9
SMALL = MacawConfig(obs_size=2, action_size=2, task_param_size=2, hidden=(8, 8), wlinear_dim=4,
                    head_hidden=(4,), context_size=20, rl_batch_size=16, meta_batch_size=3,
                    steps_per_chunk=10, discount=GAMMA)


def _softplus(x):
  return np.log1p(np.exp(np.asarray(x, np.float64)))


@pytest.fixture(scope="module")
def segment(synthetic_data):
  """One stored 20-step episode (a whole segment) of task 0: a trajectory context."""
  ctx = sample_context(jax.random.key(3), synthetic_data.to_device(), jnp.array([0]), size=20,
                       mode="trajectory")
  return jax.tree.map(lambda x: x[0], ctx)


def _hand_returns(reward, gamma):
  out, g = np.zeros(len(reward)), 0.0
  for t in range(len(reward) - 1, -1, -1):
    g = reward[t] + gamma * g
    out[t] = g
  return out


# ------------------------------------------------------------------------------ returns to go


def test_chain_returns_by_hand():
  """Episode 1 = steps 0-2 (ends by a timeout: bootstrap), episode 2 = steps 3-4 (ends by a true
  terminal: no bootstrap), step 5 = cut by the end of the block (no stored flag)."""
  obs = np.array([[0.], [1.], [2.], [10.], [11.], [20.]], np.float32)
  nxt = np.array([[1.], [2.], [3.], [11.], [12.], [21.]], np.float32)
  r = np.array([1., 2., 3., 4., 5., 6.], np.float32)
  term = np.array([0, 0, 0, 0, 1, 0], np.float32)
  tout = np.array([0, 0, 1, 0, 0, 0], np.float32)
  tr = Transition(obs=obs, action=np.zeros((6, 1), np.float32), reward=r, next_obs=nxt,
                  terminal=term, timeout=tout)
  g = 0.5
  ret = chain_returns(jax.tree.map(jnp.asarray, tr), g)
  np.testing.assert_allclose(ret.mc, [1 + g * 2 + g * g * 3, 2 + g * 3, 3, 4 + g * 5, 5, 6],
                             rtol=1e-6)
  np.testing.assert_allclose(ret.boot, [g ** 3, g ** 2, g, 0, 0, g], rtol=1e-6)
  np.testing.assert_array_equal(ret.end, [2, 2, 2, 4, 4, 5])
  np.testing.assert_array_equal(ret.cut, [0, 0, 0, 0, 0, 1])
  # The same transitions out of order (a random-transition context) hold no chains.
  rev = jax.tree.map(lambda x: jnp.asarray(x)[::-1], tr)
  ret = chain_returns(rev, g)
  np.testing.assert_allclose(ret.mc, r[::-1])
  np.testing.assert_array_equal(ret.end, np.arange(6))
  np.testing.assert_array_equal(ret.cut, 1 - np.maximum(term, tout)[::-1])


def test_dataset_returns_are_whole_episode_returns(synthetic_data):
  data = synthetic_data.to_device()
  ret = dataset_returns(data, GAMMA)
  seg = data.segment_length
  for task, s in ((0, 0), (7, 5)):
    rows = slice(s * seg, (s + 1) * seg)
    want = _hand_returns(np.asarray(data.transitions.reward[task, rows]), GAMMA)
    np.testing.assert_allclose(ret.mc[task, rows], want, rtol=1e-5)
    np.testing.assert_array_equal(ret.end[task, rows], (s + 1) * seg - 1)  # global index
    np.testing.assert_allclose(ret.boot[task, rows], GAMMA ** np.arange(seg, 0, -1), rtol=1e-5)


# -------------------------------------------------------------------------------- inner step


def test_inner_steps_equal_hand_written_sgd_with_learned_rates(segment):
  m = Macaw(SMALL)
  params = m.init(jax.random.key(0))
  # distinct per-tensor rates, so a mix-up of leaves would show
  leaves, tdef = jax.tree.flatten(params["value_lrs"])
  v_lrs = jax.tree.unflatten(tdef, list(np.linspace(-7.0, -2.0, len(leaves), dtype=np.float32)))
  leaves, tdef = jax.tree.flatten(params["policy_lrs"])
  p_lrs = jax.tree.unflatten(tdef, list(np.linspace(-6.0, -1.5, len(leaves), dtype=np.float32)))
  ret = chain_returns(segment, GAMMA)
  # value: MSE to the episode's Monte-Carlo returns (a whole stored episode: nothing is cut)
  G = _hand_returns(np.asarray(segment.reward), GAMMA)
  np.testing.assert_allclose(ret.mc, G, rtol=1e-5)
  assert float(jnp.sum(ret.cut)) == 0.0
  vp = params["value"]
  g = jax.jit(jax.grad(lambda p: jnp.mean((m.nets.value(p, segment.obs) - G) ** 2)))(vp)
  want = jax.tree.map(lambda p, g, l: np.asarray(p) - _softplus(l) * np.asarray(g), vp, g, v_lrs)
  got = jax.jit(m.adapt_value)(vp, v_lrs, segment, ret)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), got, want)
  # policy: AWR with standardised, clipped weights + softplus(c) * (head - A)^2
  adv = np.asarray(jax.random.normal(jax.random.key(4), (20,))) * 3.0
  c = jnp.float32(np.log(0.3))
  norm = (adv - adv.mean()) / adv.std(ddof=1)
  w = np.exp(np.minimum(norm, np.log(20.0)))
  a = np.asarray(segment.action)

  def hand_loss(p):
    mu, head = m.nets.policy(p, segment.obs, segment.action)
    logp = jnp.sum(-0.5 * ((a - mu) / 0.2) ** 2 - np.log(0.2) - 0.5 * np.log(2 * np.pi), -1)
    return jnp.mean(-logp * w + _softplus(c) * (head - adv) ** 2)

  pp = params["policy"]
  g = jax.jit(jax.grad(hand_loss))(pp)
  want = jax.tree.map(lambda p, g, l: np.asarray(p) - _softplus(l) * np.asarray(g), pp, g, p_lrs)
  got = jax.jit(m.adapt_policy)(pp, p_lrs, c, segment, jnp.asarray(adv))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-7), got, want)


# ------------------------------------------------------------------ outer gradient (float64)


def _at(tree, path):
  for k in path:
    tree = tree[k]
  return tree


def _fd(f, params, path, i, eps=1e-5):
  """Central finite difference of ``f`` along entry ``i`` (None: a scalar) of leaf ``path``."""
  def shifted(e):
    p = jax.tree.map(lambda x: x, params)  # new containers, same leaves
    parent, x = _at(p, path[:-1]), _at(p, path)
    parent[path[-1]] = x + e if i is None else x.reshape(-1).at[i].add(e).reshape(x.shape)
    return p
  return (float(f(shifted(eps))) - float(f(shifted(-eps)))) / (2 * eps)


@pytest.mark.slow
def test_outer_gradient_flows_through_the_inner_step(segment):
  """Gradients of the meta-loss w.r.t. pre-adaptation parameters, inner rates and the head's
  coefficient equal central finite differences (float64); the first-order (stop-gradient)
  version does not. Targets and advantages are constants of the loss (stop-gradient, as MACAW's
  ``torch.no_grad``), so the value part is checked on the outer value loss with its target
  frozen at the base parameters, and the module's gradient must equal that one."""
  with jax.enable_x64(True):
    cfg = dataclasses.replace(SMALL, hidden=(6,), wlinear_dim=3, head_hidden=(3,))
    full, first = Macaw(cfg), Macaw(dataclasses.replace(cfg, first_order=True))
    f64 = lambda t: jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), t)
    params = f64(full.init(jax.random.key(1)))
    l = float(np.log(np.expm1(0.05)))  # inner rates 0.05: a visible second-order term
    params["value_lrs"] = jax.tree.map(lambda x: jnp.full_like(x, l), params["value_lrs"])
    params["policy_lrs"] = jax.tree.map(lambda x: jnp.full_like(x, l), params["policy_lrs"])
    ctx = f64(segment)
    ret = chain_returns(ctx, GAMMA)
    end_obs = ctx.next_obs[ret.end]
    meta = lambda m: jax.jit(lambda p: m.task_loss(p, ctx, ctx, ret, end_obs)[0])
    g_full, g_first = jax.jit(jax.grad(meta(full)))(params), jax.jit(jax.grad(meta(first)))(params)
    # value: the outer loss with its bootstrapped target frozen at the base parameters
    vp_ad = full.adapt_value(params["value"], params["value_lrs"], ctx, ret)
    tgt = jax.tree.map(lambda a, b: 0.9 * a + 0.1 * b, params["value"], vp_ad)
    y = ret.mc + ret.boot * full.nets.value(tgt, end_obs)

    def value_loss(m):
      return jax.jit(lambda p: jnp.mean((m.nets.value(m.adapt_value(
          p["value"], p["value_lrs"], ctx, ret), ctx.obs) - y) ** 2))

    gv_full = jax.grad(value_loss(full))(params)
    gv_first = jax.grad(value_loss(first))(params)
    for group in ("value", "value_lrs"):
      jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12),
                   g_full[group], gv_full[group])
    checks = [(value_loss(full), gv_full, gv_first, ("value", "l0", "z"), 0),
              (value_loss(full), gv_full, gv_first, ("value", "l1", "w"), 1),
              (value_loss(full), gv_full, gv_first, ("value_lrs", "l0", "w"), None),
              (meta(full), g_full, g_first, ("policy", "trunk", "l0", "z"), 2),
              (meta(full), g_full, g_first, ("policy", "trunk", "l1", "b"), 1),
              (meta(full), g_full, g_first, ("policy_lrs", "trunk", "l0", "z"), None),
              (meta(full), g_full, g_first, ("adv_coef",), None)]
    for f, gf_tree, g1_tree, path, i in checks:
      if i is not None:  # the i-th largest entry of the gradient (not a dead ReLU's zero)
        i = int(np.argsort(-np.abs(np.asarray(_at(gf_tree, path)).reshape(-1)))[i])
      fd = _fd(f, params, path, i)
      pick = lambda t, path=path, i=i: float(_at(t, path) if i is None
                                             else _at(t, path).reshape(-1)[i])
      gf, g1 = pick(gf_tree), pick(g1_tree)
      scale = max(abs(fd), 1e-6)
      assert abs(gf - fd) < 1e-6 * scale, (path, gf, fd)
      if path[0] in ("value", "policy"):  # first order drops the inner step's Jacobian
        assert abs(g1 - fd) > 1e-3 * scale and abs(g1 - fd) > 1e3 * abs(gf - fd), (path, g1, fd)
      if path == ("adv_coef",):  # the head's weight acts only through the inner step
        assert g1 == 0.0 and abs(fd) > 0.0


# ------------------------------------------------- learning on point-robot, controls, checkpoint


LEARN = dataclasses.replace(SMALL, hidden=(32, 32), wlinear_dim=16, head_hidden=(8,),
                            rl_batch_size=32, meta_batch_size=5, steps_per_chunk=100)
LEARN_HP = HParams.create(value_lr=1e-3, actor_lr=1e-3, inner_lr_lr=1e-3)


@pytest.fixture(scope="module")
def trained(synthetic_data, point_env, tmp_path_factory):
  """200 updates through the trainer (checkpoints every 100), one seed."""
  learner = make_macaw(LEARN)
  workdir = str(tmp_path_factory.mktemp("macaw_run"))
  split = point_env.benchmark_split()
  state = run_training(learner, synthetic_data, LEARN_HP, split["train"], workdir=workdir,
                       seed=0, num_seeds=1, num_steps=200, checkpoint_every=100, progress=None)
  return learner, state, workdir


@pytest.mark.slow
def test_trained_macaw_beats_random_and_its_controls(trained, synthetic_data, point_env):
  learner, state, _ = trained
  data = synthetic_data.to_device()
  rows = np.asarray(point_env.benchmark_split()["test"])
  tasks = jax.tree.map(lambda x: x[rows], point_env.all_benchmark_tasks())
  key = jax.random.key(11)
  kw = dict(num_episodes=2, context_mode="trajectory", context_size=20)
  adapted = float(np.mean(P.iid_returns(learner, state.params, point_env, data, rows, tasks,
                                        key, **kw)))
  # controls: adaptation on ANOTHER test task's context (z-shuffle), and no adaptation at all
  perm = P.derangement(len(rows), jax.random.key(5))
  shuffled = float(np.mean(P.iid_returns(learner, state.params, point_env, data, rows, tasks,
                                         key, z_permutation=perm, **kw)))
  p0 = unstack_seed(state.params, 0)
  code0 = learner.macaw.nets.code(p0["policy"])
  code0 = jax.tree.map(lambda x: jnp.broadcast_to(x, (len(rows),) + x.shape), code0)
  unadapted = float(np.mean(evaluate_returns(point_env, learner.act, p0, code0, tasks, key, 2)))
  rand = float(np.mean(random_policy_returns(point_env, tasks, key, 4)))
  assert adapted > rand + 3.0, (adapted, rand)
  assert adapted > shuffled + 2.0, (adapted, shuffled)
  assert adapted > unadapted + 2.0, (adapted, unadapted)


@pytest.mark.slow
def test_checkpoint_restore_and_resume_through_the_trainer(trained, synthetic_data, point_env):
  learner, state, workdir = trained
  ckpt = checkpoint_dir(workdir)
  assert checkpoint.steps(ckpt)[-2:] == [100, 200]
  abstract = learner.init(seed_keys(0, 1))
  restored, meta = checkpoint.restore(ckpt, abstract, expect={"learner": LEARN.structure_dict()})
  assert meta["step"] == 200
  jax.tree.map(np.testing.assert_array_equal, restored.params, state.params)
  with pytest.raises(checkpoint.CheckpointError, match="another learner"):
    checkpoint.restore(ckpt, abstract, expect={"learner": dataclasses.replace(
        LEARN, discount=0.99).structure_dict()})
  more = run_training(learner, synthetic_data, LEARN_HP, point_env.benchmark_split()["train"],
                      workdir=workdir, seed=0, num_seeds=1, num_steps=300, checkpoint_every=100,
                      progress=None)
  assert int(more.step[0]) == 300 and checkpoint.latest_step(ckpt) == 300
  assert learner.trace_count() == 1  # resume reused the compiled chunk


# ------------------------------------------------------------------------------- configs


def test_macaw_config_validates_and_refuses_vector_code_protocols():
  from experiments.cli import to_plain
  from experiments.configs import macaw as macaw_config
  from jcomrl import run as run_api
  from jcomrl.errors import ConfigError

  for variant in ("tiny", "point_robot", "cheetah_vel", "cheetah_vel@cpu", "walker_param"):
    cfg = to_plain(macaw_config.get_config(variant))
    run_api.validate_config(cfg)
    assert cfg["learner_type"] == "macaw"
  cfg = to_plain(macaw_config.get_config("cheetah_vel"))
  assert cfg["learner"]["hidden"] == [100, 100, 100] and cfg["learner"]["meta_batch_size"] == 5
  assert (cfg["hparams"]["value_lr"], cfg["hparams"]["actor_lr"]) == (1e-5, 1e-4)
  run_api.check_protocols(cfg, ["iid", "ood", "z_shuffle"])
  with pytest.raises(ConfigError, match="online"):
    run_api.check_protocols(cfg, ["iid", "online"])
  with pytest.raises(ConfigError, match="learner.context_siz"):
    run_api.validate_config(dict(cfg, learner=dict(cfg["learner"], context_siz=3)))
  with pytest.raises(ValueError, match="no macaw variant"):
    macaw_config.get_config("humanoid")
  with pytest.raises(ValueError, match="cpu profile is for the MuJoCo envs"):
    macaw_config.get_config("point_robot@cpu")
