"""The ``smac`` preset: the offline phase of SMAC (Pong, Nair, Smith, Huang, Levine, "Offline
Meta-Reinforcement Learning with Online Self-Supervision", ICML 2022) as a composition of
plug-ins, with the official settings.

Source: ``rail-berkeley/rlkit`` at ac45a9d (``rlkit/torch/smac/``: ``base_config.py`` holds
``DEFAULT_CONFIG``, ``launcher.py`` builds the networks, ``smac.py`` is the trainer,
``agent.py`` the PEARL encoder and policy, ``sampler.py`` the rollouts;
``rlkit/core/simple_offline_rl_algorithm.py`` the offline loop,
``rlkit/core/meta_rl_algorithm.py`` the online one; ``examples/smac/cheetah.py`` and ``ant.py``
the per-env runs). Files below are relative to that repository; every setting is a row of
:data:`SMAC_PROVENANCE` (part of ``presets.PROVENANCE``).

The offline phase (``pretrain_offline_algo_kwargs``, launcher.py:231-250) is
``objective smac x encoder pearl x backbone awac``:

* encoder ``pearl`` (:class:`jcomrl.nets.encoders.ProductOfGaussiansEncoder`): an MLP 200 x 3
  maps each context transition (s, a, r) to a Gaussian factor; q(z | c) is their product, z a
  reparameterised sample of it in training and at evaluation; latent 5; the context is 64 random
  transitions of the task;
* objective ``smac`` (:mod:`jcomrl.algos.objectives.smac`): reward decoder 2 x 64 on (s, a, z),
  squared error on the RL batch's rewards, + 0.1 KL(q(z | c) || N(0, I)); the critic does not
  train the encoder;
* backbone ``awac`` (:mod:`jcomrl.algos.backbones.awac`): twin Q 3 x 300 with a soft target
  (entropy weight 0), tanh-Gaussian policy 3 x 300 trained by advantage-weighted likelihood,
  weights ``B N softmax(A / 100)`` over the meta-batch, no reparameterised term;
* 50k updates on meta-batches of 4 tasks (drawn with replacement) x 128 transitions, Adam 3e-4
  everywhere, discount 0.99, tau 0.005, reward scale 5.

SMAC's own tasks and data (a PEARL run's replay buffers on 100 / 20 saved cheetah-vel and ant-dir
tasks) are not reproduced: the preset trains on the suite's datasets and tasks, and takes the
same settings on the envs SMAC ships no example for. Point-robot: the suite's small sizes with
SMAC's plug-ins; ``profile="cpu"`` narrows every network to 64 (the other presets' profile).

**Not yet built: SMAC's self-supervised online phase** (``algorithm.train()`` after the offline
phase, launcher.py:257-262; the loop is ``MetaRLAlgorithm.train``, meta_rl_algorithm.py:245-449).
What the official code does, for the stage that will add it:

* the offline networks carry over; the trainer switches to ``online_trainer_kwargs``
  (launcher.py:260; base_config.py:81-86): the actor adds the reparameterised term
  ``-min Q(s, a_pi)`` at weight 1 to the AWR term (``hparams.awac.reparam_weight=1``); the
  initial data collection is skipped (``num_initial_steps = 0``, launcher.py:257-258,
  base_config.py:87);
* ``num_iterations_with_reward_supervision = 0`` (base_config.py:56): every online iteration is
  unsupervised (meta_rl_algorithm.py:284-286). On entering it (``_transition_to_unsupervised``,
  :451-457) the reward-decoder buffer becomes a frozen copy of the encoder buffer (the offline
  data), the encoder and decoder stop training (``train_encoder_decoder_in_unsupervised_phase``
  False: MetaRLAlgorithm default :80, cheetah.py:58-60), the policy and Q keep training
  (``train_agent_in_unsupervised_phase`` True, :76), and on cheetah-vel rewards are predicted by
  a snapshot of the offline encoder and decoder (``use_encoder_snapshot_for_reward_pred_in_
  unsupervised_phase``, cheetah.py:64-66; agent.py:119-127);
* iterations: 501 by default (base_config.py:69), 51 on cheetah-vel (cheetah.py:70-72). Each
  collects, for ``num_tasks_sample`` = 5 training tasks drawn at random (base_config.py:70;
  meta_rl_algorithm.py:297-301), ``num_steps_prior`` = 400 steps with z drawn from the prior
  N(0, I), redrawn every step (``exploration_resample_latent_period`` 1, base_config.py:57,61;
  sampler.py:145-148), added to the RL buffer and the encoder buffer (:305-336), and
  ``num_extra_rl_steps_posterior`` = 600 steps, one trajectory at a time
  (``update_post_train`` 1), z from the prior in the first and from the posterior of a fresh
  256-transition context of the encoder buffer in each later one (base_config.py:59,63,74;
  meta_rl_algorithm.py:367-398,508-561), added to the RL buffer only (:387-390);
  ``num_steps_posterior`` is 0 (base_config.py:62);
* reward relabelling: in every collected step the environment's reward is replaced by the
  decoder's ``r_hat(s, a, z_r)`` (``use_predicted_reward = in_unsupervised_phase``,
  meta_rl_algorithm.py:330; sampler.py:136-153), ``z_r`` sampled once per trajectory from the
  (snapshot) encoder's posterior of 256 transitions of the task's frozen offline buffer
  (:519-529);
* which buffer the encoder reads: cheetah-vel keeps a separate encoder buffer
  (``use_rl_buffer_for_enc_buffer`` False, cheetah.py:55-57; not frozen, not cleared:
  cheetah.py:61-63, base_config.py:55), i.e. the offline encoder data plus the prior-z online
  data; ant-dir uses the RL buffer itself (base_config.py:53; meta_rl_algorithm.py:216-217);
* training per iteration: ``num_train_steps_per_itr`` = 4000 draws of ``meta_batch`` = 4 tasks
  with replacement, each a 256-transition context from the encoder buffer cut into 4 slices of
  ``embedding_mini_batch_size`` = 64, one update per slice on a fresh RL batch of 256 per task:
  16000 updates per iteration (base_config.py:58-59,64,71-72; meta_rl_algorithm.py:401-437);
* evaluation after every iteration (:447, ``_try_to_eval``; the adaptation protocol ``_do_eval``,
  :715-782: 4 runs of 600 steps per task, z from the prior for the first 2 trajectories, then
  the posterior of the accumulated context; base_config.py:65-67).
"""

