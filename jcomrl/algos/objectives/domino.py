"""DOMINO (Mu et al., NeurIPS 2022): a context decomposed into sub-contexts, each trained by an
InfoNCE lower bound on its mutual information with the task's transitions, the sub-contexts
pushed apart by *minimising* the same bound between them, plus forward (and backward)
transition prediction from the whole context.

Official code: ``YaoMarkMu/DOMINO_MB-MetaRL`` @1618435 (TF2; read, not copied). Line numbers
below are of that commit: ``utils.py`` = ``domino/dynamics/core/utils.py``, ``domino.py`` =
``domino/dynamics/domino.py``, ``run_domino.py`` = ``run_scripts/run_domino.py``.

The code ``z`` of the shared context encoder is split into equal chunks
(:func:`sub_contexts`): ``num_contexts`` decomposed sub-contexts (official: 2, the two
``con_head_layers`` of ``utils.py:684-694``) and, with ``global_context`` (official
``use_global_head_flag`` 1, ``run_domino.py:233-238``), a leading global chunk. Chunk size
``d = latent_size // (num_contexts + global_context)``; the sub-contexts are the last
``num_contexts * d`` dims, the global context the first ``latent_size - num_contexts * d`` (the
preset's 30 = 3 x the official ``context_out_dim`` 10, ``run_domino.py:230-232``). The official
global head (``utils.py:674-682``) only feeds a dynamics head; here the global chunk is only read
by the transition decoders (and the policy): no contrastive term acts on it.

Per meta-batch of ``B`` tasks, ``z_a`` is the code of each task's context (the shared ``z``) and
``z_b`` the code of a second context of the same task (``K`` transitions of the task's RL draw,
uniform over its whole data: :func:`jcomrl.data.sampler.task_positives`). Per sub-context ``c``
(:func:`contrastive_bound`, the bound of ``mi.WITH_NEGATIVES`` named by
``learner.domino.contrastive_bound``, official InfoNCE): the query is ``z_a[b, c]``, the positive
``stop_gradient(z_b[b, c])``, the negatives ``stop_gradient(z_b[b', c])`` of the other rows
``b' != b``, scores = dot products / ``hparams.domino.temperature`` (official 0.004, no L2
normalisation: ``utils.py:781-784``; ``learner.domino.l2_normalise`` is an option). Official
``infer_info_nce`` (``utils.py:759-789``): query = the online sub-head feature, positive = a
stop-gradient feature of another sample of the same ensemble slot, negatives = the stop-gradient
features of the other slots; ``con_forward`` (``utils.py:829-840``) sums it over the sub-heads.

Decomposition (:func:`domino_terms`): for each pair ``j < k`` of sub-contexts, the mean of two
bounds between them, as the official ``d`` of ``utils.py:838``: (1) query ``z_a[b, k]``,
positive and negatives ``stop_gradient(z_b[., j])``; (2) query ``stop_gradient(z_a[b, j])``,
positive ``stop_gradient(z_b[b, k])``, negatives ``z_b[b', k]`` with their gradient. Its value is
symmetric in ``j, k``; as in the official stop-gradients only sub-context ``k`` receives its
gradient. It is *added* to the loss (minimised): ``loss = -sum_c bound_c + d``
(``utils.py:840`` returns the sub-heads' cross-entropies minus ``d``).

Loss (``hparams.domino.*``, official values as defaults)::

    decoder_weight * [NLL(s' - s, r | z, s, a) + bounds penalty]        (Reconstruction, domino.py:724-728)
  + backward_weight * [NLL(s - s' | z, s', a) + bounds penalty]        (back_coeff 0.5, run_domino.py:224-226)
  + contrastive_weight * clip(-sum_c bound_c + decomposition_weight * d, +-contrastive_clip)
                                                                      (cons_lr 1e-3, clip 1e4: domino.py:123,741)

The NLL is mbrl-lib's form ``mean((t - mu)^2 exp(-lv) + lv)``, as the official probabilistic
dynamics loss (``domino.py:604-616``) with its ``0.01 (sum max_lv - sum min_lv)`` penalty
(``domino.py:657-659``) and bounds initialised at 0.5 / -10 (``utils.py:131-140``).

Deviations (model-free, offline; every one a row of :data:`jcomrl.algos.presets.PROVENANCE`):

* DOMINO is model-based (a dynamics ensemble planned with CEM); here its context objective trains
  the encoder of jcomrl's model-free offline learner, the decoders being auxiliary heads. As in
  the official, only the model losses train the encoder (``critic_trains = None``).
* One encoder network, its output split into chunks; the official global head reads its own
  trunk (``cp_hidden_*``) and the sub-heads the contrastive trunk (``online_contra_*``,
  ``utils.py:617-627,728-735``).
* Positive and negative keys come from the same encoder on the second context, stop-gradient;
  the official keys are the global head's weights (``head_layer_pre`` is created under the
  global head's variable name, ``utils.py:696-703``, shared under ``AUTO_REUSE``,
  ``layers.py:384``) applied to the contrastive trunk's features, stop-gradient
  (``utils.py:721-726,837``).
* Negatives are the meta-batch's other tasks (a repeated task is a false negative: the preset
  draws tasks without replacement). The official negatives are the other ensemble slots' batches,
  which its comment describes as of different dynamics (``utils.py:791-795``); the released
  ``fit`` draws every slot's rows by a uniform bootstrap over all training data
  (``domino.py:1259-1263``).
* The value is a mean over tasks of ``-bound`` (nats, with its ``log(M + 1)``); the official a
  mean over samples of cross-entropies summed over the 5 hard-coded slots (``utils.py:765``,
  ``domino.py:484``), so the clip bites at another point.
* One decoder reads the whole ``z`` and also predicts ``r`` (an offline learner has no reward
  function; the official plans with the env's, ``domino.py:311``); the official has 3 dynamics
  heads, head ``i`` reading context chunk ``i`` (``utils.py:142-167``, 735), trained by T-MCL's
  per-trajectory best head (``domino.py:618-655``), on normalised targets, swish layers and
  L2 weight decay (``run_domino.py:344-347``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jcomrl.algos.objectives.base import register
from jcomrl.algos.objectives.corro import CONTRASTIVE_BOUNDS, corro_infonce
from jcomrl.algos.objectives.unicorn_ss import (Reconstruction, ReconstructionHyper,
                                                ReconstructionSettings)
from jcomrl.algos.settings import hyper
from jcomrl.data.sampler import task_positives
from jcomrl.nets.decoders import GaussianMLP


def sub_context_size(latent_size: int, num_contexts: int, global_context: bool) -> int:
  """``d = latent_size // (num_contexts + global_context)``: the size of one sub-context."""
  return latent_size // (num_contexts + int(global_context))


