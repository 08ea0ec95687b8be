"""DOMINO (issue 31): the objective's loss against its formula written out in numpy, the
decomposition term's invariants, the loss's symmetry under swapping the sub-contexts, the
preset against its PROVENANCE rows, and tiny training runs of the preset (every backbone in the
slow tier)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcomrl.algos import presets
from jcomrl.algos.backbones import BACKBONES
from jcomrl.algos.compose import check
from jcomrl.algos.config import HParams, LearnerConfig
from jcomrl.algos.learner import broadcast_hparams, make_learner, seed_keys
from jcomrl.algos.objectives import make_representation
from jcomrl.algos.objectives.domino import domino_terms
from jcomrl.types import MetaBatch, Transition

B, K, N, OBS, ACT, Z = 3, 4, 5, 2, 1, 6  # tasks, context, RL batch, sizes; Z = 3 chunks of 2
CFG = dict(obs_size=OBS, action_size=ACT, task_param_size=1, latent_size=Z, encoder_hidden=(8,),
           aux_hidden=(8,), rl_hidden=(8,), meta_batch_size=B, context_size=K,
           context_mode="transitions", rl_batch_size=N, representation="domino")
POOL = jnp.arange(30, dtype=jnp.int32)


def _transitions(rng, n):
  f = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)
  return Transition(obs=f(B, n, OBS), action=f(B, n, ACT), reward=f(B, n), next_obs=f(B, n, OBS),
                    terminal=jnp.zeros((B, n)), timeout=jnp.zeros((B, n)))


@pytest.fixture(scope="module")
def batch():
  rng = np.random.default_rng(0)
  return MetaBatch(task_index=jnp.arange(B), task_label=jnp.arange(B),
                   task_params=jnp.zeros((B, 1)), context=_transitions(rng, K),
                   rl=_transitions(rng, N))


# ------------------------------------------------------------------ the formula, in numpy


def _np(tree):
  return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


def _mlp(p, x):
  """Dense layers with ReLU between them (flax MLP's ``Dense_i``)."""
  n = len(p)
  for i in range(n):
    x = x @ p[f"Dense_{i}"]["kernel"] + p[f"Dense_{i}"]["bias"]
    x = np.maximum(x, 0.0) if i < n - 1 else x
  return x


def _softplus(x):
  return np.logaddexp(0.0, x)


def _gaussian_head(p, x):
  """(mean, log_var, penalty) of a GaussianMLP: soft-clamped log-variance, 0.01 bound penalty."""
  out = _mlp(p["MLP_0"], x)
  mean, raw = np.split(out, 2, axis=-1)
  lo, hi = p["min_log_var"], p["max_log_var"]
  lv = hi - _softplus(hi - raw)
  lv = lo + _softplus(lv - lo)
  return mean, lv, 0.01 * (hi.sum() - lo.sum())


def _nll(mean, lv, target):  # mbrl-lib's form: no 1/2
  return np.mean((target - mean) ** 2 * np.exp(-lv) + lv)


def _encode(p, ctx):
  x = np.concatenate([ctx.obs, ctx.action, ctx.reward[..., None], ctx.next_obs], -1)
  return np.tanh(_mlp(p["params"]["net"], x)).mean(axis=1)


def _infonce(q, k, t):
  """log B + mean_b [s_bb - log sum_j e^{s_bj}], s = q k^T / t: the positive on the diagonal,
  the B - 1 other rows the negatives."""
  s = q @ k.T / t
  lse = np.log(np.exp(s - s.max(1, keepdims=True)).sum(1)) + s.max(1)
  return np.log(len(q)) + np.mean(np.diag(s) - lse)


def _expected(p, mb, t, clip, weights):
  w_dec, w_con, w_decomp, w_back = weights
  ctx = _np(mb.context)
  second = _np(jax.tree.map(lambda x: x[:, :K], mb.rl))  # the task's RL draw, first K rows
  za, zb = _encode(p["encoder"], ctx), _encode(p["encoder"], second)
  a0, a1, b0, b1 = za[:, 2:4], za[:, 4:6], zb[:, 2:4], zb[:, 4:6]  # [global | sub0 | sub1]
  nce0, nce1 = _infonce(a0, b0, t), _infonce(a1, b1, t)
  d = 0.5 * (_infonce(a1, b0, t) + _infonce(a0, b1, t))
  mi_loss = np.clip(-(nce0 + nce1) + w_decomp * d, -clip, clip)
  zt = np.broadcast_to(za[:, None], (B, K, Z))
  x = np.concatenate([zt, ctx.obs, ctx.action], -1)
  ms, lvs, pens = _gaussian_head(p["decoder"]["params"]["state"], x)
  mr, lvr, penr = _gaussian_head(p["decoder"]["params"]["reward"], x)
  recon = (_nll(ms, lvs, ctx.next_obs - ctx.obs) + pens
           + _nll(mr, lvr, ctx.reward[..., None]) + penr)
  xb = np.concatenate([zt, ctx.next_obs, ctx.action], -1)
  mb_, lvb, penb = _gaussian_head(p["back_decoder"]["params"], xb)
  back = _nll(mb_, lvb, ctx.obs - ctx.next_obs) + penb
  total = w_dec * recon + w_con * mi_loss + w_back * back
  return total, {"rep/infonce_sub0": nce0, "rep/infonce_sub1": nce1,
                 "rep/infonce_decomposition": d, "rep/contrastive_loss": mi_loss}


@pytest.mark.parametrize("temperature,clip", [(0.004, 1e4), (0.5, 1e4), (0.5, 0.05)])
def test_loss_is_the_formula(batch, temperature, clip):
  rep = make_representation(LearnerConfig.create(**CFG))
  params = rep.init(jax.random.key(3))
  weights = (0.7, 0.3, 1.5, 0.5)  # decoder, contrastive, decomposition, backward
  hp = HParams.create(domino=dict(
      temperature=temperature, contrastive_clip=clip, decoder_weight=weights[0],
      contrastive_weight=weights[1], decomposition_weight=weights[2], backward_weight=weights[3]))
  loss, aux = jax.jit(rep.loss)(params, batch, hp, jax.random.key(4))
  want, metrics = _expected(_np(params), batch, temperature, clip, weights)
  np.testing.assert_allclose(loss, want, rtol=2e-4, atol=1e-5)
  for k, v in metrics.items():
    np.testing.assert_allclose(aux["metrics"][k], v, rtol=2e-4, atol=1e-5, err_msg=k)
  if clip < 1.0:  # the clip bites
    assert abs(float(aux["metrics"]["rep/contrastive_loss"])) == pytest.approx(clip)


def test_official_weights_are_the_defaults():
  h = HParams.create().of("domino")
  assert (h.contrastive_weight, h.temperature, h.decomposition_weight, h.backward_weight,
          h.decoder_weight, h.contrastive_clip) == pytest.approx((1e-3, 0.004, 1.0, 0.5, 1.0, 1e4))
  s = LearnerConfig.create(**CFG).settings("domino")
  assert (s.num_contexts, s.global_context, s.contrastive_bound, s.l2_normalise,
          s.backward_model, s.decoder_nll) == (2, True, "infonce", False, True, "mbrl")


# ----------------------------------------------------------------- invariants of the terms


def _grid(fn):
  """Codes ``[global | c0 | c1]`` of a 3 x 3 grid of tasks (factor A x factor B, every
  combination once) from ``fn(level_a [9], level_b [9]) -> (c0, c1)``."""
  ia, ib = jnp.repeat(jnp.arange(3), 3), jnp.tile(jnp.arange(3), 3)
  c0, c1 = fn(ia, ib)
  return jnp.concatenate([jnp.zeros((9, 2)), c0, c1], axis=1)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("temperature", [0.004, 0.1, 1.0])
def test_decomposition_is_at_most_zero_for_independent_sub_contexts(seed, temperature):
  """c0 a function of factor A, c1 of factor B (any embeddings), the factors independent over
  the meta-batch: within the rows of one query level the key's level runs over all levels, so
  each direction's bound is a mean of ``mean s - logmeanexp s <= 0`` (Jensen). A copy of c0
  into c1 makes it positive (unit-norm levels: with dot-product scores a longer other level
  could outscore the copy)."""
  emb_a, emb_b = jax.random.normal(jax.random.key(seed), (2, 3, 2))
  z = _grid(lambda ia, ib: (emb_a[ia], emb_b[ib]))  # the second context gives the same code
  assert float(domino_terms(z, z, temperature)[1]) <= 1e-5
  unit = emb_a / jnp.linalg.norm(emb_a, axis=-1, keepdims=True)
  z = _grid(lambda ia, ib: (unit[ia], emb_b[ib]))
  assert float(domino_terms(z, z, temperature)[1]) <= 1e-5
  copy = _grid(lambda ia, ib: (unit[ia], unit[ia]))
  assert float(domino_terms(copy, copy, temperature)[1]) > 0.05


def _orthogonal(copy: float):
  """c0 = a(A) along e0, c1 = (1 - copy) b(B) along e1 + copy a(A) along e0, with centred level
  embeddings a, b in {-1, 0, 1}: ``codes(emb_a, emb_b)`` and the embeddings."""
  levels = jnp.array([-1.0, 0.0, 1.0])
  e0, e1 = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])

  def codes(emb_a, emb_b):
    return _grid(lambda ia, ib: (emb_a[ia, None] * e0, (1 - copy) * emb_b[ib, None] * e1
                                 + copy * emb_a[ia, None] * e0))

  return codes, levels, levels