from __future__ import annotations

import copy

# The offline phase at the official sizes (rlkit ac45a9d; file:line per row of SMAC_PROVENANCE).
_SMAC_MUJOCO = dict(
    learner=dict(encoder="pearl", latent_size=5, encoder_hidden=(200, 200, 200),
                 aux_hidden=(64, 64), use_next_obs=False, context_mode="transitions",
                 context_size=64, meta_batch_size=4, task_replace=True, rl_batch_size=128,
                 rl_hidden=(300, 300, 300), backbone="awac", net_init="rlkit",
                 steps_per_chunk=1000),
    hparams=dict(actor_lr=3e-4, critic_lr=3e-4, encoder_lr=3e-4, discount=0.99, tau=0.005,
                 reward_scale=5.0, entropy_alpha=0.0, kl_weight=0.1, decoder_weight=1.0,
                 awac=dict(beta=100.0, awr_weight=1.0, reparam_weight=0.0)),
    num_steps=50_000,
)


def smac_mujoco() -> dict:
  """The ``smac`` preset on a MuJoCo env of the suite (the same on every one: SMAC's defaults
  are env-independent, its two examples change only tasks and data)."""
  return copy.deepcopy(_SMAC_MUJOCO)


def smac_point_robot(p: dict) -> dict:
  """The ``smac`` preset on the point robots: the suite's point-robot preset ``p`` (sizes,
  rates, discount, schedule) with SMAC's plug-ins and their weights."""
  p = copy.deepcopy(p)
  p["learner"].update(encoder="pearl", use_next_obs=False, backbone="awac", net_init="rlkit")
  m = _SMAC_MUJOCO["hparams"]
  p["hparams"].update(reward_scale=m["reward_scale"], entropy_alpha=m["entropy_alpha"],
                      kl_weight=m["kl_weight"], decoder_weight=m["decoder_weight"],
                      awac=dict(m["awac"]))
  return p


