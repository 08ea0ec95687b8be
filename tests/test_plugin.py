"""The plug-in learner: registered backbones and objectives, probe MDPs with analytic Q, the
temperature path, sweeps as a vmap, a toy objective registered from this file, composed terms."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcomrl import checkpoint
from jcomrl.algos import backbones, objectives
from jcomrl.algos.backbones import BACKBONES, make_backbone, optimiser_init
from jcomrl.algos.compose import check
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.learner import broadcast_hparams, make_learner, seed_keys
from jcomrl.algos.settings import HYPERS, SETTINGS
from jcomrl.nets.actor_critic import tanh_gaussian_log_prob
from jcomrl.nets.mlp import MLP
from jcomrl.types import Transition

TINY = dict(obs_size=2, action_size=2, task_param_size=2, latent_size=4, encoder_hidden=(16,),
            aux_hidden=(16,), rl_hidden=(16,), dual_hidden=(16,), meta_batch_size=4,
            context_size=8, context_mode="transitions", rl_batch_size=8, steps_per_chunk=5,
            num_task_labels=40)
POOL = jnp.arange(30, dtype=jnp.int32)

# ------------------------------------------------------------------ probe MDPs (rejax-style)


def _probe(kind: str, n: int = 64):
  """One task's batch ``[N]`` of a probe MDP with 1-d observations, and its analytic Q on it.
  Rewards and transitions ignore the action; the data's actions cover [-1, 1] so that Q at the
  policy's next action is fitted too (Q is then constant in a).

  ``reward``: one step, r = s, terminal: Q(s, a) = s for every action.
  ``discount``: s = 0 -> s' = 1 with r = 0 (not terminal); s = 1 -> terminal with r = 1:
  Q(0, a) = gamma * 1 (the next state's value, whatever the actions), Q(1, a) = 1.
  ``terminal``: r = 1 at every step; half the transitions are terminal (Q = 1), the others
  time out into an absorbing-looking s' = s with the same data (Q = 1 / (1 - gamma) there), so a
  backbone that ignores the terminal flag, or that masks time-outs, gets one half wrong.
  """
  half = n // 2
  act = jax.random.uniform(jax.random.key(5), (n, 1), minval=-1.0, maxval=1.0)
  if kind == "reward":
    s = jnp.linspace(-1.0, 1.0, n)[:, None]
    return Transition(obs=s, action=act, reward=s[:, 0], next_obs=s,
                      terminal=jnp.ones(n), timeout=jnp.zeros(n)), s[:, 0]
  if kind == "discount":
    s = jnp.concatenate([jnp.zeros(half), jnp.ones(half)])[:, None]
    return Transition(obs=s, action=act, reward=s[:, 0], next_obs=jnp.ones((n, 1)),
                      terminal=s[:, 0], timeout=jnp.zeros(n)), None
  s = jnp.concatenate([jnp.zeros(half), jnp.ones(half)])[:, None]
  return Transition(obs=s, action=act, reward=jnp.ones(n), next_obs=s,
                    terminal=s[:, 0], timeout=1.0 - s[:, 0]), None


# Cheaper partition estimates for the probes (their regulariser weights are 0 there).
_PROBE_OVERRIDES = {"cql": dict(partition_samples=2),
                    "misa": dict(partition_samples=2, misa_partition_grad="importance")}


@functools.lru_cache(maxsize=None)
def _backbone_trainer(name: str, n: int = 64, steps: int = 3000):
  """One compiled program per backbone: ``steps`` updates on a fixed one-task batch ``[N]``
  (batch and hyper-parameters are arguments, so the three probes share it); returns Q [2, N]."""
  cfg = LearnerConfig.create(obs_size=1, action_size=1, task_param_size=1, latent_size=1,
                      rl_hidden=(32, 32), dual_hidden=(16,), backbone=name, meta_batch_size=1,
                      rl_batch_size=n, brac_penalty="both", policy_delay=1,
                      **_PROBE_OVERRIDES.get(name, {}))
  bb = make_backbone(cfg)
  z = jnp.zeros((1, 1))

  @jax.jit
  def train(batch, hp):
    params = bb.init(jax.random.split(jax.random.key(0), 3))
    opt = {g: optimiser_init(params[g]) for g in bb.trained_groups()}
    rl = jax.tree.map(lambda x: x[None], batch)

    def step(carry, i):
      p, o = carry
      keys = jax.random.split(jax.random.fold_in(jax.random.key(1), i), 3)
      p, o, _, _ = bb.update(p, o, [rl] * (1 + bb.extra_batches), z, hp, keys, i, False)
      return (p, o), None

    (params, _), _ = jax.lax.scan(step, (params, opt), jnp.arange(steps))
    return bb.critic.apply(params["critic"], batch.obs, jnp.zeros((n, 1)), batch.action)

  return train


@pytest.mark.parametrize("name", sorted(n for n, b in BACKBONES.items() if b.has_critic))
def test_backbone_probe_mdps_have_analytic_q(name):
  """Every registered backbone with a critic fits the analytic Q of three probe MDPs: the
  one-step reward, the discount, and terminal masking (time-outs bootstrap, terminals do not)."""
  gamma = 0.8
  # No entropy, no BRAC / CQL / MISA critic term: the probes' rewards ignore the action, so Q is
  # the plain Bellman fixpoint (IQL's expectile of a Q constant in a is that Q).
  hp = HParams.create(discount=gamma, critic_lr=3e-3, actor_lr=1e-4, tau=0.05, entropy_alpha=0.0,
                      brac_weight=0.0, td3_policy_noise=0.0, cql_weight=0.0,
                      misa_critic_weight=0.0, value_lr=3e-3)
  train = _backbone_trainer(name)
  batch, want = _probe("reward")
  q = np.asarray(train(batch, hp))
  np.testing.assert_allclose(q, np.broadcast_to(want, q.shape), atol=0.05)
  batch, _ = _probe("discount")
  q = np.asarray(train(batch, hp))
  half = q.shape[1] // 2
  np.testing.assert_allclose(q[:, :half], gamma, atol=0.05)
  np.testing.assert_allclose(q[:, half:], 1.0, atol=0.05)
  batch, _ = _probe("terminal")
  q = np.asarray(train(batch, hp))
  np.testing.assert_allclose(q[:, :half], 1.0 / (1.0 - gamma), rtol=0.05)  # time-outs bootstrap
  np.testing.assert_allclose(q[:, half:], 1.0, atol=0.05)  # terminals do not


# ------------------------------------------------------------------ policy and temperature


def test_tanh_gaussian_log_prob_matches_float64_reference():
  """log pi(tanh u) = log N(u; mu, sigma) - sum log(1 - tanh(u)^2), in float64 by hand, also
  where float32 tanh saturates (|u| up to 12, where a naive log(1 - tanh^2) is -inf)."""
  rng = np.random.default_rng(0)
  mean = rng.normal(0.0, 3.0, (64, 3))
  log_std = rng.uniform(-2.0, 1.0, (64, 3))
  u = mean + np.exp(log_std) * rng.normal(size=(64, 3))
  u[0] = [12.0, -12.0, 9.0]
  ref = np.sum(-0.5 * ((u - mean) / np.exp(log_std)) ** 2 - log_std - 0.5 * np.log(2 * np.pi)
               - np.log(1.0 - np.tanh(u) ** 2), axis=-1)
  got = tanh_gaussian_log_prob(*(jnp.asarray(x, jnp.float32) for x in (u, mean, log_std)))
  np.testing.assert_allclose(np.asarray(got, np.float64), ref, rtol=1e-4, atol=1e-3)
  with np.errstate(divide="ignore"):
    naive = np.sum(np.log(1.0 - np.tanh(u.astype(np.float32)) ** 2), axis=-1)
  assert not np.isfinite(naive[0])  # the case the stable form exists for


def test_learned_temperature_takes_the_analytic_first_step(synthetic_data):
  """``learn_entropy``: the loss -exp(log a) (log pi + target) has gradient
  -(log pi + target) at log a = 0, so Adam's first step is -lr * sign(H - target)."""
  lrn = make_learner(LearnerConfig.create(**dict(TINY, backbone="sac", learn_entropy=True)))
  state = jax.tree.map(lambda x: x[0], lrn.init(seed_keys(0, 1)))
  assert float(state.params["log_alpha"]) == 0.0
  new, m = jax.jit(lrn.update)(state, synthetic_data.to_device(), HParams.create(alpha_lr=0.01),
                               POOL)
  grad = -(-float(m["actor/entropy"]) - 2.0)  # -(log pi + target entropy), |A| = 2
  np.testing.assert_allclose(float(new.params["log_alpha"]), -0.01 * np.sign(grad), rtol=1e-5)
  np.testing.assert_allclose(float(m["actor/alpha"]), np.exp(-0.01 * np.sign(grad)), rtol=1e-5)
  # With a fixed temperature the group does not exist at all (nor its optimiser state).
  fixed = make_learner(LearnerConfig.create(**dict(TINY, backbone="sac"))).init(seed_keys(0, 1))
  assert "log_alpha" not in fixed.params and "log_alpha" not in fixed.opt


@pytest.mark.slow
def test_hyperparameter_sweep_as_vmap_equals_separate_runs(tiny_learner, synthetic_data):
  """Two critic/actor learning rates on the seed axis of one program give each value's own run."""
  lrn = tiny_learner
  assert lrn.cfg == LearnerConfig.create(**TINY)
  data = synthetic_data.to_device()
  keys = jnp.stack([seed_keys(7, 1)[0]] * 2)  # the same seed at both sweep points
  lrs = [1e-3, 3e-5]
  hp = HParams.create(critic_lr=jnp.asarray(lrs), actor_lr=jnp.asarray(lrs))
  hp = jax.tree.map(lambda x: jnp.broadcast_to(x, (2,)), hp)
  swept, _ = lrn.train_chunk(lrn.init(keys), data, hp, POOL)
  for i, lr in enumerate(lrs):
    one, _ = lrn.train_chunk(lrn.init(keys[:1]), data,
                             broadcast_hparams(HParams.create(critic_lr=lr, actor_lr=lr), 1), POOL)
    for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(swept.params)):
      np.testing.assert_allclose(np.asarray(a)[0], np.asarray(b)[i], rtol=2e-5, atol=1e-6)
  actor = jax.tree.leaves(swept.params["actor"])[0]
  assert not np.allclose(actor[0], actor[1])  # the sweep points did train differently


