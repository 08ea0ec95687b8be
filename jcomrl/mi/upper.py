"""Upper bounds on mutual information from a conditional log-likelihood matrix (MI minimisation).

Convention: ``log_q[i, j] = log q(y_j | x_i)`` for a minibatch of ``K >= 2`` joint samples
``(x_i, y_i)``; rows index the conditioning ``x``, columns the ``y`` being scored, and the
positives sit on the diagonal. ``q`` is either the true conditional ``p(y | x)`` or a variational
approximation trained by maximum likelihood on the positive pairs (vCLUB; CSRO alternates a
``q``-NLL step with the encoder step that minimises the bound through ``y``, ``q`` frozen).
:func:`gaussian_log_q` builds the matrix for a diagonal-Gaussian ``q``.

References:
  Cheng, Hao, Dai, Liu, Gan, Carin, "CLUB: A Contrastive Log-ratio Upper Bound of Mutual
  Information", ICML 2020.
  Poole et al., "On Variational Bounds of Mutual Information", ICML 2019 (minibatch upper bound).
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp

from jcomrl.mi._util import check_square, offdiag_mask, offdiag_mean


def _check_log_q(log_q: jnp.ndarray) -> int:
  return check_square(log_q, "log_q")


def club(log_q: jnp.ndarray, include_diagonal: bool = False) -> jnp.ndarray:
  """CLUB upper bound: ``E_{p(x,y)}[log q(y|x)] - E_{p(x)} E_{p(y)}[log q(y|x)]``.

  Minibatch: ``mean_i log_q[i, i] - mean_{i != j} log_q[i, j]`` (the off-diagonal pairs are exact
  samples of ``p(x) p(y)``, so this is an unbiased estimate of ``I_CLUB``). With
  ``include_diagonal=True`` the negative term averages over all ``K^2`` pairs, as in the CLUB and
  CSRO code; that equals ``(K - 1)/K`` times the default.

  Bound: ``I_CLUB >= I`` when ``q = p(y|x)`` (Jensen: ``E_x log p(y|x) <= log p(y)``); with a
  learned ``q`` it stays an upper bound if ``KL(p(x,y) || q(y|x)p(x)) <= KL(p(x)p(y) ||
  q(y|x)p(x))``, otherwise it is an MI estimate. Bias/variance: biased high (the gap is
  ``E_y KL(p(x) || p(x|y))``-like), low variance (linear in log-likelihoods, no exponentials).
  For a Gaussian ``q`` the normaliser cancels row-wise.

  Reference: Cheng et al., "CLUB", ICML 2020 (CLUB and vCLUB).

  Args:
    log_q: ``[K, K]`` with ``log_q[i, j] = log q(y_j | x_i)``.
    include_diagonal: average the negative term over all pairs (reference-code convention).

  Returns:
    The scalar bound in nats.
  """
  _check_log_q(log_q)
  pos = jnp.mean(jnp.diagonal(log_q))
  if include_diagonal:
    return pos - jnp.mean(log_q)
  return pos - offdiag_mean(log_q)


def club_sampled(log_q: jnp.ndarray, key: chex.PRNGKey) -> jnp.ndarray:
  """CLUB-S: one random negative per positive, ``mean_i [log_q[i, i] - log_q[i, j_i]]``.

  ``j_i`` is uniform over ``j != i`` (``j_i = (i + U{1..K-1}) mod K``), so the value is an unbiased
  estimate of :func:`club` (its expectation over ``key`` equals ``club(log_q)`` exactly) at O(K)
  cost instead of O(K^2).

  Bound and bias as :func:`club`; higher variance than CLUB (one negative per anchor).

  Reference: Cheng et al., "CLUB", ICML 2020 (the sampled variant, CLUB-S).

  Args:
    log_q: ``[K, K]`` with ``log_q[i, j] = log q(y_j | x_i)``.
    key: PRNG key for the negatives.

  Returns:
    The scalar bound in nats.
  """
  k = _check_log_q(log_q)
  rows = jnp.arange(k)
  cols = (rows + jax.random.randint(key, (k,), 1, k)) % k
  return jnp.mean(jnp.diagonal(log_q) - log_q[rows, cols])


def l1out(log_q: jnp.ndarray) -> jnp.ndarray:
  """Leave-one-out (minibatch) upper bound.

  ``I <= E[(1/K) sum_i log( q(y_i | x_i) / ((1/(K-1)) sum_{j != i} q(y_i | x_j)) )]``; minibatch
  ``mean_i [log_q[i, i] - logmeanexp_{j != i} log_q[j, i]]`` (column ``i``, diagonal masked with
  ``jnp.where``). With ``q = p(y|x)`` it is an upper bound in expectation (Jensen on the
  leave-one-out mixture estimate of ``p(y_i)``), tight as ``K -> inf``.

  Bias/variance: less biased than CLUB at the true conditional but high variance and numerically
  fragile when one ``q(y_i | x_j)`` dominates the mixture; computed in log space here.

  Reference: Poole et al., ICML 2019 (minibatch upper bound); Cheng et al., ICML 2020
  (variational L1Out).

  Args:
    log_q: ``[K, K]`` with ``log_q[i, j] = log q(y_j | x_i)``.

  Returns:
    The scalar bound in nats.
  """
  k = _check_log_q(log_q)
  marg = jax.nn.logsumexp(jnp.where(offdiag_mask(k), log_q, -jnp.inf), axis=0) - math.log(k - 1)
  return jnp.mean(jnp.diagonal(log_q) - marg)


# Upper bounds on a log-likelihood matrix by name: what ``learner.csro.upper_bound`` selects. Each is
# ``fn(log_q, key, include_diagonal)``; only CLUB reads ``include_diagonal`` (CSRO's convention),
# only CLUB-S the key.
UPPER_BOUNDS = {
    "club": lambda log_q, key, include_diagonal=False: club(log_q, include_diagonal),
    "club_sampled": lambda log_q, key, include_diagonal=False: club_sampled(log_q, key),
    "l1out": lambda log_q, key, include_diagonal=False: l1out(log_q),
}


def gaussian_log_q(mean: jnp.ndarray, log_var: jnp.ndarray, y: jnp.ndarray,
                   include_constant: bool = True) -> jnp.ndarray:
  """``log_q[i, j] = log N(y_j; mean_i, diag(exp(log_var_i)))`` for all pairs.

  A diagonal Gaussian conditional ``q(y | x_i)`` with predicted ``mean_i`` and ``log_var_i``
  (e.g. CSRO's ``q_psi(z | s, a)``), evaluated at every ``y_j`` of the batch by broadcasting
  (``O(K^2 D)`` memory, exact, no cancellation). The ``-(D/2) log(2 pi)`` constant cancels in
  :func:`club` and :func:`l1out`; drop it with ``include_constant=False``. Not a bound itself: the
  bias of the bounds built on it is that of ``q`` (a Gaussian ``q`` fitted by maximum likelihood
  is exact for the correlated-Gaussian benchmark).

  Reference: Cheng et al., "CLUB", ICML 2020 (Gaussian variational ``q``).

  Args:
    mean: ``[K, D]`` predicted means for each ``x_i``.
    log_var: ``[K, D]`` predicted log-variances for each ``x_i``.
    y: ``[K, D]`` targets.
    include_constant: include the ``-(D/2) log(2 pi)`` normaliser.

  Returns:
    ``[K, K]`` log-likelihood matrix.
  """
  chex.assert_rank([mean, log_var, y], 2)
  chex.assert_equal_shape([mean, log_var])
  chex.assert_axis_dimension(y, 1, mean.shape[1])
  diff = y[None, :, :] - mean[:, None, :]
  inv_var = jnp.exp(-log_var)[:, None, :]
  out = -0.5 * jnp.sum(diff * diff * inv_var + log_var[:, None, :], axis=-1)
  if include_constant:
    out = out - 0.5 * mean.shape[1] * math.log(2.0 * math.pi)
  return out