@pytest.mark.parametrize("temperature", [0.004, 0.5])
def test_decomposition_is_stationary_at_independent_orthogonal_sub_contexts(temperature):
  codes, emb_a, emb_b = _orthogonal(copy=0.0)

  def d_of(ea, eb):
    z = codes(ea, eb)
    return domino_terms(z, z, temperature)[1]

  # Every score between c0 and c1 is equal: the bound is 0 and no level embedding is pushed.
  assert float(d_of(emb_a, emb_b)) == pytest.approx(0.0, abs=1e-6)
  ga, gb = jax.grad(d_of, argnums=(0, 1))(emb_a, emb_b)
  np.testing.assert_allclose(ga, 0.0, atol=1e-6)
  np.testing.assert_allclose(gb, 0.0, atol=1e-6)


def test_decomposition_grows_as_one_sub_context_copies_the_other():
  values = []
  for copy in (0.0, 0.5, 1.0):
    codes, emb_a, emb_b = _orthogonal(copy)
    z = codes(emb_a, emb_b)
    values.append(float(domino_terms(z, z, 0.5)[1]))
  assert values[0] == pytest.approx(0.0, abs=1e-6)
  assert values[0] < values[1] < values[2]
  # Now the term (which the loss adds) has a gradient: it pushes c1 away from the copy.
  codes, emb_a, emb_b = _orthogonal(1.0)
  ga = jax.grad(lambda ea: domino_terms(codes(ea, emb_b), codes(ea, emb_b), 0.5)[1])(emb_a)
  assert float(jnp.max(jnp.abs(ga))) > 1e-3