# ------------------------------------------------------------------ objectives as plug-ins


@pytest.fixture
def toy_objective():
  """A task-parameter regression objective, registered from this test file (no jcomrl edit)."""

  @objectives.register
  class TaskRegression(objectives.Objective):
    name = "toy_task_regression"

    def __init__(self, cfg, encoder):
      super().__init__(cfg, encoder)
      self.head = MLP((16,), cfg.task_param_size)

    def init(self, key):
      return {"toy_head": self.head.init(key, jnp.zeros((1, self.cfg.latent_size)))}

    def loss(self, params, batch, hp, key, z, pretrain_params=None):
      err = jnp.mean((self.head.apply(params["toy_head"], z) - batch.task_params) ** 2)
      return err, {"rep/toy_mse": err}

  yield TaskRegression
  del objectives.OBJECTIVES[TaskRegression.name]
  for table in (SETTINGS, HYPERS):
    table.pop(TaskRegression.name, None)


@pytest.mark.slow
def test_a_toy_objective_registered_from_a_test_trains(toy_objective, synthetic_data):
  data = synthetic_data.to_device()
  for extra in (dict(representation=toy_objective.name),
                dict(representation="focal", extra_objectives=f"{toy_objective.name}:2")):
    lrn = make_learner(LearnerConfig.create(**dict(TINY, steps_per_chunk=100, **extra)))
    state = lrn.init(seed_keys(0, 1))
    assert "toy_head" in state.params["encoder"]
    hp = broadcast_hparams(HParams.create(encoder_lr=3e-3), 1)
    state, first = lrn.train_chunk(state, data, hp, POOL)
    for _ in range(3):
      state, last = lrn.train_chunk(state, data, hp, POOL)
    key = "rep/toy_mse" if "extra_objectives" not in extra else f"{toy_objective.name}/rep/toy_mse"
    assert np.isfinite(last["critic/loss"]).all()
    assert float(last[key][0]) < 0.5 * float(first[key][0]), (extra, first[key], last[key])


