"""The pure per-task losses of the backbones: twin-Q SAC, BRAC (SAC + KL behaviour regulariser), TD3+BC.

All losses are written for *one task* (leading axis ``[N]`` transitions and one code ``z``) and
vmapped over the tasks of the meta-batch by the learner. The task code arrives detached unless
the representation is trained through the critic (``supervised``, CORRO's attention pooling).

**BRAC** (Wu, Tucker, Nachum 2019) with the KL divergence in dual form, as FOCAL uses it: a dual
critic c(s, z, a) gives the per-state estimate
``D(s) = log(softplus(c(s, a~pi)) + 1e-8) + 1 - softplus(c(s, a_data))``. c maximises D minus a
gradient penalty at actions interpolated between data and policy: on ``||d c / d a||`` as in
BRAC (``brac_gp="grad"``) or on c's *output*, ``sqrt(1e-8 + c^2)`` (``brac_gp="output"``), as
all three official PyTorch ports do (FOCAL, CSRO, UNICORN ``torchkit/brac/divergences.py:34-43``).
The penalty weight w enters the actor loss (``learner.brac.penalty="policy"``), the Bellman target
(``"value"``: ``y = r + gamma (1 - d)(min Q'(s', a') - alpha log pi' - w D(s))`` with D at the
current state, as in FOCAL's port and UNICORN's FOCALSAC, since no behaviour action exists at
s'), or both. w is fixed (``hparams.brac.weight``) or auto-tuned towards a target divergence.

UNICORN's Ant-Dir backbone, FOCALSAC (``algorithms/focalsac.py:119-204``), is BRAC with
``brac_penalty="both"``, the fixed weight 0.2, no entropy term in the target
(``soft_target=False``: ``y = r + gamma (1 - d)(min Q' - 0.2 D)``, focalsac.py:135), log-prob
coefficient 1 in the actor (``entropy_alpha=1``, focalsac.py:196) and D a constant there
(``brac_actor_div_grad=False``: computed under ``torch.no_grad``, divergences.py:70-73).

**TD3+BC** (Fujimoto & Gu 2021): deterministic actor ``tanh(mean)``, target-policy smoothing,
actor loss ``-lambda Q(s, pi(s)) + (pi(s) - a)^2`` with ``lambda = td3_alpha / mean|Q|``; the
BC term is a mean over batch *and* action dims as in the official ``F.mse_loss``
(sfujim/TD3_BC ``TD3_BC.py:143``; ``bc="sum"`` sums over action dims instead).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jcomrl.algos.backbones.base import tile as _tile
from jcomrl.algos.config import HParams
from jcomrl.nets.actor_critic import tanh_gaussian_sample
from jcomrl.types import Transition


def policy_sample(policy, params, obs, z, key):
  mean, log_std = policy.apply(params, obs, z)
  return tanh_gaussian_sample(key, mean, log_std)


def policy_mode(policy, params, obs, z):
  """The deterministic action ``tanh(mean)`` (TD3+BC's actor, every policy's eval action)."""
  return jnp.tanh(policy.apply(params, obs, z)[0])


def kl_dual_estimate(dual, dual_params, obs, z, data_action, policy_action):
  """Per-sample BRAC KL(pi || pi_b) dual estimate ``[N]``."""
  c_data = dual.apply(dual_params, obs, z, data_action)
  c_pi = dual.apply(dual_params, obs, z, policy_action)
  return jnp.log(jax.nn.softplus(c_pi) + 1e-8) + 1.0 - jax.nn.softplus(c_data)


def critic_loss(critic_params, target_params, actor_params, alpha, batch: Transition, z, key,
                hp: HParams, *, policy, critic, value_penalty=None, soft_target: bool = True):
  """Twin-Q soft Bellman error: ``y = s r + gamma (1 - terminal)(min Q'(s', a') - alpha log pi
  - penalty)``; ``value_penalty = (dual, dual_params, weight)`` subtracts ``weight * D(s)``;
  ``soft_target=False`` drops the ``alpha log pi`` term (UNICORN focalsac.py:135)."""
  n = batch.reward.shape[0]
  zt = _tile(z, n)
  k_next, k_pen = jax.random.split(key)
  next_a, next_logp = policy_sample(policy, actor_params, batch.next_obs, zt, k_next)
  q_next = jnp.min(critic.apply(target_params, batch.next_obs, zt, next_a), axis=0)
  soft_next = q_next - alpha * next_logp if soft_target else q_next
  metrics = {}
  if value_penalty is not None:
    dual, dual_params, weight = value_penalty
    pi_a, _ = policy_sample(policy, actor_params, batch.obs, zt, k_pen)
    d = kl_dual_estimate(dual, dual_params, batch.obs, zt, batch.action, pi_a)
    soft_next = soft_next - weight * d
    metrics["critic/value_penalty"] = jnp.mean(weight * d)
  target = hp.reward_scale * batch.reward + hp.discount * (1.0 - batch.terminal) * soft_next
  target = jax.lax.stop_gradient(target)
  q = critic.apply(critic_params, batch.obs, zt, batch.action)
  loss = jnp.mean(jnp.sum((q - target[None]) ** 2, axis=0))
  metrics.update({"critic/loss": loss, "critic/q": jnp.mean(q), "critic/target": jnp.mean(target)})
  return loss, metrics


def dual_loss(dual_params, actor_params, batch: Transition, z, key, hp: HParams, *, policy, dual,
              gp: str = "grad"):
  """The dual critic maximises the KL estimate, minus ``gp_weight`` times a gradient penalty
  ``max(||g|| - 1, 0)^2`` at interpolated actions (``gp="grad"``: g = d c / d a, BRAC;
  ``gp="output"``: ``||g|| = sqrt(1e-8 + c^2)`` on c itself, as the FOCAL, CSRO and UNICORN ports
  do, UNICORN ``torchkit/brac/divergences.py:34-43``)."""
  n = batch.reward.shape[0]
  zt = _tile(z, n)
  k_pi, k_u = jax.random.split(key)
  pi_a, _ = policy_sample(policy, actor_params, batch.obs, zt, k_pi)
  pi_a = jax.lax.stop_gradient(pi_a)
  d = kl_dual_estimate(dual, dual_params, batch.obs, zt, batch.action, pi_a)
  u = jax.random.uniform(k_u, (n, 1))
  interp = pi_a + u * (batch.action - pi_a)
  if gp == "grad":
    g = jax.vmap(jax.grad(lambda a, o, zz: dual.apply(dual_params, o, zz, a)))(interp, batch.obs,
                                                                              zt)
    norm = jnp.linalg.norm(g, axis=-1)
  else:
    norm = jnp.sqrt(1e-8 + dual.apply(dual_params, batch.obs, zt, interp) ** 2)
  penalty = jnp.mean(jnp.maximum(norm - 1.0, 0.0) ** 2)
  loss = -jnp.mean(d) + hp.of("brac").gp_weight * penalty
  return loss, {"dual/kl": jnp.mean(d), "dual/gp": penalty}


def actor_loss(actor_params, critic_params, dual_params, alpha, batch: Transition, z, key,
               hp: HParams, *, policy, critic, dual, brac_weight=None, div_grad: bool = True):
  """``alpha log pi - min Q`` (``+ brac_weight * D`` when a weight is given) ``+
  hp.policy_mean_reg * mean(mu^2) + hp.policy_std_reg * mean(log_sigma^2)`` on the pre-tanh
  Gaussian (FOCAL sac.py:361-368). ``div_grad=False`` makes D a constant (UNICORN's FOCALSAC).
  The aux holds the metrics, ``mean log pi`` (for the entropy temperature) and the mean KL
  estimate D (0 when ``dual`` is None, i.e. plain SAC)."""
  n = batch.reward.shape[0]
  zt = _tile(z, n)
  mean, log_std = policy.apply(actor_params, batch.obs, zt)
  a, logp = tanh_gaussian_sample(key, mean, log_std)
  q = jnp.min(critic.apply(critic_params, batch.obs, zt, a), axis=0)
  reg = hp.policy_mean_reg * jnp.mean(mean ** 2) + hp.policy_std_reg * jnp.mean(log_std ** 2)
  loss = jnp.mean(alpha * logp - q) + reg
  metrics = {"actor/entropy": -jnp.mean(logp), "actor/q": jnp.mean(q), "actor/reg": reg}
  d = jnp.zeros(())
  if dual is not None:  # BRAC: report the KL estimate, and penalise it when weighted
    d = jnp.mean(kl_dual_estimate(dual, dual_params, batch.obs, zt, batch.action, a))
    if not div_grad:
      d = jax.lax.stop_gradient(d)
    metrics["actor/kl"] = d
  if brac_weight is not None:
    loss = loss + brac_weight * d
  metrics["actor/loss"] = loss
  return loss, (metrics, jnp.mean(logp), jax.lax.stop_gradient(d))


def td3_critic_loss(critic_params, target_params, actor_target_params, batch: Transition, z, key,
                    hp: HParams, *, policy, critic):
  """TD3 twin-Q error with target-policy smoothing: ``a' = clip(pi'(s') + clip(eps), -1, 1)``."""
  n = batch.reward.shape[0]
  zt = _tile(z, n)
  a_next = policy_mode(policy, actor_target_params, batch.next_obs, zt)
  noise = jnp.clip(hp.of("td3bc").policy_noise * jax.random.normal(key, a_next.shape),
                   -hp.of("td3bc").noise_clip, hp.of("td3bc").noise_clip)
  a_next = jnp.clip(a_next + noise, -1.0, 1.0)
  q_next = jnp.min(critic.apply(target_params, batch.next_obs, zt, a_next), axis=0)
  target = jax.lax.stop_gradient(hp.reward_scale * batch.reward +
                                 hp.discount * (1.0 - batch.terminal) * q_next)
  q = critic.apply(critic_params, batch.obs, zt, batch.action)
  loss = jnp.mean(jnp.sum((q - target[None]) ** 2, axis=0))
  return loss, {"critic/loss": loss, "critic/q": jnp.mean(q), "critic/target": jnp.mean(target)}


def td3bc_actor_loss(actor_params, critic_params, batch: Transition, z, key, hp: HParams, *,
                     policy, critic, bc: str = "mean"):
  """``-lambda Q_1(s, pi(s)) + BC`` with ``lambda = alpha / mean |Q_1|``; BC is the mean of
  ``(pi(s) - a)^2`` over batch and action dims (``bc="mean"``, TD3_BC.py:143) or its sum over
  action dims averaged over the batch (``bc="sum"``)."""
  del key
  n = batch.reward.shape[0]
  zt = _tile(z, n)
  a = policy_mode(policy, actor_params, batch.obs, zt)
  q = critic.apply(critic_params, batch.obs, zt, a)[0]
  lam = hp.of("td3bc").alpha / (jax.lax.stop_gradient(jnp.mean(jnp.abs(q))) + 1e-6)
  sq = (a - batch.action) ** 2
  bc_term = jnp.mean(sq) if bc == "mean" else jnp.mean(jnp.sum(sq, axis=-1))
  loss = -lam * jnp.mean(q) + bc_term
  return loss, {"actor/loss": loss, "actor/q": jnp.mean(q), "actor/bc_mse": bc_term}
