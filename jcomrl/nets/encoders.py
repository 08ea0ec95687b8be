"""Context encoders: a set of transitions of one task -> a task code z.

Every encoder maps context features ``[..., K, F]`` to a code ``[..., Z]`` with
``__call__(features, key=None)`` and exposes its per-transition embeddings ``[..., K, Z]`` with
``embed(features, key=None)`` (what CSRO's CLUB term and CORRO's InfoNCE act on). ``key`` is
only used by stochastic encoders; ``key=None`` gives their deterministic (mean) code.

An encoder also says which of its parameters a critic loss may train when the representation
objective trains the per-transition embeddings itself (CORRO: the attention pooling only):
``critic_trainable_mask(encoder, params)``, from the class attribute ``CRITIC_SUBMODULES``
(None: every parameter). Encoders are registered by name in :data:`ENCODER_BUILDERS`.

Set encoders (``mean_tanh``, ``stochastic``, ``attention``, ``pearl``) are invariant to the order
of the context's transitions; sequence encoders (``gru``, ``transformer``) read the context as a
trajectory in time order, so their code depends on it (BOReL/VariBAD's recurrent belief,
UNICORN's comparison in App. C.1). A sequence encoder's per-transition embedding at step ``t`` is
its output after reading transitions ``0..t``; its code is the last one (GRU) or their mean
(transformer).
"""

from __future__ import annotations

import math

from collections.abc import Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jcomrl.nets.mlp import MLP
from jcomrl.types import Transition

def context_features(context: Transition, use_next_obs: bool) -> jnp.ndarray:
  """Per-transition encoder input ``[..., F]``: (s, a, r) or (s, a, r, s')."""
  parts = [context.obs, context.action, context.reward[..., None]]
  if use_next_obs:
    parts.append(context.next_obs)
  return jnp.concatenate(parts, axis=-1)


def context_feature_size(obs_dim: int, act_dim: int, use_next_obs: bool) -> int:
  return obs_dim + act_dim + 1 + (obs_dim if use_next_obs else 0)