@pytest.mark.slow
def test_unicorn_ss_is_reconstruction_plus_focal(meta_batch):
  """The registered terms compose: ``reconstruction`` + ``extra_objectives="focal"`` is
  UNICORN-SS (same loss, same code, same gradient)."""
  mb = meta_batch
  hp, key = HParams.create(focal_weight=0.3), jax.random.key(2)
  reps = [objectives.make_representation(LearnerConfig.create(**dict(TINY, **kw))) for kw in
          (dict(representation="unicorn_ss"),
           dict(representation="reconstruction", extra_objectives="focal"))]
  params = reps[0].init(jax.random.key(1))
  assert set(params) == set(reps[1].init(jax.random.key(1))) == {"encoder", "decoder"}
  out = [jax.value_and_grad(r.loss, has_aux=True)(params, mb, hp, key) for r in reps]
  (l0, a0), g0 = out[0]
  (l1, a1), g1 = out[1]
  np.testing.assert_allclose(l0, l1, rtol=1e-6)
  np.testing.assert_array_equal(a0["z"], a1["z"])
  for x, y in zip(jax.tree.leaves(g0), jax.tree.leaves(g1)):
    np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
  assert "focal/focal/pos" in a1["metrics"] and "rep/nll_state" in a1["metrics"]


def test_bad_compositions_are_refused():
  with pytest.raises(ValueError, match="unknown extra_objectives term 'nope'"):
    check(LearnerConfig.create(**dict(TINY, extra_objectives="nope")))
  with pytest.raises(ValueError, match="unknown extra_objectives term 'supervised'"):
    check(LearnerConfig.create(**dict(TINY, extra_objectives="supervised")))  # it has no loss to add
  with pytest.raises(ValueError, match="weight must be a number"):
    check(LearnerConfig.create(**dict(TINY, extra_objectives="focal:big")))
  with pytest.raises(ValueError, match="needs a pretrain stage"):
    check(LearnerConfig.create(**dict(TINY, extra_objectives="corro")))  # corro's CVAE negatives
  clash = LearnerConfig.create(**dict(TINY, representation="reconstruction",
                               extra_objectives="unicorn_ss"))
  with pytest.raises(ValueError, match="reuses network names"):
    objectives.make_representation(clash).init(jax.random.key(0))
  with pytest.raises(ValueError, match="unknown backbone"):
    check(LearnerConfig.create(**dict(TINY, backbone="no_such_backbone")))