def _swap_sub_contexts(params, z_rows=Z):
  """The same networks with sub-contexts 0 and 1 exchanged: the encoder's output units
  permuted, and the rows that read z in every decoder's first layer permuted alike."""
  perm = np.r_[0:2, 4:6, 2:4]
  p = jax.tree.map(np.array, params)
  last = p["encoder"]["params"]["net"]["Dense_1"]
  last["kernel"], last["bias"] = last["kernel"][:, perm], last["bias"][perm]
  firsts = [p["decoder"]["params"][h]["MLP_0"]["Dense_0"] for h in ("state", "reward")]
  firsts.append(p["back_decoder"]["params"]["MLP_0"]["Dense_0"])
  for dense in firsts:
    dense["kernel"] = np.concatenate([dense["kernel"][:z_rows][perm], dense["kernel"][z_rows:]])
  return p


def test_swapping_the_sub_contexts_leaves_the_loss_unchanged(batch):
  rep = make_representation(LearnerConfig.create(**CFG))
  params = rep.init(jax.random.key(5))
  hp = HParams.create(domino=dict(temperature=0.5, contrastive_weight=1.0))
  loss = jax.jit(lambda p: rep.loss(p, batch, hp, jax.random.key(6)))
  (l0, a0), (l1, a1) = loss(params), loss(_swap_sub_contexts(params))
  z0, z1 = np.asarray(a0["z"]), np.asarray(a1["z"])
  np.testing.assert_allclose(z1, z0[:, np.r_[0:2, 4:6, 2:4]], rtol=1e-6)  # really swapped
  assert not np.allclose(z0[:, 2:4], z0[:, 4:6])
  np.testing.assert_allclose(l1, l0, rtol=1e-5)
  m0, m1 = a0["metrics"], a1["metrics"]
  np.testing.assert_allclose(m1["rep/infonce_decomposition"], m0["rep/infonce_decomposition"],
                             rtol=1e-5)
  np.testing.assert_allclose(m1["rep/infonce_sub0"], m0["rep/infonce_sub1"], rtol=1e-5)


def test_settings_that_cannot_split_or_contrast_are_refused():
  with pytest.raises(ValueError, match="too small"):
    check(LearnerConfig.create(**dict(CFG, latent_size=2)))
  with pytest.raises(ValueError, match="equal sub-contexts"):
    check(LearnerConfig.create(**dict(CFG, latent_size=5, domino=dict(global_context=False))))
  with pytest.raises(ValueError, match="meta_batch_size"):
    check(LearnerConfig.create(**dict(CFG, meta_batch_size=1)))
  with pytest.raises(ValueError, match="learner.domino.contrastive_bound"):
    LearnerConfig.create(**dict(CFG, domino=dict(contrastive_bound="mine")))
  # Without a global chunk the code is the sub-contexts alone; one sub-context has no d.
  z = jax.random.normal(jax.random.key(0), (4, 6))
  bounds, d = domino_terms(z, z, 0.5, num_contexts=3, global_context=False)
  assert bounds.shape == (3,)
  assert float(domino_terms(z, z, 0.5, num_contexts=1)[1]) == 0.0


# ------------------------------------------------------------------------------ the preset