SMAC_PROVENANCE = (
    ("smac encoder", "pearl: MLP 200x3 -> per-transition N(mu, softplus(.)), variances clipped "
     "at 1e-7, posterior = their product (precision-weighted mean)", "same",
     "rlkit ac45a9d rlkit/torch/smac/launcher.py:124-128,150-156; agent.py:18-25,176-201", ""),
    ("smac code in training / at evaluation", "a reparameterised sample of the posterior / one "
     "sample per episode from the posterior of an offline context of the task "
     "(EvalSettings.encoder_code='sample'), deterministic action tanh(mean)", "same (the "
     "'init_from_buffer' evaluation: resample_latent_period 0)",
     "agent.py:228-229; sampler.py:42,131-149; meta_rl_algorithm.py:51,809-849; "
     "rlkit/torch/sac/policies/base.py:56-66; rlkit/torch/distributions.py:416-418", ""),
    ("smac latent size", "5", "same", "base_config.py:51", ""),
    ("smac context", "64 random (s, a, r) transitions of the task (context_mode='transitions', "
     "use_next_obs=False)", "same (task_embedding_batch_size 64, sequence=False, "
     "use_next_obs_in_context False)", "base_config.py:44,93; simple_offline_rl_algorithm.py:"
     "113-117; rlkit/data_management/multitask_replay_buffer.py:130-159", ""),
    ("smac context pool", "the task's offline data, the pool the RL batch is drawn from",
     "a separate encoder buffer (cheetah-vel: the saved run's enc_replay_buffer; ant-dir: the "
     "same, with the RL buffer cut to its last 1200 transitions)",
     "examples/smac/cheetah.py:39-66, ant.py:37-47; launcher.py:201-209 (the "
     "load_macaw_buffer_kwargs of cheetah.py are unused without macaw_format_base_path); "
     "launcher_util.py:267-330", "a suite dataset holds one pool per task"),
    ("smac meta-batch / RL batch", "4 tasks drawn with replacement x 128 transitions", "same",
     "base_config.py:89,91; simple_offline_rl_algorithm.py:101-108 (np.random.choice)", ""),
    ("smac training length", "50k updates", "same (num_batches)", "base_config.py:92", ""),
    ("smac policy and Q networks", "tanh-Gaussian policy and twin Q, 3x300 each, log-std in "
     "[-20, 2]", "same", "base_config.py:2-7; launcher.py:130-148; rlkit/torch/sac/policies/"
     "gaussian_policy.py:26-27,108-121", ""),
    ("smac reward decoder", "MLP 2x64 on (s, a, z) -> r; squared error on the RL batch's "
     "unscaled rewards with the sampled z and its gradient; trained with the encoder",
     "same", "base_config.py:12-14,35; launcher.py:157-162; smac.py:168-175,403-407", ""),
    ("smac KL", "0.1 x KL(q(z|c) || N(0, I)): sum over dims, mean over the meta-batch's tasks",
     "same", "base_config.py:42; smac.py:400-401; agent.py:97-100", ""),
    ("smac encoder gradient", "reward error + KL only: z detached from Q and policy", "same "
     "(backprop_q_loss_into_encoder False; the policy reads z.detach())",
     "base_config.py:34; smac.py:374-379; agent.py:237", ""),
    ("smac learning rates", "Adam 3e-4: policy, Q, encoder + decoder", "same",
     "base_config.py:39-41; smac.py:164-188", ""),
    ("smac discount / tau / reward scale", "0.99 / 0.005 every update / 5", "same",
     "base_config.py:37-38,47-48; smac.py:357,532-538", ""),
    ("awac weights", "B N softmax(A / beta) over the meta-batch (learner.awac.weights="
     "'meta_batch'), beta 100, no clip, no gradient", "same (normalize_over_batch True, "
     "clip_score None)", "base_config.py:21; smac.py:108,110,461-471,492-493", ""),
    ("awac advantage", "min(Q1, Q2)(s, a_data) - min(Q1, Q2)(s, a_pi), one policy sample, the "
     "critic before this update's step", "same (awr_min_q True, vf_K 1)",
     "base_config.py:32; smac.py:92,415-443", ""),
    ("awac actor terms", "AWR at weight 1; no reparameterised term (reparam_weight 0); entropy "
     "weight 0 (hparams.entropy_alpha); no BC term", "same (use_awr_update, use_reparam_update "
     "False, alpha 0, bc_weight 0, compute_bc False)", "base_config.py:22-29,33; smac.py:489-501",
     ""),
    ("awac critic", "twin MSE to 5 r + 0.99 (1 - d)(min Q'(s', a') - 0 log pi(a'|s')), "
     "a' ~ pi(.|s')", "same (no automatic entropy tuning)", "base_config.py:26; smac.py:381-392",
     ""),
    ("awac next-state code", "the task's one sampled z", "a' from a second agent pass that "
     "samples a fresh z; the target Q reads the first sample", "smac.py:340-346,383-387; "
     "agent.py:228-229", "one code per task and update in jcomrl's learner; sampling noise only"),
    ("awac update order", "every loss at the update's starting parameters; then Q (and encoder), "
     "policy, target", "same", "smac.py:340-501,506-538", ""),
    ("awac data-action clip", "+-0.999999 before atanh", "same", "rlkit/torch/distributions.py:"
     "366-371", ""),
    ("smac network init", "net_init='rlkit': hidden U(+-1/sqrt(out width)), heads U(+-3e-3) "
     "(policy U(+-1e-3)); hidden biases 0.1, head biases U(+-head scale)", "the same kernels; "
     "biases 0 (rlkit HEAD's Mlp b_init_value=0.), the policy's log-std bias U(+-1e-3)",
     "rlkit/torch/networks/mlp.py:20-57; gaussian_policy.py:85-103; rlkit/torch/pytorch_util.py:"
     "142-151", "jcomrl's rlkit scheme is the torchkit of FOCAL / UNICORN (bias 0.1); the "
     "kernels, which set the initial scale, match"),
    ("smac time-limit ends", "bootstrapped through (timeout_as_terminal False)", "same: stored "
     "terminals are the env's done flags; max_path_length cuts are not marked",
     "sampler.py:146-177", ""),
    ("smac data and tasks", "the suite's datasets and tasks (40 on the MuJoCo envs)",
     "replay buffers of a PEARL run on saved task lists (cheetah-vel, ant-dir; 100 train / 20 "
     "eval by default)", "examples/smac/cheetah.py:40-45, ant.py:38-43; "
     "generate_cheetah_data.py:46-53; base_config.py:95-96; launcher.py:84-99",
     "every preset trains on the suite's data; collecting a PEARL run's buffers is not built"),
    ("smac cheetah-dir / hopper / walker", "SMAC's defaults", "no example (cheetah-vel and "
     "ant-dir only)", "examples/smac/", "base_config.py's values are env-independent"),
    ("smac on point-robot", "the suite's point-robot sizes (64 wide, gamma 0.9, lr 1e-3, 3000 "
     "updates) with pearl + smac + awac and SMAC's weights (beta 100, reward scale 5, KL 0.1)",
     "no point-robot example", "jcomrl", "the suite's small setting"),
    ("smac CPU profile", "every width 64; 30k updates (ant-dir 3k); batch 128 and meta-batch 4 "
     "as the paper profile", "3x300 / 3x200 / 2x64 nets, 50k updates", "base_config.py:2-7,"
     "12-14,92; launcher.py:153", "jcomrl choice: the 2-core profile of every preset "
     "(presets.PROFILES)"),
    ("smac online phase", "not built (the offline phase only)", "self-supervised online phase: "
     "prior / posterior data collection with decoder-relabelled rewards, encoder frozen, actor "
     "with the reparameterised term (jcomrl.algos.smac_presets docstring)",
     "launcher.py:257-262; meta_rl_algorithm.py:245-457; base_config.py:52-87",
     "the next step, as a training stage"),
)
