"""A causal GPT and the decision transformer built on it (flax; one unbatched sequence per call).

The GPT follows the GPT-2 block the official decision transformers use
(kzl/decision-transformer ``gym/decision_transformer/models/trajectory_gpt2.py``, copied into
mxu34/prompt-dt ``prompt_dt/trajectory_gpt2.py``: HuggingFace GPT-2 without its positional
embedding): input dropout, then per layer ``x + attn(LN(x))`` and ``x + MLP(LN(x))`` with a
``4 * embed`` MLP, then a final LayerNorm; attention is causal and never attends to padded keys.
Weights of the GPT's own layers start at N(0, 0.02) with zero biases (GPT-2's init); the DT's
embedding and output layers use torch's ``nn.Linear`` kernel init (U(+-1/sqrt(fan_in))) with zero
biases (torch also draws the biases uniformly) and an N(0, 1) timestep table (torch's
``nn.Embedding``).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jcomrl.types import Segment, vector_to_segment

_GPT_INIT = nn.initializers.normal(0.02)
_TORCH_LINEAR = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
_LN_EPS = 1e-5  # GPT-2's layer_norm_epsilon


class CausalSelfAttention(nn.Module):
  embed: int
  heads: int
  dropout: float

  @nn.compact
  def __call__(self, x, allowed, train: bool):
    """``x [T, E]``; ``allowed [T, T]`` bool: query i may attend to key j."""
    num, head = x.shape[0], self.embed // self.heads
    qkv = nn.Dense(3 * self.embed, kernel_init=_GPT_INIT, name="qkv")(x)
    q, k, v = (y.reshape(num, self.heads, head) for y in jnp.split(qkv, 3, axis=-1))
    scores = jnp.einsum("qhd,khd->hqk", q, k) / jnp.sqrt(jnp.float32(head))
    scores = jnp.where(allowed[None], scores, jnp.finfo(scores.dtype).min)
    w = nn.Dropout(self.dropout)(jax.nn.softmax(scores, axis=-1), deterministic=not train)
    out = jnp.einsum("hqk,khd->qhd", w, v).reshape(num, self.embed)
    out = nn.Dense(self.embed, kernel_init=_GPT_INIT, name="proj")(out)
    return nn.Dropout(self.dropout)(out, deterministic=not train)


class GPTBlock(nn.Module):
  embed: int
  heads: int
  dropout: float

  @nn.compact
  def __call__(self, x, allowed, train: bool):
    x = x + CausalSelfAttention(self.embed, self.heads, self.dropout, name="attn")(
        nn.LayerNorm(_LN_EPS, name="ln_1")(x), allowed, train)
    h = nn.Dense(4 * self.embed, kernel_init=_GPT_INIT, name="fc")(nn.LayerNorm(_LN_EPS,
                                                                                name="ln_2")(x))
    h = nn.Dense(self.embed, kernel_init=_GPT_INIT, name="fc_proj")(nn.relu(h))
    return x + nn.Dropout(self.dropout)(h, deterministic=not train)


class GPT(nn.Module):
  """Token embeddings ``[T, E]`` -> hidden states ``[T, E]`` under the mask ``allowed``."""

  embed: int
  layers: int
  heads: int
  dropout: float

  @nn.compact
  def __call__(self, tokens, allowed, train: bool):
    x = nn.Dropout(self.dropout)(tokens, deterministic=not train)
    for i in range(self.layers):
      x = GPTBlock(self.embed, self.heads, self.dropout, name=f"block_{i}")(x, allowed, train)
    return nn.LayerNorm(_LN_EPS, name="ln_f")(x)


def causal_mask(keep: jnp.ndarray) -> jnp.ndarray:
  """``[T, T]`` bool: query ``i`` sees key ``j`` iff ``j <= i`` and key ``j`` is kept."""
  num = keep.shape[0]
  return jnp.tril(jnp.ones((num, num), bool)) & keep[None, :]


class DecisionTransformer(nn.Module):
  """Predicts ``a_t`` from the ``s_t`` token of ``(R_1, s_1, a_1, ..., R_K, s_K, a_K)``.

  As kzl's ``DecisionTransformer.forward`` (``models/decision_transformer.py``) and Prompt-DT's
  (``prompt_dt/prompt_decision_transformer.py:56-139``): one linear embedding per modality plus
  a learned timestep embedding added to all three tokens of a step, LayerNorm over the stacked
  tokens, a causal GPT, ``tanh(Linear)`` on the state tokens. ``prefix`` conditions the sequence
  on the task through tokens placed before it (the mask stays causal over the whole):

  * ``"prompt"``: ``z`` is a Prompt-DT prompt (``jcomrl.types.segment_to_vector`` of a
    ``prompt_length`` window): its ``(R, s, a)`` tokens with their own embeddings and no
    LayerNorm, as Prompt-DT (``:42-45, 86-118``; the LayerNorm at ``:78`` is applied before the
    prompt is prepended).
  * ``"code"``: ``z`` (a task code from an objective's encoder) embedded by a linear layer as one
    first token: UNICORN's DT variants (paper §3.2, Table 4; no code was released, so the token is
    treated like a prompt token: own embedding, no LayerNorm).
  * ``"none"``: no task tokens.
  """

  obs_size: int
  action_size: int
  embed: int
  layers: int
  heads: int
  dropout: float
  max_timestep: int
  prefix: str = "code"
  prompt_length: int = 0

  def _tokens(self, seg: Segment, tag: str):
    """``[3K, E]`` tokens of a segment and ``[3K]`` keep flags."""
    num = seg.rtg.shape[0]
    t = jnp.clip(seg.timestep, 0, self.max_timestep - 1)
    te = nn.Embed(self.max_timestep, self.embed, embedding_init=nn.initializers.normal(1.0),
                  name=f"{tag}embed_timestep")(t)
    dense = lambda name: nn.Dense(self.embed, kernel_init=_TORCH_LINEAR, name=f"{tag}{name}")
    r = dense("embed_return")(seg.rtg[:, None]) + te
    s = dense("embed_state")(seg.obs) + te
    a = dense("embed_action")(seg.action) + te
    tokens = jnp.stack([r, s, a], axis=1).reshape(3 * num, self.embed)
    return tokens, jnp.repeat(seg.mask > 0, 3)

  @nn.compact
  def __call__(self, seg: Segment, z, train: bool = False):
    """``seg``: one ``Segment [K]``; ``z [Z]``. Returns the actions ``[K, action_size]``."""
    num = seg.rtg.shape[0]
    tokens, keep = self._tokens(seg, "")
    tokens = nn.LayerNorm(_LN_EPS, name="embed_ln")(tokens)
    if self.prefix == "prompt":
      p_tokens, p_keep = self._tokens(vector_to_segment(z, self.prompt_length, self.obs_size),
                                      "prompt_")
      tokens, keep = jnp.concatenate([p_tokens, tokens]), jnp.concatenate([p_keep, keep])
    elif self.prefix == "code":
      code = nn.Dense(self.embed, kernel_init=_TORCH_LINEAR, name="embed_code")(z)
      tokens = jnp.concatenate([code[None], tokens])
      keep = jnp.concatenate([jnp.ones((1,), bool), keep])
    elif self.prefix != "none":
      raise ValueError(f"unknown decision-transformer prefix {self.prefix!r}; expected 'prompt', "
                       "'code' or 'none'")
    h = GPT(self.embed, self.layers, self.heads, self.dropout, name="gpt")(
        tokens, causal_mask(keep), train)
    state_tokens = h[-3 * num:].reshape(num, 3, self.embed)[:, 1]
    return jnp.tanh(nn.Dense(self.action_size, kernel_init=_TORCH_LINEAR,
                             name="predict_action")(state_tokens))