def test_registries_are_the_single_source_of_names():
  from jcomrl.algos import presets
  assert set(presets.PRESETS) <= set(objectives.OBJECTIVES)
  assert {"sac", "brac", "td3bc"} <= set(backbones.BACKBONES)
  assert all(isinstance(b, type) and issubclass(b, backbones.Backbone)
             for b in BACKBONES.values())


def test_format_1_checkpoints_are_refused_by_name(tmp_path, monkeypatch):
  lrn = make_learner(LearnerConfig.create(**TINY))
  state = lrn.init(seed_keys(0, 1))
  monkeypatch.setattr(checkpoint, "FORMAT_VERSION", 1)
  checkpoint.save(str(tmp_path), 5, state, {"learner": lrn.cfg.structure_dict()})
  monkeypatch.undo()
  with pytest.raises(checkpoint.CheckpointError, match="format version 1 .*plug-in learner"):
    checkpoint.restore(str(tmp_path), state)


@pytest.fixture
def toy_backbone():
  """Behaviour cloning on the SAC family, registered from this test file (no jcomrl edit): the
  actor's tanh-mean regresses the data actions; the critic is SAC's."""
  from jcomrl.algos.backbones.sac import SAC

  @backbones.register
  class ToyBC(SAC):
    name = "toy_bc"

    def actor_loss_fn(self, params, hp, extra):
      def loss(p, rl, z, key):
        mean, _ = self.policy.apply(p, rl.obs, jnp.broadcast_to(z, (rl.obs.shape[0],) + z.shape))
        mse = jnp.mean((jnp.tanh(mean) - rl.action) ** 2)
        return mse, ({"actor/bc_mse": mse}, jnp.zeros(()), jnp.zeros(()))
      return loss

  yield ToyBC
  del backbones.BACKBONES[ToyBC.name]
  for table in (SETTINGS, HYPERS):
    table.pop(ToyBC.name, None)


