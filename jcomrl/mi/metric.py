"""FOCAL's distance-metric (negative-power) loss on task codes.

Bound: UNICORN (Thm 2.3) shows that minimising this loss maximises an *upper* bound of I(Z; M),
namely I(Z; X) = I(Z; X_t | X_b) + I(Z; X_b): it pulls codes of the same task together and pushes
codes of different tasks apart, whatever part of the context (task- or behaviour-related) makes
them differ. Character: no critic and no sampling variance beyond the meta-batch; biased towards
separating behaviour policies as well as tasks.

Reference: Li, Yang, Luo, "FOCAL: Efficient Fully-Offline Meta-Reinforcement Learning via Distance
Metric Learning and Behavior Regularization", ICLR 2021 (code ``rlkit/torch/sac/sac.py::z_loss``);
restated as UNICORN Eq. 3.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp


def pairwise_mean_sq_dist(z: jnp.ndarray) -> jnp.ndarray:
  """``d2[i, j] = mean_k (z[i, k] - z[j, k])**2`` for codes ``z`` of shape ``[B, D]``.

  The distance of FOCAL's metric loss (a mean over latent dims, as in the official code; not a
  bound by itself). Reference: Li, Yang, Luo, "FOCAL", ICLR 2021.

  Args:
    z: ``[B, D]`` codes.

  Returns:
    ``[B, B]`` mean squared distances.
  """
  chex.assert_rank(z, 2)
  diff = z[:, None, :] - z[None, :, :]
  return jnp.mean(diff * diff, axis=-1)


def focal_metric_loss(z: jnp.ndarray, labels: jnp.ndarray, *, pos_eps: float = 1e-3,
                      neg_eps: float = 0.1, power: float = 1.0, beta: float = 1.0,
                      count_eps: float = 1e-3) -> tuple[jnp.ndarray, dict]:
  """FOCAL's distance-metric loss over all unordered pairs ``i < j`` of a meta-batch.

  Bound: minimising it maximises an *upper* bound of ``I(Z; M)``, namely ``I(Z; X) =
  I(Z; X_t | X_b) + I(Z; X_b)`` (UNICORN, Thm 2.3; Eq. 3): it is a negative-power distance-metric
  (contrastive) loss with no critic and no partition function. Bias/variance: deterministic given
  the meta-batch (low variance, no ``e^I`` blow-up), but biased towards separating behaviour
  policies as well as tasks (the ``I(Z; X_b)`` part).

  With ``d2_ij`` the *mean over latent dims* of ``(z_i - z_j)^2`` (as in the official code):
    * positive pair (same label): ``sqrt(d2_ij + pos_eps)`` (an RMS distance, not squared);
    * negative pair: ``beta / (d2_ij ** power + neg_eps)`` (defaults: n = 2 on the RMS distance,
      beta = 1, eps = 0.1);
    * loss = sum(pos) / (#pos + count_eps) + sum(neg) / (#neg + count_eps).
  The official code multiplies by ``z_loss_weight`` = 10; callers apply that weight.

  Positive pairs exist only if the meta-batch repeats a task: FOCAL/CSRO sample tasks *without*
  replacement by default (so only the repulsive term acts), UNICORN samples *with* replacement
  and notes this matters. jcomrl's sampler draws with replacement unless told otherwise.

  Reference: Li, Yang, Luo, "FOCAL: Efficient Fully-Offline Meta-Reinforcement Learning via
  Distance Metric Learning and Behavior Regularization", ICLR 2021; UNICORN (NeurIPS 2024), Eq. 3.

  Args:
    z: ``[B, D]`` task codes.
    labels: ``[B]`` integer task labels.
    pos_eps: added to ``d2`` under the square root of the positive term.
    neg_eps: added to the denominator of the negative term.
    power: exponent ``n / 2`` applied to ``d2`` in the negative term.
    beta: scale of the negative term.
    count_eps: added to the pair counts (no division by zero when a kind of pair is absent).

  Returns:
    ``(loss, metrics)`` with the positive/negative means and pair counts.
  """
  chex.assert_rank(z, 2)
  chex.assert_shape(labels, (z.shape[0],))
  b = z.shape[0]
  d2 = pairwise_mean_sq_dist(z)
  upper = jnp.triu(jnp.ones((b, b), dtype=bool), k=1)
  same = labels[:, None] == labels[None, :]
  pos_mask = upper & same
  neg_mask = upper & ~same
  pos_term = jnp.sqrt(d2 + pos_eps)
  neg_term = beta / (jnp.power(d2, power) + neg_eps)
  n_pos = jnp.sum(pos_mask)
  n_neg = jnp.sum(neg_mask)
  pos = jnp.sum(jnp.where(pos_mask, pos_term, 0.0)) / (n_pos + count_eps)
  neg = jnp.sum(jnp.where(neg_mask, neg_term, 0.0)) / (n_neg + count_eps)
  loss = pos + neg
  return loss, {"focal/pos": pos, "focal/neg": neg, "focal/num_pos_pairs": n_pos,
                "focal/num_neg_pairs": n_neg}
