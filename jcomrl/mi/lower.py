"""Variational lower bounds on mutual information, as pure functions of critic scores.

Conventions used by every function here:

* A minibatch holds ``K >= 2`` joint samples ``(x_i, y_i) ~ p(x, y)``. The **score matrix** is
  ``scores[i, j] = f(x_i, y_j)``: rows index ``x``, columns index ``y``, the ``K`` positives sit on
  the diagonal and the ``K (K - 1)`` off-diagonal entries are samples from ``p(x) p(y)``.
* The **explicit-negatives** forms take positive scores ``pos[i] = f(x_i, y_i)`` of shape ``[K]``
  and negative scores ``neg[i, m]`` of shape ``[K, M]`` (e.g. CORRO's negatives that share
  ``(s, a)`` with the anchor). With ``neg`` = the off-diagonal entries of row ``i`` they equal the
  matrix forms.
* Every bound returns a scalar in **nats** whose value is the MI estimate and whose gradient is the
  one that *maximising* the bound should follow (train with ``loss = -bound``). Where training and
  reporting differ (JS, SMILE, MINE's moving average) the value is ``surrogate +
  stop_gradient(estimate - surrogate)``: the value is the estimate, the gradient the surrogate's.
* All reductions are log-sum-exp based and the diagonal is masked with ``jnp.where`` (never
  ``inf * eye``, which puts NaNs on the off-diagonal). Terms of the form ``E[e^{f}]`` that the bound
  subtracts are exponentiated with :func:`_safe_exp`, which is exact below ``e^40`` and continues
  linearly above, so values and gradients stay finite in float32 for scores up to +-1e3 (in that
  regime the true bound is below -1e17 anyway).

References:
  Poole, Ozair, van den Oord, Alemi, Tucker, "On Variational Bounds of Mutual Information",
  ICML 2019 (TUBA, NWJ, InfoNCE, I_alpha; the unifying view used here).
  Song & Ermon, "Understanding the Limitations of Variational Mutual Information Estimators",
  ICLR 2020 (SMILE; variance of partition-function estimators).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from jcomrl.mi._util import check_square, offdiag_mask, offdiag_mean

_EXP_CAP = 40.0


def _safe_exp(u: jnp.ndarray) -> jnp.ndarray:
  """``exp(u)`` for ``u <= 40``, continued with matching value and slope above (finite in f32)."""
  return jnp.exp(jnp.minimum(u, _EXP_CAP)) * (1.0 + jnp.maximum(u - _EXP_CAP, 0.0))


def _check_scores(scores: jnp.ndarray) -> int:
  return check_square(scores, "score matrix")


def _check_log_baseline(log_baseline: jnp.ndarray | None, k: int, dtype) -> jnp.ndarray:
  """The ``[K]`` log-baseline ``b(y_j)`` of TUBA / I_alpha (zeros if not given)."""
  if log_baseline is None:
    return jnp.zeros((k,), dtype)
  chex.assert_shape(log_baseline, (k,))
  return log_baseline


def _mean_pos(scores: jnp.ndarray) -> jnp.ndarray:
  """``mean_i S_ii``: the joint-sample term ``E_p[f]``."""
  return jnp.mean(jnp.diagonal(scores))


def _report(surrogate: jnp.ndarray, estimate: jnp.ndarray) -> jnp.ndarray:
  """Value ``estimate`` with the gradient of ``surrogate`` (train with one, report the other)."""
  return surrogate + jax.lax.stop_gradient(estimate - surrogate)


def _clip(scores: jnp.ndarray, tau: float | None) -> jnp.ndarray:
  """SMILE's clip of the partition function's scores to ``[-tau, tau]`` (``None``: no clip)."""
  return scores if tau is None else jnp.clip(scores, -tau, tau)


def _check_pos_neg(pos: jnp.ndarray, neg: jnp.ndarray) -> tuple[int, int]:
  chex.assert_rank(pos, 1)
  chex.assert_rank(neg, 2)
  if neg.shape[0] != pos.shape[0]:
    raise ValueError(f"neg must be [K, M] with K = len(pos) = {pos.shape[0]}, got {neg.shape}")
  if neg.shape[1] < 1:
    raise ValueError("need at least one negative per positive (M >= 1)")
  return pos.shape[0], neg.shape[1]


def logmeanexp(x: jnp.ndarray, axis=None, where: jnp.ndarray | None = None,
               keepdims: bool = False) -> jnp.ndarray:
  """``log(mean(exp(x)))`` over ``axis``, optionally only over entries where ``where`` is True.

  Masked entries are replaced by ``-inf`` with ``jnp.where`` before the log-sum-exp, so they get
  exactly zero gradient. Every reduced slice must keep at least one entry.

  This is the log-partition estimate of DV/MINE and of MISA's per-state term
  ``log E_{a ~ pi} e^{Q(s, a)}`` (Ma et al., NeurIPS 2023) with the correct ``log K``.
  Bias: the log of a sample mean is biased low (Jensen) by about ``Var/(2 n mean^2)``.

  Args:
    x: values.
    axis: axis or axes to reduce (``None`` = all).
    where: optional boolean mask broadcastable to ``x``.
    keepdims: keep reduced axes.

  Returns:
    The log-mean-exp.
  """
  if where is None:
    n = x.size if axis is None else math.prod(
        x.shape[a] for a in ((axis,) if isinstance(axis, int) else axis))
    return jax.nn.logsumexp(x, axis=axis, keepdims=keepdims) - math.log(n)
  where = jnp.broadcast_to(where, x.shape)
  lse = jax.nn.logsumexp(jnp.where(where, x, -jnp.inf), axis=axis, keepdims=keepdims)
  count = jnp.sum(where, axis=axis, keepdims=keepdims)
  return lse - jnp.log(count.astype(x.dtype))


def _offdiag_lme(scores: jnp.ndarray) -> jnp.ndarray:
  """Log-mean-exp over the ``K (K - 1)`` off-diagonal entries."""
  k = scores.shape[0]
  lse = jax.nn.logsumexp(jnp.where(offdiag_mask(k), scores, -jnp.inf))
  return lse - math.log(k * (k - 1))


# --------------------------------------------------------------------------------------------
# InfoNCE / CPC
# --------------------------------------------------------------------------------------------


def infonce(scores: jnp.ndarray) -> jnp.ndarray:
  """InfoNCE / CPC lower bound from a ``[K, K]`` score matrix.

  Bound: ``I(X; Y) >= E[(1/K) sum_i log( e^{f(x_i, y_i)} / ((1/K) sum_j e^{f(x_i, y_j)}) )]``
  ``= log K - CE(scores, labels = arange(K))``, normalising each row (each ``x_i``) over the ``K``
  candidate ``y_j``; the denominator includes the positive. Optimal critic:
  ``f = log p(y | x) + c(y)``.

  Bias/variance: every term is ``<= log K``, so the estimate never exceeds ``log K`` and is badly
  biased low once ``I >~ log K`` (tightness needs ``K >~ e^I``); in exchange it has low variance.
  The minibatch value is an unbiased estimate of a valid bound. The standard representation-
  learning objective (CPC, CORRO).

  Reference: van den Oord, Li, Vinyals, "Representation Learning with Contrastive Predictive
  Coding", 2018; Poole et al., ICML 2019.

  Args:
    scores: ``[K, K]`` critic scores, positives on the diagonal.

  Returns:
    The scalar bound in nats.
  """
  k = _check_scores(scores)
  lse = jax.nn.logsumexp(scores, axis=1)
  return math.log(k) + jnp.mean(jnp.diagonal(scores) - lse)


def infonce_with_negatives(pos: jnp.ndarray, neg: jnp.ndarray) -> jnp.ndarray:
  """InfoNCE with explicit negatives: ``log(M + 1) + mean_i [pos_i - LSE(pos_i, neg_i1..neg_iM)]``.

  Bound: as :func:`infonce` with ``M + 1`` candidates per anchor (the positive and its ``M``
  negatives); a valid lower bound when the negatives are drawn from the marginal (or, as in
  CORRO, a bound on the conditional MI given what the negatives share with the positive).
  Bias/variance: capped at ``log(M + 1)``; low variance. Equals :func:`infonce` when ``neg[i]``
  are the off-diagonal entries of row ``i``.

  Reference: van den Oord et al., 2018; Yuan & Lu, "Robust Task Representations for Offline
  Meta-Reinforcement Learning via Contrastive Learning" (CORRO), ICML 2022.

  Args:
    pos: ``[K]`` positive scores ``f(x_i, y_i)``.
    neg: ``[K, M]`` negative scores ``f(x_i, y_im)``.

  Returns:
    The scalar bound in nats.
  """
  _, m = _check_pos_neg(pos, neg)
  lse = jax.nn.logsumexp(jnp.concatenate([pos[:, None], neg], axis=1), axis=1)
  return math.log(m + 1) + jnp.mean(pos - lse)


# --------------------------------------------------------------------------------------------
# NWJ, DV (MINE), TUBA
# --------------------------------------------------------------------------------------------


def nwj(scores: jnp.ndarray) -> jnp.ndarray:
  """NWJ (f-GAN KL, MINE-f) lower bound: ``E_p[f] - e^{-1} E_{p(x)p(y)}[e^{f}]``.

  Minibatch: ``mean_i S_ii - mean_{i != j} exp(S_ij - 1)``. Optimal critic: ``f = 1 + log r``
  with ``r = p(x, y) / (p(x) p(y))`` (note the ``+1``; it is not shift invariant).

  Bias/variance: linear in expectations, so the minibatch value is an *unbiased* estimate of a
  valid bound; but its variance grows roughly like ``e^I`` (Song & Ermon 2020), so it is noisy at
  high MI.

  Reference: Nguyen, Wainwright, Jordan, "Estimating divergence functionals and the likelihood
  ratio by convex risk minimization", IEEE Trans. IT 2010; Poole et al., ICML 2019 (I_NWJ).

  Args:
    scores: ``[K, K]`` critic scores, positives on the diagonal.

  Returns:
    The scalar bound in nats.
  """
  _check_scores(scores)
  return _mean_pos(scores) - _safe_exp(_offdiag_lme(scores) - 1.0)


def nwj_with_negatives(pos: jnp.ndarray, neg: jnp.ndarray) -> jnp.ndarray:
  """NWJ with explicit negatives: ``mean(pos) - mean(exp(neg - 1))`` over all ``K * M`` negatives.

  Bound: ``I >= E_p[f] - e^{-1} E_{p(x)p(y)}[e^{f}]``, valid when the negatives are samples of the
  product of marginals; optimal critic ``f = 1 + log r``. Bias/variance as :func:`nwj`: an
  unbiased estimate of a valid bound, variance growing like ``e^I``.

  Reference: Nguyen, Wainwright, Jordan, IEEE Trans. IT 2010; Poole et al., ICML 2019.

  Args:
    pos: ``[K]`` positive scores.
    neg: ``[K, M]`` negative scores.

  Returns:
    The scalar bound in nats.
  """
  _check_pos_neg(pos, neg)
  return jnp.mean(pos) - _safe_exp(logmeanexp(neg) - 1.0)


def dv(scores: jnp.ndarray) -> jnp.ndarray:
  """Donsker–Varadhan (MINE) bound: ``E_p[f] - log E_{p(x)p(y)}[e^{f}]``.

  Minibatch: ``mean_i S_ii - logmeanexp_{i != j} S_ij``. Optimal critic: ``f = log r + c`` for
  any constant ``c`` (shift invariant); the DV bound is tighter than NWJ for the same critic.

  Bias/variance: the log of a minibatch mean is biased (the minibatch value is *not* a bound in
  expectation and its gradient is biased; see :func:`dv_ema` for MINE's correction); variance of
  the partition estimate grows like ``e^I`` (Song & Ermon 2020).

  Reference: Donsker & Varadhan, 1983; Belghazi et al., "Mutual Information Neural Estimation"
  (MINE), ICML 2018.

  Args:
    scores: ``[K, K]`` critic scores, positives on the diagonal.

  Returns:
    The scalar estimate in nats.
  """
  _check_scores(scores)
  return _mean_pos(scores) - _offdiag_lme(scores)


def dv_with_negatives(pos: jnp.ndarray, neg: jnp.ndarray, per_row: bool = False) -> jnp.ndarray:
  """DV with explicit negatives: ``mean(pos) - logmeanexp(neg)``.

  With ``per_row=True`` the log-partition is taken per anchor, ``mean_i [pos_i -
  logmeanexp_m neg_im]``: the unnormalised Barber–Agakov bound with a per-conditioning partition
  function, which is what MISA's per-state term uses (tighter than the global DV by Jensen).

  Character as :func:`dv`: biased minibatch estimate (log of a mean), variance ~ ``e^I``.
  Reference: Belghazi et al., ICML 2018; Poole et al., ICML 2019 (UBA); Ma et al., "Mutual
  Information Regularized Offline RL" (MISA), NeurIPS 2023.

  Args:
    pos: ``[K]`` positive scores.
    neg: ``[K, M]`` negative scores.
    per_row: per-anchor partition function instead of one global one.

  Returns:
    The scalar estimate in nats.
  """
  _check_pos_neg(pos, neg)
  if per_row:
    return jnp.mean(pos - logmeanexp(neg, axis=1))
  return jnp.mean(pos) - logmeanexp(neg)


class DVEMAState(NamedTuple):
  """Carried state of :func:`dv_ema` (MINE's moving average, Belghazi et al., ICML 2018).

  Attributes:
    log_ema: log of the (not yet debiased) moving average of the partition estimate
      ``E_{p(x)p(y)} e^{f}``.
    step: number of updates so far.
  """
  log_ema: jnp.ndarray
  step: jnp.ndarray


def dv_ema_init() -> DVEMAState:
  """Initial :class:`DVEMAState` of :func:`dv_ema` (MINE, Belghazi et al., ICML 2018).

  The first update replaces the average by the current batch's partition estimate, so the value
  stored here is irrelevant; only ``step = 0`` matters.
  """
  return DVEMAState(log_ema=jnp.zeros((), jnp.float32), step=jnp.zeros((), jnp.int32))


def dv_ema(scores: jnp.ndarray, state: DVEMAState, momentum: float = 0.9
           ) -> tuple[jnp.ndarray, DVEMAState]:
  """DV / MINE estimate with the bias-corrected moving-average gradient, as a pure function.

  Value: the minibatch DV estimate ``mean_i S_ii - log Z_b`` with ``Z_b = mean_{i != j}
  e^{S_ij}`` (identical to :func:`dv`). Gradient: MINE's corrected gradient
  ``mean_i grad S_ii - mean_{i != j}(e^{S_ij} grad S_ij) / Z_ema``, where ``Z_ema`` is an
  exponential moving average of ``Z_b`` that *includes the current batch* and is debiased like
  Adam's moments (``ema_t / (1 - momentum^t)``), so the first step's gradient equals DV's. The
  average is kept in log space (``logaddexp``) so it cannot overflow. Since the current batch has
  weight ``>= 1 - momentum``, ``Z_b / Z_ema <= 1 / (1 - momentum)``.

  Bias/variance: averaging the denominator over batches reduces the bias of the gradient of
  ``log Z`` that a single minibatch has (the plug-in DV gradient is a ratio of minibatch means);
  the reported value keeps DV's plug-in bias and ``e^I`` variance.

  Reference: Belghazi et al., "Mutual Information Neural Estimation", ICML 2018 (the
  moving-average gradient correction, Eq. 12).

  Args:
    scores: ``[K, K]`` critic scores, positives on the diagonal.
    state: the carried :class:`DVEMAState` (start from :func:`dv_ema_init`).
    momentum: weight of the old average, in ``[0, 1)``.

  Returns:
    ``(value, new_state)``.
  """
  _check_scores(scores)
  pos = _mean_pos(scores)
  log_z = _offdiag_lme(scores)
  lz = jax.lax.stop_gradient(log_z)
  log_m = jnp.log(jnp.asarray(momentum, lz.dtype))
  log_1m = jnp.log1p(-jnp.asarray(momentum, lz.dtype))
  log_ema = jnp.where(state.step == 0, log_1m + lz,
                      jnp.logaddexp(log_m + state.log_ema.astype(lz.dtype), log_1m + lz))
  t = (state.step + 1).astype(lz.dtype)
  # log(1 - momentum^t), computed as log(-expm1(t log m)); equals log_1m at t = 1.
  log_debias = jnp.log(-jnp.expm1(t * log_m))
  log_z_ema = jax.lax.stop_gradient(log_ema - log_debias)
  surrogate = pos - jnp.exp(log_z - log_z_ema)
  value = _report(surrogate, pos - log_z)
  return value, DVEMAState(log_ema=jax.lax.stop_gradient(log_ema), step=state.step + 1)


def tuba(scores: jnp.ndarray, log_baseline: jnp.ndarray | None = None) -> jnp.ndarray:
  """TUBA lower bound with a log-baseline ``b(y) = log a(y)``.

  Bound: ``I >= 1 + E_p[f(x, y) - b(y)] - E_{p(x)p(y)}[e^{f(x, y) - b(y)}]`` (from
  ``log z <= z / a + log a - 1``). Minibatch: ``1 + mean_i (S_ii - b_i) - mean_{i != j}
  exp(S_ij - b_j)`` with ``b_j = b(y_j)``. Optimal: ``e^{f - b} = r``, e.g. ``f = log p(y|x)``,
  ``b = log p(y)``. ``b = 0`` gives ``nwj(scores + 1)``; a constant ``b = 1`` gives ``nwj``.

  Bias/variance: linear in expectations, so the minibatch value is an unbiased estimate of a
  valid bound; a learned baseline reduces but does not remove the ``e^I`` variance.

  Reference: Poole et al., "On Variational Bounds of Mutual Information", ICML 2019 (I_TUBA).

  Args:
    scores: ``[K, K]`` critic scores, positives on the diagonal.
    log_baseline: ``[K]`` values ``b(y_j)`` (default 0).

  Returns:
    The scalar bound in nats.
  """
  k = _check_scores(scores)
  log_baseline = _check_log_baseline(log_baseline, k, scores.dtype)
  joint = jnp.mean(jnp.diagonal(scores) - log_baseline)
  marginal = _safe_exp(_offdiag_lme(scores - log_baseline[None, :]))
  return 1.0 + joint - marginal


# --------------------------------------------------------------------------------------------
# JS-trained critics: JS (reports NWJ) and SMILE (reports clipped DV)
# --------------------------------------------------------------------------------------------


def js_fgan(scores: jnp.ndarray) -> jnp.ndarray:
  """The f-GAN Jensen–Shannon objective ``E_p[-softplus(-f)] - E_{p(x)p(y)}[softplus(f)]``.

  This is ``2 JSD(p(x,y) || p(x)p(y)) - log 4`` at the optimum ``f = log r``: not an MI estimate
  but a stable surrogate to *train* a critic with (the GAN discriminator / binary NCE loss), used
  by Deep InfoMax. Low variance, bounded scores' gradients (sigmoids).

  Reference: Nowozin, Cseke, Tomioka, "f-GAN", NeurIPS 2016; Hjelm et al., "Learning deep
  representations by mutual information estimation and maximization" (DIM), ICLR 2019.

  Args:
    scores: ``[K, K]`` critic scores, positives on the diagonal.

  Returns:
    The scalar objective (nats, but not an MI value).
  """
  _check_scores(scores)
  pos = jnp.mean(-jax.nn.softplus(-jnp.diagonal(scores)))
  return pos - offdiag_mean(jax.nn.softplus(scores))


def js(scores: jnp.ndarray) -> jnp.ndarray:
  """Train with the JS surrogate, report NWJ on the shifted critic.

  Value: ``nwj(scores + 1) = 1 + mean_i S_ii - mean_{i != j} e^{S_ij}`` (= ``tuba(scores)`` with
  ``b = 0``). The JS optimum is ``f = log r`` while NWJ's is ``1 + log r``, so the ``+1`` shift
  makes the reported value tight (``-> I``) at the JS optimum; evaluating NWJ on the raw JS critic
  would report ``I - 1/e`` there. Gradient: that of :func:`js_fgan`.

  Bias/variance: the critic trains stably (JS gradients), the reported value is an unbiased
  estimate of a valid lower bound but keeps NWJ's ``e^I`` evaluation variance.

  Reference: Poole et al., ICML 2019 (I_JS); Hjelm et al., ICLR 2019.

  Args:
    scores: ``[K, K]`` critic scores, positives on the diagonal.

  Returns:
    The scalar estimate in nats (gradient = JS surrogate's).
  """
  return _report(js_fgan(scores), nwj(scores + 1.0))


def js_fgan_with_negatives(pos: jnp.ndarray, neg: jnp.ndarray) -> jnp.ndarray:
  """:func:`js_fgan` with explicit negatives: ``mean(-softplus(-pos)) - mean(softplus(neg))``.

  Objective: ``E_p[-softplus(-f)] - E_{neg}[softplus(f)]``, i.e. ``2 JSD - log 4`` at its optimum
  ``f = log r``; a stable, low-variance training surrogate (binary classification of positives
  against negatives), not an MI value and not a bound on it.

  Reference: Nowozin, Cseke, Tomioka, "f-GAN", NeurIPS 2016; Hjelm et al. (DIM), ICLR 2019.

  Args:
    pos: ``[K]`` positive scores.
    neg: ``[K, M]`` negative scores.

  Returns:
    The scalar objective.
  """
  _check_pos_neg(pos, neg)
  return jnp.mean(-jax.nn.softplus(-pos)) - jnp.mean(jax.nn.softplus(neg))


def js_with_negatives(pos: jnp.ndarray, neg: jnp.ndarray) -> jnp.ndarray:
  """:func:`js` with explicit negatives: value ``nwj_with_negatives(pos + 1, neg + 1)``, JS grad.

  Value: the NWJ bound ``1 + E_p[f] - E_{neg}[e^{f}]`` on the shifted critic ``f + 1`` (tight at
  the JS optimum ``f = log r``); gradient: :func:`js_fgan_with_negatives`. Bias/variance as
  :func:`js`: stable training, an unbiased estimate of a valid bound with NWJ's ``e^I`` variance.

  Reference: Poole et al., ICML 2019 (I_JS); Hjelm et al., ICLR 2019.

  Args:
    pos: ``[K]`` positive scores.
    neg: ``[K, M]`` negative scores.

  Returns:
    The scalar estimate in nats.
  """
  return _report(js_fgan_with_negatives(pos, neg), nwj_with_negatives(pos + 1.0, neg + 1.0))


def smile(scores: jnp.ndarray, tau: float | None = 5.0) -> jnp.ndarray:
  """SMILE: train with the JS surrogate, report DV with the partition function's scores clipped.

  Value: ``mean_i S_ii - logmeanexp_{i != j} clip(S_ij, -tau, tau)``, i.e.
  ``E_p[f] - log E_{p(x)p(y)}[clip(e^{f}, e^{-tau}, e^{tau})]``; ``tau=None`` is ``dv(scores)``.
  Gradient: that of :func:`js_fgan` (whose optimum ``log r`` is also a DV optimum).

  Bias/variance: clipping bounds the variance of the partition estimate by
  ``(e^tau - e^-tau)^2 / (4 n)`` at the price of a bias that grows with the mass of ``r`` outside
  ``[e^-tau, e^tau]``: ``tau = 1`` lowest variance but biased low at high MI, ``tau = 5`` close to
  the truth, ``tau = inf`` is DV's ``e^I`` variance.

  Reference: Song & Ermon, "Understanding the Limitations of Variational Mutual Information
  Estimators", ICLR 2020.

  Args:
    scores: ``[K, K]`` critic scores, positives on the diagonal.
    tau: clip threshold (``None`` = no clipping).

  Returns:
    The scalar estimate in nats (gradient = JS surrogate's).
  """
  _check_scores(scores)
  return _report(js_fgan(scores), _mean_pos(scores) - _offdiag_lme(_clip(scores, tau)))


def smile_with_negatives(pos: jnp.ndarray, neg: jnp.ndarray, tau: float | None = 5.0
                         ) -> jnp.ndarray:
  """:func:`smile` with explicit negatives: value ``mean(pos) - logmeanexp(clip(neg))``, JS grad.

  Value: ``E_p[f] - log E_{neg}[clip(e^{f}, e^{-tau}, e^{tau})]``; gradient:
  :func:`js_fgan_with_negatives`. Bias/variance as :func:`smile`: clipping trades the ``e^I``
  variance of the partition estimate for a bias that grows as ``tau`` shrinks.

  Reference: Song & Ermon, "Understanding the Limitations of Variational Mutual Information
  Estimators", ICLR 2020.

  Args:
    pos: ``[K]`` positive scores.
    neg: ``[K, M]`` negative scores.
    tau: clip threshold (``None`` = no clipping).

  Returns:
    The scalar estimate in nats.
  """
  _check_pos_neg(pos, neg)
  return _report(js_fgan_with_negatives(pos, neg), jnp.mean(pos) - logmeanexp(_clip(neg, tau)))


# --------------------------------------------------------------------------------------------
# Interpolated bound I_alpha
# --------------------------------------------------------------------------------------------


def _loo_logmeanexp_rows(scores: jnp.ndarray) -> jnp.ndarray:
  """``out[j, i] = log( (1/(K-1)) sum_{l != j} exp(scores[l, i]) )`` in O(K^2), stably.

  For rows that are not a column's argmax the sum without row ``j`` still contains the column
  maximum, so ``log(sum - e_j)`` (shifted by the max) cannot cancel below 1; for the argmax row
  the column's log-sum-exp without its maximum is computed directly.
  """
  k = scores.shape[0]
  rows = jnp.arange(k)
  col_max = jax.lax.stop_gradient(jnp.max(scores, axis=0))
  is_max = rows[:, None] == jnp.argmax(scores, axis=0)[None, :]
  e = jnp.exp(scores - col_max[None, :])
  rest = jnp.sum(e, axis=0, keepdims=True) - e
  general = col_max[None, :] + jnp.log(jnp.where(is_max, 1.0, rest))
  lse_without_max = jax.nn.logsumexp(jnp.where(is_max, -jnp.inf, scores), axis=0)
  loo_lse = jnp.where(is_max, lse_without_max[None, :], general)
  return loo_lse - math.log(k - 1)


def interpolated(scores: jnp.ndarray, log_baseline: jnp.ndarray | None = None,
                 alpha: float = 0.5) -> jnp.ndarray:
  """Interpolated bound ``I_alpha`` between InfoNCE (``alpha = 1``) and TUBA (``alpha = 0``).

  Bound: ``I >= 1 + E[log(e^{f(x_1, y)} / a_alpha(y))] - E_{p(y)}[e^{f(x_1, y)} / a_alpha(y)]``
  with the baseline ``a_alpha(y) = alpha * (1/K') sum_k e^{f(x_k, y)} + (1 - alpha) e^{b(y)}``.
  Minibatch (leave one out, ``K' = K - 1``): for a held-out index ``j`` let
  ``a_j(y) = alpha * mean_{l != j} e^{f(x_l, y)} + (1 - alpha) e^{b(y)}``; then
  ``joint = mean_{i != j} [S_ii - log a_j(y_i)]`` (``y_i`` is paired with ``x_i`` and independent
  of the other ``x_l``), ``marginal = mean_i mean_{l != i} e^{S_li} / a_i(y_i)`` (``y_i`` is
  independent of every ``x_l``, ``l != i``), and ``I_alpha = 1 + joint - marginal``.
  ``alpha = 0`` is exactly :func:`tuba` with the same baseline; ``alpha = 1`` makes the marginal
  term 1 and caps the value at ``log(K - 1)`` (InfoNCE with ``K - 1`` samples).

  Bias/variance: the NCE part of the baseline bounds the ratio by ``1/alpha``, which caps the
  estimate near ``log(K'/alpha)`` and keeps the variance low; small ``alpha`` (e.g. 0.01) tracks
  higher MI than InfoNCE with far less variance than NWJ/TUBA. An unbiased estimate of a valid
  bound. (``alpha`` weights the minibatch/NCE baseline, as in the code accompanying the paper.)

  Reference: Poole et al., "On Variational Bounds of Mutual Information", ICML 2019 (I_alpha).

  Args:
    scores: ``[K, K]`` critic scores, positives on the diagonal.
    log_baseline: ``[K]`` values ``b(y_j)`` (default 0).
    alpha: weight of the minibatch (NCE) baseline, in ``[0, 1]``.

  Returns:
    The scalar bound in nats.
  """
  k = _check_scores(scores)
  log_baseline = _check_log_baseline(log_baseline, k, scores.dtype)
  alpha = jnp.asarray(alpha, scores.dtype)
  log_loo = _loo_logmeanexp_rows(scores)  # [j, i]
  log_a = jnp.logaddexp(jnp.log(alpha) + log_loo, jnp.log1p(-alpha) + log_baseline[None, :])
  joint = _mean_pos(scores) - offdiag_mean(log_a)
  log_ratio = jnp.diagonal(log_loo) - jnp.diagonal(log_a)
  marginal = _safe_exp(logmeanexp(log_ratio))
  return 1.0 + joint - marginal


def tuba_with_negatives(pos: jnp.ndarray, neg: jnp.ndarray,
                        log_baseline: jnp.ndarray | None = None) -> jnp.ndarray:
  """:func:`tuba` with explicit negatives and a per-anchor log-baseline ``b_i``.

  Bound: ``1 + mean_i (pos_i - b_i) - mean_{i,m} exp(neg_im - b_i)``, valid when the negatives
  are samples of the product of marginals (the baseline may depend on the anchor, not on the
  candidate). ``b = 0`` is ``nwj_with_negatives(pos + 1, neg + 1)``. Bias/variance as :func:`tuba`.

  Reference: Poole et al., "On Variational Bounds of Mutual Information", ICML 2019 (I_TUBA).

  Args:
    pos: ``[K]`` positive scores.
    neg: ``[K, M]`` negative scores.
    log_baseline: ``[K]`` values ``b_i`` (default 0).

  Returns:
    The scalar bound in nats.
  """
  k, _ = _check_pos_neg(pos, neg)
  b = _check_log_baseline(log_baseline, k, pos.dtype)
  return 1.0 + jnp.mean(pos - b) - _safe_exp(logmeanexp(neg - b[:, None]))


def interpolated_with_negatives(pos: jnp.ndarray, neg: jnp.ndarray,
                                log_baseline: jnp.ndarray | None = None,
                                alpha: float = 0.5) -> jnp.ndarray:
  """:func:`interpolated` (``I_alpha``) with explicit negatives, the anchor in the role of ``y``.

  For anchor ``i`` the baseline mixes the negatives' NCE estimate and ``e^{b_i}``:
  ``a_i = alpha * mean_m e^{neg_im} + (1 - alpha) e^{b_i}`` for the positive (the negatives are
  independent of the positive pair), and, for negative ``m`` (itself a sample of the product of
  marginals), the leave-one-out ``a_i^{-m}`` over the other ``M - 1`` negatives. Then
  ``I_alpha = 1 + mean_i [pos_i - log a_i] - mean_{i,m} e^{neg_im} / a_i^{-m}``.
  ``alpha = 0`` equals :func:`tuba_with_negatives` with the same baseline; ``alpha = 1`` caps the
  value near ``log M``. Needs ``M >= 2``.

  Reference: Poole et al., ICML 2019 (I_alpha).

  Args:
    pos: ``[K]`` positive scores.
    neg: ``[K, M]`` negative scores.
    log_baseline: ``[K]`` values ``b_i`` (default 0).
    alpha: weight of the NCE baseline, in ``[0, 1]``.

  Returns:
    The scalar bound in nats.
  """
  k, m = _check_pos_neg(pos, neg)
  if m < 2:
    raise ValueError(f"interpolated_with_negatives needs at least 2 negatives per anchor, got {m}")
  b = _check_log_baseline(log_baseline, k, pos.dtype)
  alpha = jnp.asarray(alpha, pos.dtype)
  mix = lambda log_nce: jnp.logaddexp(jnp.log(alpha) + log_nce, jnp.log1p(-alpha) + b)
  log_a = mix(logmeanexp(neg, axis=1))  # [K]
  log_loo = _loo_logmeanexp_rows(neg.T).T  # [K, M]: log mean_{l != m} e^{neg_il}
  log_a_loo = jax.vmap(mix, in_axes=1, out_axes=1)(log_loo)
  joint = jnp.mean(pos - log_a)
  marginal = _safe_exp(logmeanexp(neg - log_a_loo))
  return 1.0 + joint - marginal


# Lower bounds with explicit negatives by name: what ``learner.corro.contrastive_bound`` selects.
WITH_NEGATIVES = {"infonce": infonce_with_negatives, "nwj": nwj_with_negatives,
                  "js": js_with_negatives, "dv": dv_with_negatives,
                  "smile": smile_with_negatives, "tuba": tuba_with_negatives,
                  "interpolated": interpolated_with_negatives}