def sub_contexts(z: jnp.ndarray, num_contexts: int, global_context: bool) -> list[jnp.ndarray]:
  """The ``num_contexts`` sub-contexts ``[..., d]`` of codes ``z [..., Z]``: the last
  ``num_contexts * d`` dims in order (the first ``Z - num_contexts * d`` are the global
  context)."""
  z_size = z.shape[-1]
  d = sub_context_size(z_size, num_contexts, global_context)
  start = z_size - num_contexts * d
  return [z[..., start + i * d:start + (i + 1) * d] for i in range(num_contexts)]


def _other_rows(x: jnp.ndarray) -> jnp.ndarray:
  """``[B, ...] -> [B, B - 1, ...]``: row ``b`` holds every row but ``b``, in order."""
  b = x.shape[0]
  idx = np.array([[j for j in range(b) if j != i] for i in range(b)], np.int32)
  return x[idx]


def contrastive_bound(query: jnp.ndarray, keys: jnp.ndarray, temperature, *,
                      bound: str = "infonce", alpha: float = 0.5,
                      live_negatives: bool = False) -> jnp.ndarray:
  """The lower bound (nats) of ``query [B, d]`` against ``keys [B, d]``: row ``b``'s positive is
  ``stop_gradient(keys[b])``, its negatives the other rows of ``keys`` (stop-gradient unless
  ``live_negatives``), scores dot products / ``temperature``; ``bound`` names one of
  ``mi.WITH_NEGATIVES`` (``"interpolated"`` with ``alpha``)."""
  if query.shape[0] < 2:
    raise ValueError(f"DOMINO's negatives are the other tasks of the meta-batch: need at least "
                     f"2 tasks, got {query.shape[0]}")
  positive = jax.lax.stop_gradient(keys)
  negatives = _other_rows(keys if live_negatives else positive)
  return corro_infonce(query, positive, negatives, temperature, bound=bound, alpha=alpha)


