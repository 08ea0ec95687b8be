"""Non-contrastive variational bounds: Barber–Agakov (supervised classification) and generative.

Both are lower bounds of the form ``I(Z; T) >= H(T) - E[-log q(t | z, ...)]``: a normalised
decoder ``q`` replaces the intractable posterior, and the gap is ``E KL(p(t|z) || q(t|z))``.
They need no negatives, have low variance (a mean of log-likelihoods), and their bias is the
decoder's approximation error. UNICORN uses the classification form for UNICORN-SUP
(``T`` = task id) and the generative form for the reconstruction term of UNICORN-SS
(``T`` = ``(delta s, r)`` given ``(z, s, a)``, which bounds ``I(Z; X_t | X_b)`` up to the
constant entropy).

References:
  Barber & Agakov, "The IM algorithm: a variational approach to information maximization",
  NeurIPS 2003.
  UNICORN: "Towards an Information Theoretic Framework of Context-Based Offline
  Meta-Reinforcement Learning", NeurIPS 2024 (arXiv 2402.02429).
  Chua et al., "Deep RL in a handful of trials using probabilistic dynamics models" (PETS),
  NeurIPS 2018 (soft log-variance bounds, as in mbrl-lib).
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp


def barber_agakov(log_q: jnp.ndarray, entropy: float | jnp.ndarray = 0.0) -> jnp.ndarray:
  """Barber–Agakov bound ``I(X; Y) >= E_p[log q(x | y)] + H(X)`` from positive log-likelihoods.

  Bias/variance: the gap is ``E_y KL(p(x|y) || q(x|y))``, so the bias is the decoder's error;
  low variance (a sample mean of log-likelihoods); needs a normalised ``q`` and a known ``H(X)``
  (or reports the bound up to that constant with ``entropy=0``).

  Reference: Barber & Agakov, NeurIPS 2003; Poole et al., ICML 2019 (I_BA).

  Args:
    log_q: ``[...]`` values ``log q(x_i | y_i)`` of the joint samples.
    entropy: ``H(X)`` in nats.

  Returns:
    The scalar bound in nats.
  """
  return jnp.mean(log_q) + entropy


def classification_bound(logits: jnp.ndarray, labels: jnp.ndarray,
                         entropy: float | jnp.ndarray | None = None) -> jnp.ndarray:
  """Supervised (classification) Barber–Agakov bound: ``I(Z; M) >= H(M) - CE``.

  ``CE = mean_i -log softmax(logits_i)[labels_i]`` is the cross-entropy of a task classifier
  ``q(m | z)``; with tasks drawn uniformly from ``C`` classes ``H(M) = log C`` (the default), so
  the bound is ``log C - CE``. Maximising it is training the classifier (UNICORN-SUP).

  Bias/variance: biased low by ``E_z KL(p(m|z) || q(m|z))``; low variance; saturates at
  ``log C`` (a perfect classifier).

  Reference: Barber & Agakov, NeurIPS 2003; UNICORN (NeurIPS 2024), supervised variant.

  Args:
    logits: ``[..., C]`` classifier logits.
    labels: ``[...]`` integer labels in ``[0, C)``.
    entropy: ``H(M)``; defaults to ``log C`` (uniform labels).

  Returns:
    The scalar bound in nats.
  """
  chex.assert_rank(labels, logits.ndim - 1)
  chex.assert_equal_shape_prefix([logits, labels], labels.ndim)
  num_classes = logits.shape[-1]
  if entropy is None:
    entropy = math.log(num_classes)
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  log_q = jnp.take_along_axis(log_probs, labels[..., None].astype(jnp.int32), axis=-1)[..., 0]
  return barber_agakov(log_q, entropy)


def gaussian_nll(mean: jnp.ndarray, log_var: jnp.ndarray, target: jnp.ndarray,
                 include_constant: bool = True) -> jnp.ndarray:
  """Mean negative log-likelihood of ``target`` under ``N(mean, diag(exp(log_var)))``.

  Per sample: ``0.5 * sum_d [(t_d - mu_d)^2 exp(-lv_d) + lv_d + log(2 pi)]``, summed over the last
  axis and averaged over all leading axes. It is ``-E[log q(t | ...)]``, the decoder term of the
  generative Barber–Agakov bound (:func:`generative_bound`); a sample mean, so low variance. With ``include_constant=False`` the ``log(2 pi)`` term
  is dropped (mbrl-lib's convention for the loss; gradients are identical).

  Reference: the Gaussian likelihood of probabilistic dynamics models, Chua et al. (PETS),
  NeurIPS 2018.

  Args:
    mean: ``[..., D]`` predicted means.
    log_var: ``[..., D]`` predicted log-variances (soft-bound them with
      :func:`soft_clamp_log_var`).
    target: ``[..., D]`` targets.
    include_constant: include ``0.5 D log(2 pi)``.

  Returns:
    The scalar mean NLL in nats.
  """
  chex.assert_equal_shape([mean, log_var, target])
  diff = target - mean
  per_dim = diff * diff * jnp.exp(-log_var) + log_var
  if include_constant:
    per_dim = per_dim + math.log(2.0 * math.pi)
  return jnp.mean(0.5 * jnp.sum(per_dim, axis=-1))


def generative_bound(mean: jnp.ndarray, log_var: jnp.ndarray, target: jnp.ndarray,
                     entropy: float | jnp.ndarray = 0.0) -> jnp.ndarray:
  """Generative Barber–Agakov bound ``I(Z; T | C) >= H(T | C) - E[-log q(t | z, c)]``.

  ``q`` is a diagonal Gaussian decoder (e.g. UNICORN-SS reconstructing ``(delta s, r)`` from
  ``(z, s, a)``), so the bound is ``entropy - gaussian_nll(mean, log_var, target)``; the
  conditional entropy of the targets does not depend on any parameter and defaults to 0 (the
  value is then the bound up to that constant).

  Bias/variance: biased low by the decoder's KL error; low variance. Reference: Barber & Agakov,
  NeurIPS 2003; UNICORN (NeurIPS 2024), self-supervised variant.

  Args:
    mean: ``[..., D]`` decoder means.
    log_var: ``[..., D]`` decoder log-variances.
    target: ``[..., D]`` reconstruction targets.
    entropy: ``H(T | C)`` if known.

  Returns:
    The scalar bound in nats.
  """
  return entropy - gaussian_nll(mean, log_var, target)


def soft_clamp_log_var(log_var: jnp.ndarray, min_log_var: jnp.ndarray,
                       max_log_var: jnp.ndarray) -> jnp.ndarray:
  """Softly bound a predicted log-variance to ``[min_log_var, max_log_var]`` (PETS / mbrl-lib).

  ``lv = max - softplus(max - lv)`` then ``lv = min + softplus(lv - min)``: smooth, monotone,
  identity well inside the bounds, with non-zero gradients everywhere (unlike ``clip``). Soft:
  the result is ``> min`` but may exceed ``max`` by up to ``softplus(min - max)``. The
  bounds are usually learnable parameters owned by the caller, regularised with
  :func:`log_var_bounds_penalty` so they do not drift apart.

  Reference: Chua et al. (PETS), NeurIPS 2018.

  Args:
    log_var: raw predicted log-variances ``[..., D]``.
    min_log_var: lower bound, broadcastable to ``log_var``.
    max_log_var: upper bound, broadcastable to ``log_var``.

  Returns:
    The bounded log-variances.
  """
  log_var = max_log_var - jax.nn.softplus(max_log_var - log_var)
  return min_log_var + jax.nn.softplus(log_var - min_log_var)


def log_var_bounds_penalty(min_log_var: jnp.ndarray, max_log_var: jnp.ndarray,
                           coef: float = 0.01) -> jnp.ndarray:
  """``coef * (sum(max_log_var) - sum(min_log_var))``, added to the Gaussian NLL loss.

  Keeps learned log-variance bounds (see :func:`soft_clamp_log_var`) tight, so that the decoder of
  the generative bound cannot inflate its variance to hide errors. Not a bound itself; it biases
  the NLL (hence the generative bound) by a constant-size term.

  Reference: Chua et al. (PETS), NeurIPS 2018 (``coef = 0.01`` in mbrl-lib).

  Args:
    min_log_var: learned lower bounds.
    max_log_var: learned upper bounds.
    coef: penalty weight.

  Returns:
    The scalar penalty.
  """
  return coef * (jnp.sum(max_log_var) - jnp.sum(min_log_var))