def test_a_toy_backbone_registered_from_a_test_trains(toy_backbone, synthetic_data,
                                                      meta_batch):
  lrn = make_learner(LearnerConfig.create(**dict(TINY, backbone=toy_backbone.name, steps_per_chunk=100)))
  data, mb = synthetic_data.to_device(), meta_batch

  def bc_mse(state):  # on a fixed meta-batch, through the backbone's own per-task loss
    params = jax.tree.map(lambda x: x[0], state.params)
    z = lrn.encode(params, mb.context, mb.task_params)
    keys = jax.random.split(jax.random.key(0), 4)
    losses = jax.vmap(lrn.per_task_losses, in_axes=(None, 0, 0, 0, None))(
        params, mb.rl, z, keys, HParams.create())
    return float(jnp.mean(losses["actor"]))

  state = lrn.init(seed_keys(0, 1))
  before = bc_mse(state)
  hp = broadcast_hparams(HParams.create(actor_lr=3e-3), 1)
  for _ in range(4):
    state, m = lrn.train_chunk(state, data, hp, POOL)
  print(f"toy BC: mse {before:.3f} -> {bc_mse(state):.3f}")
  assert bc_mse(state) < 0.8 * before  # measured 0.353 -> 0.232 (noisy scripted actions)
  assert np.isfinite(m["critic/loss"]).all() and "actor/bc_mse" in m


def test_flat_names_of_earlier_configs_map_to_the_plugins_in_use():
  """The reader of configs written before plug-in subtrees: each flat key goes to the plug-ins
  in use that declare it, under its new name; it wins over the same key in a subtree (an
  override of an old name on a config that holds every subtree's defaults); a key only unused
  plug-ins declare is dropped; an unknown one is refused."""
  sizes = dict(obs_size=2, action_size=2, task_param_size=2)
  cfg = LearnerConfig.from_dict({**sizes, "representation": "corro", "backbone": "brac",
                                 "brac_penalty": "both", "dual_steps": 3,
                                 "brac": {"penalty": "value", "gp": "output"},
                                 "corro_negatives": 7, "cql": {"partition_samples": 3},
                                 "misa_bound": "dv"})
  assert dict(cfg.plugins).keys() == {"brac", "corro"}
  brac = cfg.settings("brac")
  assert (brac.penalty, brac.dual_steps, brac.gp) == ("both", 3, "output")
  assert cfg.settings("corro").negatives == 7
  assert cfg.to_dict()["brac"]["penalty"] == "both" and "cql" not in cfg.to_dict()
  with pytest.raises(ValueError, match="did you mean 'brac_penalty'"):
    LearnerConfig.from_dict({**sizes, "brac_penalt": "both"})
  # hyper-parameters: a flat name goes to every plug-in declaring it, over its subtree
  hp = HParams.create(focal_weight=3.0, brac_weight=0.5, brac={"weight": 0.2, "weight_max": 9.0},
                      cql_temperature=2.0)
  assert float(hp.of("focal").weight) == 3.0
  assert float(hp.of("unicorn_ss").focal_weight) == float(hp.of("csro").focal_weight) == 3.0
  assert (float(hp.of("brac").weight), float(hp.of("brac").weight_max)) == (0.5, 9.0)
  assert float(hp.of("cql").temperature) == 2.0
  with pytest.raises(ValueError, match="unknown hyper-parameter"):
    HParams.create(brac={"wieght": 1.0})