def _l2(x: jnp.ndarray) -> jnp.ndarray:
  return x / (jnp.linalg.norm(x, axis=-1, keepdims=True) + 1e-6)


def domino_terms(z_a: jnp.ndarray, z_b: jnp.ndarray, temperature, *, num_contexts: int = 2,
                 global_context: bool = True, bound: str = "infonce", alpha: float = 0.5,
                 l2_normalise: bool = False) -> tuple[jnp.ndarray, jnp.ndarray]:
  """``(bounds [num_contexts], d)``: each sub-context's bound between the codes ``z_a [B, Z]``
  and ``z_b [B, Z]`` of two contexts of the same ``B`` tasks, and the decomposition term ``d``,
  the sum over pairs ``j < k`` of the symmetrised bound between sub-contexts ``j`` and ``k``
  (stop-gradients as the official ``utils.py:838``: see the module docstring). ``d`` is 0 for
  one sub-context."""
  subs_a = sub_contexts(z_a, num_contexts, global_context)
  subs_b = sub_contexts(z_b, num_contexts, global_context)
  if l2_normalise:
    subs_a, subs_b = [_l2(x) for x in subs_a], [_l2(x) for x in subs_b]
  kw = dict(bound=bound, alpha=alpha)
  bounds = jnp.stack([contrastive_bound(a, b, temperature, **kw)
                      for a, b in zip(subs_a, subs_b)])
  pairs = []
  for j in range(num_contexts):
    for k in range(j + 1, num_contexts):
      forward = contrastive_bound(subs_a[k], subs_b[j], temperature, **kw)
      reverse = contrastive_bound(jax.lax.stop_gradient(subs_a[j]), subs_b[k], temperature,
                                  live_negatives=True, **kw)
      pairs.append(0.5 * (forward + reverse))
  d = sum(pairs) if pairs else jnp.zeros((), z_a.dtype)
  return bounds, d


@dataclasses.dataclass(frozen=True)
class DominoSettings(ReconstructionSettings):
  """DOMINO's settings (``learner.domino.*``; also the reconstruction term's ``decoder_nll`` and
  ``decode_state``)."""

  # Decomposed sub-contexts (official 2: utils.py:684-694) and a global chunk before them
  # (official use_global_head_flag 1: run_domino.py:233-238).
  num_contexts: int = 2
  global_context: bool = True
  # The bound of jcomrl.mi.WITH_NEGATIVES (official: InfoNCE, utils.py:781-786).
  contrastive_bound: str = "infonce"
  contrastive_alpha: float = 0.5
  # L2-normalise sub-contexts before the dot products (official: no, utils.py:781-784).
  l2_normalise: bool = False
  # Backward prediction of s - s' from (z, s', a) (official: back_coeff > 0, domino.py:661-728).
  backward_model: bool = True

  def validate(self) -> None:
    super().validate()
    self._choice("contrastive_bound", CONTRASTIVE_BOUNDS)
    self._positive("num_contexts")


@hyper
class DominoHyper(ReconstructionHyper):
  """DOMINO's weights (``hparams.domino.*``); ``decoder_weight`` weighs the forward NLL."""

  ranges = {"temperature": "positive", "contrastive_clip": "positive"}

  contrastive_weight: float = 1e-3  # cons_lr, domino.py:123,741
  temperature: float = 0.004  # utils.py:784
  decomposition_weight: float = 1.0  # the official subtracts d unweighted, utils.py:840
  backward_weight: float = 0.5  # back_coeff, run_domino.py:224-226; domino.py:727
  contrastive_clip: float = 1e4  # tf.clip_by_value(-10000, 10000), domino.py:741


