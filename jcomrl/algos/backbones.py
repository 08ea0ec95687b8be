"""Offline actor-critic backbone: twin-Q SAC with an optional BRAC behaviour regulariser.

All losses are written for *one task* (leading axis ``[N]`` transitions and one code ``z``) and
vmapped over the tasks of the meta-batch by the learner; the task code is always detached here.

BRAC (Wu, Tucker, Nachum 2019) with the KL divergence in dual form, as FOCAL uses it: a dual
critic c(s, z, a) gives the per-state estimate
``D(s) = log(softplus(c(s, a~pi)) + 1e-8) + 1 - softplus(c(s, a_data))``; c maximises D (minus a
gradient penalty on d c / d a at actions interpolated between data and policy, as in BRAC; note
the FOCAL port penalises c's output norm instead), the actor minimises ``brac_weight * D``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jcomrl.algos.config import HParams
from jcomrl.nets.actor_critic import tanh_gaussian_sample
from jcomrl.types import Transition


def _tile(z, n):
  return jnp.broadcast_to(z, (n,) + z.shape)


def policy_sample(policy, params, obs, z, key):
  mean, log_std = policy.apply(params, obs, z)
  return tanh_gaussian_sample(key, mean, log_std)


def critic_loss(critic_params, target_params, actor_params, alpha, batch: Transition, z, key,
                hp: HParams, *, policy, critic):
  """Twin-Q soft Bellman error: y = s*r + gamma (1 - terminal)(min Q'(s', a') - alpha log pi)."""
  n = batch.reward.shape[0]
  zt = _tile(z, n)
  next_a, next_logp = policy_sample(policy, actor_params, batch.next_obs, zt, key)
  q_next = jnp.min(critic.apply(target_params, batch.next_obs, zt, next_a), axis=0)
  target = hp.reward_scale * batch.reward + hp.discount * (1.0 - batch.terminal) * (
      q_next - alpha * next_logp)
  target = jax.lax.stop_gradient(target)
  q = critic.apply(critic_params, batch.obs, zt, batch.action)
  loss = jnp.mean(jnp.sum((q - target[None]) ** 2, axis=0))
  return loss, {"critic/loss": loss, "critic/q": jnp.mean(q), "critic/target": jnp.mean(target)}


def kl_dual_estimate(dual, dual_params, obs, z, data_action, policy_action):
  """Per-sample BRAC KL(pi || pi_b) dual estimate ``[N]``."""
  c_data = dual.apply(dual_params, obs, z, data_action)
  c_pi = dual.apply(dual_params, obs, z, policy_action)
  return jnp.log(jax.nn.softplus(c_pi) + 1e-8) + 1.0 - jax.nn.softplus(c_data)


def dual_loss(dual_params, actor_params, batch: Transition, z, key, hp: HParams, *, policy, dual):
  """Dual critic maximises the KL estimate, with BRAC's gradient penalty on d c / d a."""
  n = batch.reward.shape[0]
  zt = _tile(z, n)
  k_pi, k_u = jax.random.split(key)
  pi_a, _ = policy_sample(policy, actor_params, batch.obs, zt, k_pi)
  pi_a = jax.lax.stop_gradient(pi_a)
  d = kl_dual_estimate(dual, dual_params, batch.obs, zt, batch.action, pi_a)
  u = jax.random.uniform(k_u, (n, 1))
  interp = pi_a + u * (batch.action - pi_a)
  grad_a = jax.vmap(jax.grad(lambda a, o, zz: dual.apply(dual_params, o, zz, a)))(interp,
                                                                                  batch.obs, zt)
  gp = jnp.mean(jnp.maximum(jnp.linalg.norm(grad_a, axis=-1) - 1.0, 0.0) ** 2)
  loss = -jnp.mean(d) + hp.gp_weight * gp
  return loss, {"dual/kl": jnp.mean(d), "dual/gp": gp}


def actor_loss(actor_params, critic_params, dual_params, alpha, batch: Transition, z, key,
               hp: HParams, *, policy, critic, dual, use_brac: bool):
  """alpha log pi - min Q (+ brac_weight * D)."""
  n = batch.reward.shape[0]
  zt = _tile(z, n)
  a, logp = policy_sample(policy, actor_params, batch.obs, zt, key)
  q = jnp.min(critic.apply(critic_params, batch.obs, zt, a), axis=0)
  loss = jnp.mean(alpha * logp - q)
  metrics = {"actor/entropy": -jnp.mean(logp), "actor/q": jnp.mean(q)}
  if use_brac:
    d = jnp.mean(kl_dual_estimate(dual, dual_params, batch.obs, zt, batch.action, a))
    loss = loss + hp.brac_weight * d
    metrics["actor/kl"] = d
  metrics["actor/loss"] = loss
  return loss, (metrics, jnp.mean(logp))