class MeanTanhEncoder(nn.Module):
  """Per-transition MLP -> tanh -> mean over the context.

  ``stochastic=False`` is FOCAL/CSRO's deterministic encoder. ``stochastic=True`` is UNICORN's
  default: one learned global log-variance vector, the variance clipped to
  ``[min_var, max_var]`` (0.1, 10 in the official code), and a reparameterised Gaussian sample per
  transition *before* the tanh. Without a key the stochastic encoder returns its mean code.
  """

  hidden_sizes: Sequence[int]
  latent_size: int
  stochastic: bool = False
  min_var: float = 0.1
  max_var: float = 10.0
  init_scheme: str = "lecun_normal"  # jcomrl.nets.mlp.INITS; "rlkit": UNICORN's FlattenMlp encoder

  def setup(self):
    # rlkit's FlattenMlp output layer is U(+-3e-3) (UNICORN models/encoder.py:229-231 with
    # torchkit/networks.py:24,60-62).
    self.net = MLP(self.hidden_sizes, self.latent_size, init_scheme=self.init_scheme,
                   final_scale=3e-3 if self.init_scheme == "rlkit" else None)
    if self.stochastic:
      self.log_var = self.param("log_var", nn.initializers.zeros, (self.latent_size,))

  def embed(self, features: jnp.ndarray, key: jax.Array | None = None) -> jnp.ndarray:
    chex.assert_rank(features, {2, 3, 4})
    pre = self.net(features)
    if self.stochastic:
      std = jnp.sqrt(jnp.clip(jnp.exp(self.log_var), self.min_var, self.max_var))
      if key is not None:
        pre = pre + std * jax.random.normal(key, pre.shape)
    return jnp.tanh(pre)

  def posterior(self, features: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(mean, log_var)`` ``[..., K, Z]`` of each transition's Gaussian before the tanh
    (stochastic only): what a KL-to-prior term regularises."""
    if not self.stochastic:
      raise ValueError("the deterministic 'mean_tanh' encoder has no posterior; use "
                       "'stochastic'")
    mean = self.net(features)
    var = jnp.clip(jnp.exp(self.log_var), self.min_var, self.max_var)
    return mean, jnp.broadcast_to(jnp.log(var), mean.shape)

  def pool_embeddings(self, embeddings: jnp.ndarray) -> jnp.ndarray:
    """The code from per-transition embeddings ``[..., K, Z]``: their mean."""
    return jnp.mean(embeddings, axis=-2)

  def __call__(self, features: jnp.ndarray, key: jax.Array | None = None) -> jnp.ndarray:
    return self.pool_embeddings(self.embed(features, key))


class AttentionPoolEncoder(nn.Module):
  """CORRO's encoder: L2-normalised per-transition embeddings, attention-pooled into z.

  ``embed`` (submodule ``transition``) is what the contrastive InfoNCE loss trains; the pooling
  (submodule ``pool``: a linear score per embedding, softmax over the context, weighted sum) is
  trained by the critic loss only, as in CORRO's offline-RL stage.
  """

  CRITIC_SUBMODULES = ("pool",)

  hidden_sizes: Sequence[int]
  latent_size: int

  def setup(self):
    self.transition = MLP(self.hidden_sizes, self.latent_size)
    self.pool = nn.Dense(1)

  def embed(self, features: jnp.ndarray, key: jax.Array | None = None) -> jnp.ndarray:
    del key
    chex.assert_rank(features, {2, 3, 4})
    e = self.transition(features)
    return e / (jnp.linalg.norm(e, axis=-1, keepdims=True) + 1e-6)

  def pool_embeddings(self, embeddings: jnp.ndarray) -> jnp.ndarray:
    """The code from per-transition embeddings ``[..., K, Z]``: their attention-weighted sum."""
    w = jax.nn.softmax(self.pool(embeddings)[..., 0], axis=-1)
    return jnp.sum(w[..., None] * embeddings, axis=-2)

  def __call__(self, features: jnp.ndarray, key: jax.Array | None = None) -> jnp.ndarray:
    return self.pool_embeddings(self.embed(features))


class GRUEncoder(nn.Module):
  """A recurrent belief over the context trajectory: per-transition MLP features, a GRU in time
  order, a projection of every hidden state to ``latent_size``.

  ``embed`` gives the code after each prefix ``0..t`` (``[..., K, Z]``); the code is the last
  one, so two orderings of the same transitions give different codes.

  ``stochastic=False`` (``"gru"``): a tanh-bounded code (bounded like the set encoders', so
  distance-metric objectives have a finite optimum). ``stochastic=True`` (``"gru_gaussian"``):
  the Gaussian belief of VariBAD/BOReL's ``RNNEncoder`` (Rondorf/BOReL ``models/encoder.py``,
  UNICORN ``models/encoder.py:12-125``: a GRU, then linear mean and log-variance heads, a
  reparameterised sample), ``posterior`` exposing the per-prefix ``(mean, log_var)`` for a KL
  term; without a key the code is the mean. Difference: (s, a, r[, s']) go through one MLP
  instead of one small embedding per component.
  """

  hidden_sizes: Sequence[int]
  latent_size: int
  stochastic: bool = False

  def setup(self):
    width = self.hidden_sizes[-1]
    self.transition = MLP(self.hidden_sizes[:-1], width)
    self.rnn = nn.RNN(nn.GRUCell(width))
    self.head = nn.Dense(self.latent_size)
    if self.stochastic:
      self.log_var_head = nn.Dense(self.latent_size)

  def _hidden(self, features: jnp.ndarray) -> jnp.ndarray:
    chex.assert_rank(features, {2, 3, 4})
    x = nn.relu(self.transition(features))
    lead, steps = x.shape[:-2], x.shape[-2]
    h = self.rnn(x.reshape((-1, steps, x.shape[-1])))
    return h.reshape(lead + h.shape[-2:])

  def posterior(self, features: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(mean, log_var)``, each ``[..., K, Z]``: the Gaussian belief after each prefix."""
    if not self.stochastic:
      raise ValueError("the deterministic 'gru' encoder has no posterior; use 'gru_gaussian'")
    h = self._hidden(features)
    return self.head(h), self.log_var_head(h)

  def embed(self, features: jnp.ndarray, key: jax.Array | None = None) -> jnp.ndarray:
    if not self.stochastic:
      return jnp.tanh(self.head(self._hidden(features)))
    mean, log_var = self.posterior(features)
    if key is None:
      return mean
    return mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape)

  def pool_embeddings(self, embeddings: jnp.ndarray) -> jnp.ndarray:
    """The code: the belief after the whole context (its last embedding)."""
    return embeddings[..., -1, :]

  def __call__(self, features: jnp.ndarray, key: jax.Array | None = None) -> jnp.ndarray:
    return self.pool_embeddings(self.embed(features, key))


def product_of_gaussians(mean: jnp.ndarray, var: jnp.ndarray, min_var: float = 1e-7):
  """The product of the Gaussian factors ``N(mean_k, var_k)`` ``[..., K, Z]`` over ``k`` (the
  axis ``-2``), normalised: ``var = 1 / sum_k 1 / var_k``, ``mean = var sum_k mean_k / var_k``
  (each ``var_k`` clipped below at ``min_var`` first). PEARL's ``_product_of_gaussians``
  (rail-berkeley/rlkit ``rlkit/torch/smac/agent.py:18-25``)."""
  var = jnp.maximum(var, min_var)
  prod_var = 1.0 / jnp.sum(1.0 / var, axis=-2)
  return prod_var * jnp.sum(mean / var, axis=-2), prod_var


class ProductOfGaussiansEncoder(nn.Module):
  """PEARL's (and SMAC's) context encoder: an MLP maps each transition to a Gaussian factor
  ``N(mu_k, sigma_k^2)``, ``sigma_k^2 = softplus`` of its second half of outputs, and the
  posterior q(z | c) is their normalised product (precision-weighted mean), a set function of
  the context (rlkit ``rlkit/torch/smac/agent.py:176-201``: ``latent_posterior``; the MLP
  ``rlkit/torch/smac/launcher.py:124-128,150-156``: 2 x latent outputs, hidden 200 x 3).

  With a key the code is one reparameterised sample of the posterior (the information
  bottleneck: SMAC's agent samples z in training, agent.py:228-229, *and* at evaluation,
  ``rlkit/torch/smac/sampler.py:131-145``, which is also jcomrl's default
  ``EvalSettings.encoder_code="sample"``); without a key its mean. ``posterior`` gives the
  product ``(mean, log_var)`` as ``[..., 1, Z]`` (one belief per context) for the ``kl`` term;
  ``embed`` the factors' means ``[..., K, Z]``. The code is not a pooling of those means alone
  (the precisions weigh them), so this encoder has no ``pool_embeddings``.
  """

  hidden_sizes: Sequence[int]
  latent_size: int
  min_var: float = 1e-7  # agent.py:22 (clamp of each factor's variance)
  init_scheme: str = "lecun_normal"  # "rlkit": rlkit's Mlp (its head U(+-3e-3), mlp.py:55-57)

  def setup(self):
    self.net = MLP(self.hidden_sizes, 2 * self.latent_size, init_scheme=self.init_scheme,
                   final_scale=3e-3 if self.init_scheme == "rlkit" else None)

  def factors(self, features: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Each transition's factor ``(mean, var)``, ``[..., K, Z]`` each."""
    chex.assert_rank(features, {2, 3, 4})
    out = self.net(features)
    return out[..., :self.latent_size], jax.nn.softplus(out[..., self.latent_size:])

  def product(self, features: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The posterior's ``(mean, var)``, ``[..., Z]`` each."""
    return product_of_gaussians(*self.factors(features), self.min_var)

  def posterior(self, features: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(mean, log_var)`` ``[..., 1, Z]``: the product posterior, one per context."""
    mean, var = self.product(features)
    return mean[..., None, :], jnp.log(var)[..., None, :]

  def embed(self, features: jnp.ndarray, key: jax.Array | None = None) -> jnp.ndarray:
    """The factors' means ``[..., K, Z]`` (per-transition codes, no sample)."""
    del key
    return self.factors(features)[0]

  def __call__(self, features: jnp.ndarray, key: jax.Array | None = None) -> jnp.ndarray:
    mean, var = self.product(features)
    if key is None:
      return mean
    return mean + jnp.sqrt(var) * jax.random.normal(key, mean.shape)


def sinusoidal_positions(steps: int, width: int) -> jnp.ndarray:
  """Vaswani et al.'s fixed position code ``[steps, width]`` (no learned size, so a context of
  any length can be encoded: the accumulating protocols grow it round by round)."""
  pos = jnp.arange(steps, dtype=jnp.float32)[:, None]
  freq = jnp.exp(-math.log(10000.0) * jnp.arange(0, width, 2, dtype=jnp.float32) / width)
  angles = pos * freq[None, :]
  out = jnp.zeros((steps, width))
  out = out.at[:, 0::2].set(jnp.sin(angles))
  return out.at[:, 1::2].set(jnp.cos(angles[:, : width // 2]))


class TransformerEncoder(nn.Module):
  """A small causal transformer over the context trajectory: per-transition tokens plus a
  sinusoidal time code, ``num_layers`` pre-LayerNorm blocks (one attention head by default, a
  2x MLP), a tanh projection per token; the code is the mean of the token outputs.

  The causal mask makes the embedding at ``t`` a function of transitions ``0..t`` only (the same
  contract as the GRU's), and the time code makes the code order-sensitive.
  """

  hidden_sizes: Sequence[int]
  latent_size: int
  num_layers: int = 1
  num_heads: int = 1

  @nn.compact
  def embed(self, features: jnp.ndarray, key: jax.Array | None = None) -> jnp.ndarray:
    del key
    chex.assert_rank(features, {2, 3, 4})
    width = self.hidden_sizes[-1]
    x = MLP(self.hidden_sizes[:-1], width, name="transition")(features)
    steps = x.shape[-2]
    x = x + sinusoidal_positions(steps, width)
    mask = nn.make_causal_mask(jnp.ones(x.shape[:-1], jnp.int32))
    for i in range(self.num_layers):
      h = nn.LayerNorm(name=f"ln_attn_{i}")(x)
      x = x + nn.MultiHeadDotProductAttention(self.num_heads, name=f"attn_{i}")(h, h, mask=mask)
      h = nn.LayerNorm(name=f"ln_mlp_{i}")(x)
      x = x + MLP((2 * width,), width, name=f"mlp_{i}")(h)
    x = nn.LayerNorm(name="ln_out")(x)
    return jnp.tanh(nn.Dense(self.latent_size, name="head")(x))

  def pool_embeddings(self, embeddings: jnp.ndarray) -> jnp.ndarray:
    """The code: the mean of the per-step outputs."""
    return jnp.mean(embeddings, axis=-2)

  def __call__(self, features: jnp.ndarray, key: jax.Array | None = None) -> jnp.ndarray:
    return self.pool_embeddings(self.embed(features, key))


ENCODER_BUILDERS = {
    "mean_tanh": lambda hidden, latent: MeanTanhEncoder(tuple(hidden), latent),
    "stochastic": lambda hidden, latent: MeanTanhEncoder(tuple(hidden), latent, stochastic=True),
    "attention": lambda hidden, latent: AttentionPoolEncoder(tuple(hidden), latent),
    "gru": lambda hidden, latent: GRUEncoder(tuple(hidden), latent),
    "gru_gaussian": lambda hidden, latent: GRUEncoder(tuple(hidden), latent, stochastic=True),
    "transformer": lambda hidden, latent: TransformerEncoder(tuple(hidden), latent),
    "pearl": lambda hidden, latent: ProductOfGaussiansEncoder(tuple(hidden), latent),
}
# Encoders whose code depends on the order of the context's transitions.
SEQUENCE_ENCODERS = ("gru", "gru_gaussian", "transformer")
# Encoders with a Gaussian ``posterior(features) -> (mean, log_var)`` (what the ``kl`` term needs).
GAUSSIAN_ENCODERS = ("stochastic", "gru_gaussian", "pearl")
ENCODERS = tuple(ENCODER_BUILDERS)


# Encoders built with a choice of initialisation (``jcomrl.nets.mlp.INITS``).
INIT_ENCODERS = ("mean_tanh", "stochastic", "pearl")


def make_encoder(kind: str, hidden_sizes: Sequence[int], latent_size: int,
                 init: str = "lecun_normal") -> nn.Module:
  """The context encoder named ``kind`` (one of ``ENCODERS``); ``init`` applies to
  ``INIT_ENCODERS`` (the others always use flax's default initialisation)."""
  if kind not in ENCODER_BUILDERS:
    raise ValueError(f"unknown encoder {kind!r}; expected one of {ENCODERS}")
  module = ENCODER_BUILDERS[kind](hidden_sizes, latent_size)
  if kind in INIT_ENCODERS:
    module = module.clone(init_scheme=init)
  return module


def critic_trainable_mask(encoder: nn.Module, params) -> dict:
  """Boolean pytree over ``params`` (the encoder's variables): the leaves a critic loss may
  train besides the representation objective (``CRITIC_SUBMODULES``; all leaves by default)."""
  names = getattr(encoder, "CRITIC_SUBMODULES", None)
  if names is None:
    return jax.tree.map(lambda _: True, params)
  return {col: {mod: jax.tree.map(lambda _, m=mod: m in names, sub) for mod, sub in tree.items()}
          for col, tree in params.items()}