@register
class Domino(Reconstruction):
  """See the module docstring."""

  name = "domino"
  Settings = DominoSettings
  Hyper = DominoHyper

  def __init__(self, cfg, encoder):
    super().__init__(cfg, encoder)
    # The backward head: one Gaussian head of the forward decoder's kind (the official bb_model
    # has the forward model's architecture, domino.py:355-412).
    self.back_decoder = GaussianMLP(cfg.aux_hidden, cfg.obs_size,
                                    init_scheme=self.decoder.init_scheme)

  @classmethod
  def validate(cls, cfg) -> None:
    s = cls.settings_of(cfg)
    if sub_context_size(cfg.latent_size, s.num_contexts, s.global_context) < 1:
      raise ValueError(f"latent_size {cfg.latent_size} is too small for learner.domino."
                       f"num_contexts={s.num_contexts} sub-contexts"
                       f"{' and a global context' if s.global_context else ''}")
    if not s.global_context and cfg.latent_size % s.num_contexts:
      raise ValueError(f"without learner.domino.global_context, latent_size "
                       f"{cfg.latent_size} must split into learner.domino.num_contexts="
                       f"{s.num_contexts} equal sub-contexts")
    if cfg.meta_batch_size < 2:
      raise ValueError("DOMINO's negatives are the meta-batch's other tasks: meta_batch_size "
                       f"must be >= 2, got {cfg.meta_batch_size}")

  def init(self, key):
    k_fwd, k_back = jax.random.split(key)
    own = super().init(k_fwd)
    if self.settings.backward_model:
      zeros = lambda n: jnp.zeros((1, n))
      x = zeros(self.cfg.latent_size + self.cfg.obs_size + self.cfg.action_size)
      own["back_decoder"] = self.back_decoder.init(k_back, x)
    return own

  def backward_nll(self, params, ctx, z):
    """NLL of each context transition's ``s - s'`` given ``(z, s', a)``, plus the head's
    log-variance-bound penalty (official bb_model, ``domino.py:661-722``)."""
    zt = jnp.broadcast_to(z[:, None, :], ctx.obs.shape[:-1] + z.shape[-1:])
    x = jnp.concatenate([zt, ctx.next_obs, ctx.action], axis=-1)
    mean, log_var, pen = self.back_decoder.apply(params["back_decoder"], x)
    nll = self.nll(mean, log_var, ctx.obs - ctx.next_obs)
    return nll, pen

  def loss(self, params, batch, hp, key, z, pretrain_params=None):
    s, h = self.settings, self.hyper(hp)
    recon, metrics = super().loss(params, batch, hp, key, z)
    k = batch.context.reward.shape[1]
    z_b = self.encoder.encode(params, task_positives(batch.rl, k), jax.random.fold_in(key, 1))
    bounds, d = domino_terms(z, z_b, h.temperature, num_contexts=s.num_contexts,
                             global_context=s.global_context, bound=s.contrastive_bound,
                             alpha=s.contrastive_alpha, l2_normalise=s.l2_normalise)
    mi_loss = jnp.clip(-jnp.sum(bounds) + h.decomposition_weight * d,
                       -h.contrastive_clip, h.contrastive_clip)
    total = recon + h.contrastive_weight * mi_loss
    name = s.contrastive_bound
    metrics = {**metrics, **{f"rep/{name}_sub{i}": bounds[i] for i in range(s.num_contexts)},
               f"rep/{name}_decomposition": d, "rep/contrastive_loss": mi_loss}
    if s.backward_model:
      nll_back, pen = self.backward_nll(params, batch.context, z)
      total = total + h.backward_weight * (nll_back + pen)
      metrics["rep/nll_backward"] = nll_back
    return total, metrics