def test_preset_follows_the_provenance_rows():
  rows = {r[0]: r for r in presets.PROVENANCE}
  for name in ("domino sub-contexts", "domino code size", "domino contrastive weight and clip",
               "domino backward prediction", "domino learning rate", "domino meta-batch draw"):
    assert name in rows, name
  for env in presets.MUJOCO_ENVS:
    p = presets.preset("domino", env)
    lrn, hp = p["learner"], p["hparams"]
    assert (lrn["latent_size"], lrn["encoder"], tuple(lrn["encoder_hidden"]),
            lrn["context_size"], tuple(lrn["aux_hidden"])) == (30, "mean_tanh", (256, 128, 64),
                                                               10, (200,) * 4)
    assert lrn["domino"]["num_contexts"] == 2 and lrn["domino"]["global_context"] is True
    assert lrn["task_replace"] is False and lrn["net_init"] == "rlkit"
    assert hp["encoder_lr"] == 1e-3
    assert hp["domino"] == dict(contrastive_weight=1e-3, temperature=0.004,
                                decomposition_weight=1.0, backward_weight=0.5,
                                decoder_weight=1.0, contrastive_clip=1e4)
  # The backbone is the UNICORN lineage's (FOCALSAC on ant-dir).
  assert presets.preset("domino", "hopper_param")["learner"]["backbone"] == "sac"
  assert presets.preset("domino", "ant_dir")["learner"]["backbone"] == "brac"
  assert presets.preset("domino", "point_robot")["learner"]["latent_size"] == 9


def _train(learner: dict, hparams: dict, data, chunks: int):
  cfg = LearnerConfig.create(**dict(learner, obs_size=2, action_size=2, task_param_size=2,
                                    num_task_labels=40))
  lrn = make_learner(cfg)
  state = lrn.init(seed_keys(0, 1))
  before = jax.tree.map(np.asarray, state.params)
  hp = broadcast_hparams(HParams.create(**hparams), 1)
  metrics = []
  for _ in range(chunks):
    state, m = lrn.train_chunk(state, data.to_device(), hp, POOL)
    metrics.append(m)
  return before, state, metrics


@pytest.mark.parametrize("env", ["point_robot", "hopper_param"])
def test_tiny_preset_trains_with_finite_losses(env, synthetic_data):
  p = presets.preset("domino", env, tiny=True)
  before, state, metrics = _train(p["learner"], p["hparams"], synthetic_data,
                                  p["num_steps"] // p["learner"]["steps_per_chunk"])
  assert int(state.step[0]) == p["num_steps"]
  for m in metrics:
    bad = sorted(k for k, v in m.items() if not np.all(np.isfinite(v)))
    assert not bad, bad
    assert {"rep/infonce_sub0", "rep/infonce_sub1", "rep/infonce_decomposition",
            "rep/nll_state", "rep/nll_reward", "rep/nll_backward"} <= set(m)
  for group in ("encoder", "actor"):
    changed = [not np.allclose(a, np.asarray(b)) for a, b in
               zip(jax.tree.leaves(before[group]), jax.tree.leaves(state.params[group]))]
    assert any(changed), group


@pytest.mark.slow
@pytest.mark.parametrize("backbone", sorted(b for b in BACKBONES if b not in ("sac", "brac")))
def test_domino_trains_on_every_backbone(backbone, synthetic_data):
  if backbone == "dt":  # the DT preset's backbone settings, DOMINO's objective
    base = presets.preset("unicorn_ss_dt", "point_robot", tiny=True)
    learner = dict(base["learner"], representation="domino")
  else:
    base = presets.preset("domino", "point_robot", tiny=True)
    learner = dict(base["learner"], backbone=backbone)
  _, state, metrics = _train(learner, presets.preset("domino", "point_robot", tiny=True)["hparams"],
                             synthetic_data, 1)
  assert all(np.all(np.isfinite(v)) for v in metrics[0].values())
  assert "rep/infonce_decomposition" in metrics[0]


def test_decomposition_gradient_reaches_only_the_later_sub_context_of_z_a():
  """The official stop-gradients (utils.py:829-840): of each pair j < k, z_a's sub-context j
  enters the decomposition term only through a stop-gradient, so d has no gradient in it, while
  z_a's sub-context k has one."""
  from jcomrl.algos.objectives.domino import domino_terms

  c = 3
  z_a = jax.random.normal(jax.random.key(0), (5, 2 * c))
  z_b = jax.random.normal(jax.random.key(1), (5, 2 * c))
  g = jax.grad(lambda za: domino_terms(za, z_b, 0.5, num_contexts=2, global_context=False)[1])(
      z_a)
  assert float(jnp.max(jnp.abs(g[:, :c]))) == 0.0
  assert float(jnp.max(jnp.abs(g[:, c:]))) > 1e-4
