"""Mutation check: do the tests catch plausible one-line bugs in jcomrl's core functions?

Each entry of :data:`MUTATIONS` is one planted bug: a file, the exact original text (a whole line
or a snippet of one; it must occur exactly once in the file), its replacement, and the pytest
selection that covers it. For every mutation the tool copies the repository (tracked and
untracked, not ignored, files; ``git ls-files``) into a temporary directory once, plants the
bug in the copy, runs the covering tests there with the chosen tier's marker expression, puts
the line back and goes on. A mutation is *caught* when pytest fails (exit status 1; 2-4, an error
while collecting or running, count as caught and are flagged), *missed* when the tests pass.

Tiers: ``fast`` runs the selection with ``-m "not slow"`` (what ``make test`` runs); ``all``
runs it without a marker filter (what ``make test-all`` runs). A mutation caught by ``fast`` is
caught by ``all`` (same tests and more), so ``--tier both`` runs ``all`` only for the mutations
``fast`` missed.

Usage (from the repository root; needs the dev venv)::

    python -m tools.mutants                         # every mutation, fast tier
    python -m tools.mutants --tier both             # and the full suite for the misses
    python -m tools.mutants --only kl_swap,sac_sign # some of them
    python -m tools.mutants --list                  # the list, nothing run
    python -m tools.mutants --check                 # each original occurs once, nothing run
    python -m tools.mutants --out benchmarks/results/mutants   # writes .json and .md

The report (``--out``) holds, per mutation, its id, file, line, the original and the mutated
text, the covering selection, the outcome per tier, the test time and, for a missed one, the
reason listed with it (``why_missed``: why a miss is acceptable, or what is left to do).

Adding a mutation: append ``M(id, file, original, replacement, tests, note)`` to ``MUTATIONS``:

* ``id``: short unique name; ``file``: path from the repository root;
* ``original``: text copied exactly from the file (``--check`` verifies it occurs once; add
  context to the snippet when it does not); ``replacement``: the bug, one line;
* ``tests``: the pytest arguments that cover it, narrowest first (files, ``file::test`` ids or
  ``-k`` expressions), e.g. ``("tests/test_mi.py", "-k", "club")``;
* ``note``: what the bug is; ``why_missed``: filled in when the tests miss it.

Then run ``python -m tools.mutants --only <id>`` and commit the refreshed report. The tool never
touches the working tree: every edit happens in the temporary copy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST_MARKERS = "not slow"


@dataclasses.dataclass(frozen=True)
class M:
  id: str
  file: str
  original: str
  replacement: str
  tests: tuple[str, ...]
  note: str = ""
  why_missed: str = ""


L = "jcomrl/algos/backbones/losses.py"
T_LOSS = ("tests/test_losses_by_hand.py",)
MUTATIONS: list[M] = [
    # ---------------------------------------------------------------- algos: backbone losses
    M("kl_swap", L,
      "return jnp.log(jax.nn.softplus(c_pi) + 1e-8) + 1.0 - jax.nn.softplus(c_data)",
      "return jnp.log(jax.nn.softplus(c_data) + 1e-8) + 1.0 - jax.nn.softplus(c_pi)",
      T_LOSS + ("tests/test_algos_fidelity.py",), "BRAC dual KL: c_pi and c_data swapped"),
    M("sac_sign", L, "soft_next = q_next - alpha * next_logp if soft_target else q_next",
      "soft_next = q_next + alpha * next_logp if soft_target else q_next",
      T_LOSS + ("tests/test_algos_fidelity.py",), "SAC target with +alpha log pi'"),
    M("value_penalty_sign", L, "soft_next = soft_next - weight * d",
      "soft_next = soft_next + weight * d", T_LOSS, "BRAC value penalty added, not subtracted"),
    M("reward_scale", L,
      "target = hp.reward_scale * batch.reward + hp.discount * (1.0 - batch.terminal) * soft_next",
      "target = batch.reward + hp.discount * (1.0 - batch.terminal) * soft_next", T_LOSS,
      "SAC target ignores reward_scale"),
    M("terminal_mask", L,
      "target = hp.reward_scale * batch.reward + hp.discount * (1.0 - batch.terminal) * soft_next",
      "target = hp.reward_scale * batch.reward + hp.discount * soft_next", T_LOSS,
      "SAC target bootstraps through terminals"),
    M("actor_alpha", L, "loss = jnp.mean(alpha * logp - q) + reg", "loss = jnp.mean(logp - q) + reg",
      T_LOSS, "actor loss drops the temperature"),
    M("actor_std_reg", L,
      "reg = hp.policy_mean_reg * jnp.mean(mean ** 2) + hp.policy_std_reg * jnp.mean(log_std ** 2)",
      "reg = hp.policy_mean_reg * jnp.mean(mean ** 2) + hp.policy_std_reg * jnp.mean(log_std)",
      T_LOSS, "std regulariser on log sigma, not its square"),
    M("dual_gp_hinge", L, "penalty = jnp.mean(jnp.maximum(norm - 1.0, 0.0) ** 2)",
      "penalty = jnp.mean(jnp.maximum(norm, 0.0) ** 2)", T_LOSS,
      "gradient penalty without the unit hinge"),
    M("td3_noise", L, "a_next = jnp.clip(a_next + noise, -1.0, 1.0)",
      "a_next = jnp.clip(a_next, -1.0, 1.0)", T_LOSS, "TD3 target without policy smoothing"),
    M("td3bc_lambda", L,
      'lam = hp.of("td3bc").alpha / (jax.lax.stop_gradient(jnp.mean(jnp.abs(q))) + 1e-6)',
      'lam = hp.of("td3bc").alpha / (jax.lax.stop_gradient(jnp.mean(q)) + 1e-6)', T_LOSS,
      "TD3+BC lambda normalised by mean Q, not mean |Q|"),
    M("cql_log_uniform", "jcomrl/algos/backbones/cql.py",
      "log_uniform = rand_a.shape[-1] * math.log(0.5)", "log_uniform = math.log(0.5)",
      T_LOSS + ("tests/test_offline_rl.py", "-k", "cql"), "CQL uniform density of one dim"),
    M("iql_expectile", "jcomrl/algos/backbones/iql.py",
      "weight = jnp.where(diff < 0, 1.0 - expectile, expectile)",
      "weight = jnp.where(diff < 0, expectile, 1.0 - expectile)",
      T_LOSS + ("tests/test_offline_rl.py", "-k", "iql"), "IQL expectile weights swapped"),
    M("iql_awr_cap", "jcomrl/algos/backbones/iql.py",
      "return jax.lax.stop_gradient(jnp.minimum(jnp.exp(temperature * (q - v)), weight_max))",
      "return jax.lax.stop_gradient(jnp.exp(temperature * (q - v)))",
      T_LOSS + ("tests/test_offline_rl.py", "-k", "iql"), "AWR weights uncapped"),
    M("misa_dv", "jcomrl/algos/backbones/misa.py",
      "return jax.scipy.special.logsumexp(q + log_w) - jnp.log(q.shape[0])",
      "return jax.scipy.special.logsumexp(q + log_w)",
      T_LOSS + ("tests/test_offline_rl.py", "-k", "misa"), "MISA-DV partition without 1/N"),
    # ---------------------------------------------------------------- algos: learner, objectives
    M("learner_pool", "jcomrl/algos/learner.py",
      "tasks = jnp.where(state.step % cfg.task_resample_every == 0, task_pool[pick], state.tasks)",
      "tasks = jnp.where(state.step % cfg.task_resample_every == 0, pick, state.tasks)",
      ("tests/test_sampler.py", "tests/test_algos_fidelity.py", "-k",
       "learner_sampling or unicorn_keeps"), "resampled task ids instead of task_pool[ids]"),
    M("learner_stale_context", "jcomrl/algos/learner.py",
      "context=sample_context(k_ctx, data, tasks, size=cfg.context_size, mode=cfg.context_mode),",
      "context=sample_context(k_ctx, data, state.tasks, size=cfg.context_size, "
      "mode=cfg.context_mode),",
      ("tests/test_sampler.py", "-k", "learner_sampling"),
      "context drawn from the previous meta-batch's tasks"),
    M("learner_keeps_tasks", "jcomrl/algos/learner.py",
      "key=jax.random.key_data(key), tasks=mb.task_index)",
      "key=jax.random.key_data(key), tasks=state.tasks)",
      ("tests/test_algos_fidelity.py", "-k", "unicorn_keeps"),
      "the update does not remember its tasks (task_resample_every never holds them)"),
    M("csro_club_diag", "jcomrl/algos/objectives/csro.py",
      "return mi.UPPER_BOUNDS[bound](log_q, key, include_diagonal=True)",
      "return mi.UPPER_BOUNDS[bound](log_q, key, include_diagonal=False)",
      ("tests/test_algos.py", "-k", "csro_club"), "CSRO's CLUB without the K^2 convention"),
    # ---------------------------------------------------------------- mi
    M("club_s_offset", "jcomrl/mi/upper.py",
      "cols = (rows + jax.random.randint(key, (k,), 1, k)) % k",
      "cols = (rows + jax.random.randint(key, (k,), 1, k - 1)) % k",
      ("tests/test_mi.py", "-k", "club"), "CLUB-sampled never draws offset K-1"),
    M("club_s_positive", "jcomrl/mi/upper.py",
      "cols = (rows + jax.random.randint(key, (k,), 1, k)) % k",
      "cols = (rows + jax.random.randint(key, (k,), 0, k)) % k",
      ("tests/test_mi.py", "-k", "club"), "CLUB-sampled may pick the positive"),
    M("l1out_norm", "jcomrl/mi/upper.py",
      "marg = jax.nn.logsumexp(jnp.where(offdiag_mask(k), log_q, -jnp.inf), axis=0) - math.log(k - 1)",
      "marg = jax.nn.logsumexp(jnp.where(offdiag_mask(k), log_q, -jnp.inf), axis=0) - math.log(k)",
      ("tests/test_mi.py", "-k", "club or l1out"), "L1Out mixture over K instead of K-1"),
    M("club_offdiag", "jcomrl/mi/upper.py", "    return pos - jnp.mean(log_q)\n  return pos - offdiag_mean(log_q)",
      "    return pos - jnp.mean(log_q)\n  return pos - jnp.mean(log_q)",
      ("tests/test_mi.py", "-k", "club"), "CLUB's negatives include the diagonal"),
    M("infonce_logk", "jcomrl/mi/lower.py",
      "return math.log(k) + jnp.mean(jnp.diagonal(scores) - lse)",
      "return jnp.mean(jnp.diagonal(scores) - lse)", ("tests/test_mi.py",),
      "InfoNCE without + log K"),
    M("nwj_shift", "jcomrl/mi/lower.py",
      "return _mean_pos(scores) - _safe_exp(_offdiag_lme(scores) - 1.0)",
      "return _mean_pos(scores) - _safe_exp(_offdiag_lme(scores))", ("tests/test_mi.py",),
      "NWJ without the e^-1"),
    M("offdiag_count", "jcomrl/mi/lower.py", "return lse - math.log(k * (k - 1))",
      "return lse - math.log(k * k)", ("tests/test_mi.py",),
      "off-diagonal log-mean-exp divides by K^2"),
    M("gauss_const", "jcomrl/mi/upper.py",
      "out = out - 0.5 * mean.shape[1] * math.log(2.0 * math.pi)",
      "out = out - mean.shape[1] * math.log(2.0 * math.pi)", ("tests/test_mi.py",),
      "Gaussian log q normaliser doubled"),
    # ---------------------------------------------------------------- eval
    M("zshuffle_key", "jcomrl/eval/suite.py",
      "r = P.iid_returns(learner, params, env, data, rows, tasks, jax.random.key(settings.seed),",
      "r = P.iid_returns(learner, params, env, data, rows, tasks, _key(settings, \"z_shuffle\"),",
      ("tests/test_eval.py", "-k", "z_shuffle"), "z-shuffle not paired with the iid episodes"),
    M("derangement_identity", "jcomrl/eval/protocols.py", "perm[order] = np.roll(order, -1)",
      "perm[order] = order", ("tests/test_eval.py", "-k", "derangement or z_shuffle"),
      "the derangement is the identity"),
    M("normalise_anchor", "jcomrl/eval/suite.py",
      "return 100.0 * (np.asarray(value, np.float64) - float(norm[\"random\"])) / span",
      "return 100.0 * np.asarray(value, np.float64) / span",
      ("tests/test_eval.py", "-k", "normalised"),
      "normalised score without the random anchor (missed by the fast tier once its only "
      "covering tests were marked slow; test_eval.test_normalised_scores_by_hand added)"),
    M("episode_alive", "jcomrl/eval/rollout.py", "ret = ret + alive * s.reward",
      "ret = ret + s.reward", ("tests/test_eval.py", "tests/test_eval_fidelity.py"),
      "episode return counts rewards after the first done"),
    M("probe_bias", "jcomrl/eval/diagnostics.py", "return 1.0 - sse / max(sst, 1e-12)",
      "return 1.0 - sse / max(sst * 2, 1e-12)", ("tests/test_eval.py", "-k", "diagnostics"),
      "probe R^2 against half the total variance"),
    # ---------------------------------------------------------------- data
    M("split_upper", "jcomrl/data/dataset.py",
      "if not ids or min(ids) < 0 or max(ids) >= num_tasks:",
      "if not ids or min(ids) < 0 or max(ids) > num_tasks:", ("tests/test_dataset.py",),
      "split accepts row num_tasks"),
    M("split_lower", "jcomrl/data/dataset.py",
      "if not ids or min(ids) < 0 or max(ids) >= num_tasks:",
      "if not ids or min(ids) < -1 or max(ids) >= num_tasks:", ("tests/test_dataset.py",),
      "split accepts row -1"),
    M("traj_last_segment", "jcomrl/data/sampler.py",
      "seg = jax.random.randint(key, (task_index.shape[0],), 0, data.num_segments)",
      "seg = jax.random.randint(key, (task_index.shape[0],), 0, data.num_segments - 1)",
      ("tests/test_sampler.py",), "trajectory sampler never draws the last segment"),
    M("sampler_pool", "jcomrl/data/sampler.py", "task_index = task_pool[pick]",
      "task_index = pick", ("tests/test_sampler.py",), "meta-batch task ids not from the pool"),
    M("traj_contiguous", "jcomrl/data/sampler.py",
      "idx = seg[:, None] * data.segment_length + jnp.arange(size)[None, :]",
      "idx = seg[:, None] + jnp.arange(size)[None, :]", ("tests/test_sampler.py",),
      "trajectory context not aligned to a segment"),
    M("rtg_episode", "jcomrl/data/sampler.py",
      "rtg = suffix - jnp.take_along_axis(after, end + 1, axis=-1)", "rtg = suffix",
      ("tests/test_dt.py", "-k", "bookkeeping or rtg or segment"),
      "returns-to-go run across episode ends"),
    # ---------------------------------------------------------------- envs
    M("c_pack_swap", "jcomrl/envs/c_physics.py",
      "packed = jnp.concatenate([data.qpos, data.qvel, data.qacc_warmstart,",
      "packed = jnp.concatenate([data.qpos, data.qacc_warmstart, data.qvel,",
      ("tests/test_envs_c.py",), "C physics packing: qvel and warmstart swapped"),
    M("point_reward", "jcomrl/envs/point_robot.py",
      "dense = -jnp.linalg.norm(pos - goal, axis=-1)",
      "dense = -jnp.sum((pos - goal) ** 2, axis=-1)", ("tests/test_envs.py",),
      "point-robot reward squared distance"),
    M("cheetah_vel_reward", "jcomrl/envs/half_cheetah.py",
      "forward_reward = -jnp.abs(x_velocity - task[\"velocity\"])",
      "forward_reward = -jnp.abs(x_velocity + task[\"velocity\"])",
      ("tests/test_envs_c.py", "tests/test_envs_mjx.py"), "cheetah-vel reward sign of the target"),
    # ---------------------------------------------------------------- chosen blind: no test was
    # written for these (picked from code the new tests do not touch, before running them)
    M("hopper_healthy_angle", "jcomrl/envs/hopper.py",
      "& (qpos[1] > 0.7) & (jnp.abs(qpos[2]) < 0.2))",
      "& (qpos[1] > 0.7) & (jnp.abs(qpos[2]) < 2.0))",
      ("tests/test_envs_mjx.py", "tests/test_envs_c.py", "tests/test_offline_data.py"),
      "FOCAL hopper's healthy torso angle 2 instead of 0.2"),
    M("collect_last_timeout", "jcomrl/rollout.py",
      "return traj.replace(timeout=traj.timeout.at[-1].max(last_open))", "return traj",
      ("tests/test_collect.py", "tests/test_offline_data.py"),
      "an unterminated segment's last step not marked timeout"),
    M("ant_contact_clip", "jcomrl/envs/ant.py",
      "jnp.sum(jnp.square(jnp.clip(cfrc_ext, -1, 1)))", "jnp.sum(jnp.square(cfrc_ext))",
      ("tests/test_envs_mjx.py", "tests/test_envs_c.py"), "FOCAL ant contact forces unclipped"),
    M("dataset_checksum", "jcomrl/data/dataset.py",
      "if verify_checksums and sha256_file(file) != want[\"sha256\"]:",
      "if not verify_checksums and sha256_file(file) != want[\"sha256\"]:",
      ("tests/test_dataset.py",), "checksums verified only when asked not to"),
    M("gaussian_nll_var", "jcomrl/mi/variational.py",
      "per_dim = diff * diff * jnp.exp(-log_var) + log_var",
      "per_dim = diff * diff * jnp.exp(log_var) + log_var",
      ("tests/test_mi.py", "tests/test_objectives_fidelity.py", "tests/test_algos.py"),
      "Gaussian NLL multiplies by the variance"),
    M("online_random_fraction", "jcomrl/eval/protocols.py",
      "if not 0.0 <= random_fraction <= 1.0:", "if not 0.0 <= random_fraction <= 10.0:",
      ("tests/test_eval.py", "tests/test_eval_fidelity.py"),
      "online protocol accepts a random fraction above 1 (missed by the first run: no test "
      "checked the bound; test_eval.test_online_random_fraction_outside_0_1_is_refused added)"),
    # ------------------------------------------------ issue 35: inits, official layout, replay
    M("rlkit_bias", "jcomrl/nets/mlp.py",
      "bias_init=nn.initializers.constant(RLKIT_HIDDEN_BIAS))",
      "bias_init=nn.initializers.zeros)", ("tests/test_net_init.py",),
      "rlkit init with zero hidden biases (flax's) instead of 0.1"),
    M("rlkit_out_width", "jcomrl/nets/mlp.py",
      "dense = nn.Dense(width, kernel_init=_uniform(1.0 / math.sqrt(width)),",
      "dense = nn.Dense(width, kernel_init=_uniform(1.0 / math.sqrt(x.shape[-1])),",
      ("tests/test_net_init.py",), "rlkit fanin_init bound from the input width, not torch's "
      "size[0] (the output width)"),
    M("mbrl_std", "jcomrl/nets/mlp.py",
      "return nn.initializers.truncated_normal(stddev=1.0 / (2.0 * math.sqrt(fan_in)))",
      "return nn.initializers.truncated_normal(stddev=1.0 / math.sqrt(fan_in))",
      ("tests/test_net_init.py",), "mbrl init without the 1/2"),
    M("export_row_order", "jcomrl/data/official_layout.py",
      "np.save(os.path.join(d, fname + \".npy\"), a.reshape(n, -1))",
      "np.save(os.path.join(d, fname + \".npy\"), a.reshape(-1, n).T.reshape(n, -1))",
      ("tests/test_official_layout.py",), "UNICORN export writes rows out of time order"),
    M("export_goal_round", "jcomrl/data/official_layout.py",
      "parts = \"_\".join(str(round(float(g), 3)) for g in np.ravel(task_params))",
      "parts = \"_\".join(str(round(float(g), 1)) for g in np.ravel(task_params))",
      ("tests/test_official_layout.py",), "goal written with 1 decimal, not their 3"),
    M("replay_stream_order", "jcomrl/datagen/pipeline.py",
      "return x.reshape((x.shape[0], e * length) + x.shape[3:])",
      "return np.swapaxes(x, 1, 2).reshape((x.shape[0], e * length) + x.shape[3:])",
      ("tests/test_shared_sac.py",), "replay dataset interleaves the envs' streams"),
    M("replay_cut_flag", "jcomrl/datagen/pipeline.py",
      "timeout = np.where(last[None] & ~ends, 1.0, timeout).astype(np.float32)",
      "timeout = timeout.astype(np.float32)", ("tests/test_shared_sac.py",),
      "a segment cut inside an episode is not marked"),
    M("shared_batch_vector", "jcomrl/datagen/shared_sac.py", "vec = vectors[task]",
      "vec = vectors[(task + 1) % num_tasks]", ("tests/test_shared_sac.py",),
      "the shared agent's batch carries another task's vector"),
    # ---------------- blind, chosen before any run (issue 28's code of the last session)
    M("pretrain_pool_all", "jcomrl/algos/trainer.py",
      "if pretrain_steps and getattr(cfg, \"pretrain_tasks\", None) == \"all\" else pool)",
      "if pretrain_steps and getattr(cfg, \"pretrain_tasks\", None) == \"none\" else pool)",
      ("tests/test_algos.py", "-k", "pretrain"),
      "CORRO's CVAE pretrain draws from the training tasks only with pretrain_tasks='all'"),
    M("csro_mb_replace", "jcomrl/algos/presets.py", "p[\"learner\"][\"task_replace\"] = False",
      "p[\"learner\"][\"task_replace\"] = True",
      ("tests/test_presets_provenance.py", "tests/test_objectives_fidelity.py"),
      "CSRO's meta-batch tasks drawn with replacement (its mb_replace=False)"),
    M("anchor_last_not_best", "jcomrl/datagen/pipeline.py", "best = int(np.argmax(means))",
      "best = len(means) - 1", ("tests/test_collect.py", "tests/test_shared_sac.py",
                                "tests/test_official_recipe.py", "tests/test_per_task_sac.py"),
      "the expert anchor is the last snapshot, not the best one"),
    M("resume_interval_start", "jcomrl/datagen/resumable.py",
      "start = 0 if interval == 0 else warm_iters + interval * seg",
      "start = 0 if interval == 0 else interval * seg",
      ("tests/test_behaviour_resume.py", "tests/test_per_task_sac.py"),
      "a resumed interval ignores the long first (warm-up) interval"),
    M("csro_online_ant_rounds", "jcomrl/eval/protocols.py", "    return 4, 2",
      "    return 3, 2", ("tests/test_eval_fidelity.py", "tests/test_eval.py"),
      "CSRO's online protocol on ant-dir with 3 rounds, not ant-goal.json's 4"),
    # ---------------- blind, chosen before any run (the redesign's new shared primitives)
    M("protocols_all", "jcomrl/names.py", "    return list(PROTOCOLS)",
      "    return list(EVAL_PROTOCOLS)", ("tests/test_layout.py", "tests/test_run.py", "tests/test_cli_errors.py",
                                          "tests/test_workflow.py"),
      "'all' protocols drop the diagnostics (missed by every tier on the first run; "
      "test_layout.test_protocol_names_and_all added)"),
    M("env_step_next_obs", "jcomrl/rollout.py",
      "tr = Transition(obs=state.obs, action=action, reward=nxt.reward, next_obs=nxt.obs,",
      "tr = Transition(obs=state.obs, action=action, reward=nxt.reward, next_obs=state.obs,",
      ("tests/test_collect.py", "tests/test_eval.py"), "the stored s' is the step's s"),
    M("env_step_reset_key", "jcomrl/rollout.py",
      "    return where_done(nxt.done, env.reset(reset_key, task), nxt), nxt, tr",
      "    return nxt, nxt, tr", ("tests/test_collect.py", "tests/test_eval.py"),
      "an unbatched rollout never resets after an episode ends"),
    M("atomic_dir_keeps_tmp", "jcomrl/atomic.py", "    shutil.rmtree(tmp, ignore_errors=True)\n    raise",
      "    raise", ("tests/test_atomic.py", "tests/test_dataset.py"),
      "a failed atomic directory write leaves its temporary directory"),
    M("progress_eta", "jcomrl/logging.py", "    return (self.total - self.done) / rate",
      "    return self.total / rate", ("tests/test_progress.py", "tests/test_behaviour_resume.py"),
      "the ETA counts the whole total, not what is left"),
    M("record_step_reset", "jcomrl/datagen/per_task_sac.py",
      "  ep_ret = jnp.where(ended, 0.0, ep_ret)\n  idx",
      "  idx", ("tests/test_per_task_sac.py", "tests/test_shared_sac.py"),
      "the behaviour trainers' running episode return is not reset at an episode's end (missed "
      "by every tier on the first run; test_per_task_sac.test_record_step_by_hand added)"),
    # ---------------------------------------------------------------- plug-in settings, optim
    M("legacy_name_swap", "jcomrl/algos/backbones/brac.py",
      'legacy = {"weight": "brac_weight", "weight_lr": "brac_weight_lr",',
      'legacy = {"weight": "brac_weight_lr", "weight_lr": "brac_weight",',
      ("tests/test_plugin.py", "tests/test_presets_provenance.py", "tests/test_checkpoint.py"),
      "flat brac_weight of an earlier config read into the weight's learning rate"),
    M("subtree_over_flat", "jcomrl/algos/config.py",
      "subtrees[name] = {**given, **subtrees.get(name, {})}",
      "subtrees[name] = {**subtrees.get(name, {}), **given}",
      ("tests/test_plugin.py", "tests/test_offline_rl.py"),
      "a subtree's default wins over an explicit flat key of an earlier config"),
    M("settings_dropped", "jcomrl/algos/config.py", "      value = given.get(name)\n",
      "      value = None\n", ("tests/test_plugin.py", "tests/test_plugin_cli.py"),
      "the learner config drops the plug-in settings it was given (defaults instead)"),
    M("adam_step_sign", "jcomrl/optim.py",
      "return optax.apply_updates(params, jax.tree.map(lambda u: -lr * u, updates)), opt_state",
      "return optax.apply_updates(params, jax.tree.map(lambda u: lr * u, updates)), opt_state",
      ("tests/test_optim.py",), "the learners' Adam ascends the loss"),
    # ---------------------------------------------------------------- this session's code
    M("timeout_terminal_ignored", "jcomrl/algos/learner.py",
      "rls = [r.replace(terminal=jnp.maximum(r.terminal, r.timeout)) for r in rls]",
      "rls = [r.replace(terminal=r.terminal) for r in rls]",
      ("tests/test_algos.py", "-k", "timeout_as_terminal"),
      "timeout_as_terminal leaves the TD targets bootstrapping through time-limit ends"),
    M("focal_export_last_segment", "jcomrl/data/official_layout.py",
      "rows = slice(j * seg, (j + 1) * seg)", "rows = slice(j * seg + 1, (j + 1) * seg + 1)",
      ("tests/test_official_layout.py",), "FOCAL export shifts each file by one row"),
    M("schedule_after_warmup_dropped", "jcomrl/datagen/offline.py",
      "                                after_warmup=after)",
      "                                after_warmup=False)",
      ("tests/test_offline_data.py", "-k", "schedule"),
      "the snapshot schedule check ignores intervals_after_warmup (the bug fixed this session)"),
    M("returns_reuse_any_count", "jcomrl/datagen/offline.py",
      "if (isinstance(saved, dict) and saved.get(\"measured_with\") == measured_with",
      "if (isinstance(saved, dict) and saved.get(\"measured_with\") is not None",
      ("tests/test_offline_data.py", "-k", "episode_count"),
      "snapshot returns reused for another episode count"),
    M("zshuffle_neighbour_pairs", "jcomrl/eval/suite.py",
      "  perm = z_shuffle_permutation(len(rows), settings)",
      "  perm = np.roll(np.arange(len(rows)), 1).astype(np.int32)",
      ("tests/test_eval.py", "tests/test_eval_fidelity.py", "tests/test_run.py"),
      "the z-shuffle pairs neighbours in the split's order instead of a random derangement"),
    M("taylor2_keeps_own_square", "jcomrl/metagrad/estimators.py",
      "    w = d + d * (jnp.cumsum(d) - d)  # (rho_t - 1)(1 + sum_{j < t} (rho_j - 1))",
      "    w = d + d * jnp.cumsum(d)  # (rho_t - 1)(1 + sum_{j < t} (rho_j - 1))",
      ("tests/test_metagrad.py",),
      "the second-order expansion keeps each step's own (rho_t - 1)^2 term"),
    M("loaded_dice_prev_zero", "jcomrl/metagrad/estimators.py",
      "  prev = jnp.concatenate([jnp.ones((1,), cum.dtype), cum[:-1]])",
      "  prev = jnp.concatenate([jnp.zeros((1,), cum.dtype), cum[:-1]])",
      ("tests/test_metagrad.py",),
      "Loaded DiCE's first weight starts from 0 instead of the empty product 1"),
    M("emaml_outer_not_stopped", "jcomrl/metagrad/estimators.py",
      "  return jax.lax.stop_gradient(outer_value) * jnp.sum(inner_logp)",
      "  return outer_value * jnp.sum(inner_logp)",
      ("tests/test_metagrad.py",),
      "the E-MAML term differentiates its return factor too"),
    M("awac_weights_no_scale", "jcomrl/algos/backbones/awac.py",
      "    return jax.nn.softmax(s.reshape(-1)).reshape(s.shape) * s.size",
      "    return jax.nn.softmax(s.reshape(-1)).reshape(s.shape)",
      ("tests/test_losses_by_hand.py", "tests/test_smac.py"),
      "AWAC's meta-batch weights lose their factor M (softmax alone)"),
    M("pearl_product_mean_unweighted", "jcomrl/nets/encoders.py",
      "  return prod_var * jnp.sum(mean / var, axis=-2), prod_var",
      "  return jnp.mean(mean, axis=-2), prod_var",
      ("tests/test_encoders.py", "tests/test_smac.py"),
      "the PEARL posterior mean is the plain mean of the factors, not precision-weighted"),
    M("rlkit_kernel_not_transposed", "jcomrl/data/official_checkpoints.py",
      '      "kernel": np.concatenate([actor[f"{h}.weight"].T for h in HEADS], axis=1),',
      '      "kernel": np.concatenate([actor[f"{h}.weight"] for h in HEADS], axis=1),',
      ("tests/test_official_checkpoints.py",),
      "the converted actor's heads keep torch's [out, in] layout"),
    M("ood_trained_includes_step0", "jcomrl/eval/protocols.py",
      "      return [i for i in range(num_snapshots) if int(np.asarray(steps)[i]) > 0]",
      "      return [i for i in range(num_snapshots) if int(np.asarray(steps)[i]) >= 0]",
      ("tests/test_eval_fidelity.py", "tests/test_official_checkpoints.py"),
      "the ood default takes the untrained step-0 snapshot when steps are given"),
    M("domino_decomposition_no_stop", "jcomrl/algos/objectives/domino.py",
      "      reverse = contrastive_bound(jax.lax.stop_gradient(subs_a[j]), subs_b[k], temperature,",
      "      reverse = contrastive_bound(subs_a[j], subs_b[k], temperature,",
      ("tests/test_domino.py",),
      "DOMINO's reverse decomposition term lets the gradient reach sub-context j too"),
]


def tracked_files(root: str) -> list[str]:
  out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                       cwd=root, check=True, capture_output=True).stdout.decode()
  return [f for f in out.split("\0") if f and os.path.isfile(os.path.join(root, f))]


def copy_tree(root: str, dest: str) -> None:
  for f in tracked_files(root):
    target = os.path.join(dest, f)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copy2(os.path.join(root, f), target)


def locate(m: M, root: str = ROOT) -> int:
  """The 1-based line of ``m.original`` (which must occur exactly once in ``m.file``)."""
  text = open(os.path.join(root, m.file)).read()
  count = text.count(m.original)
  if count != 1:
    raise ValueError(f"{m.id}: the original occurs {count} times in {m.file} (must be once)")
  return text[:text.index(m.original)].count("\n") + 1


def run_tests(tree: str, tests: tuple[str, ...], markers: str | None, timeout: float):
  cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider", "-p",
         "no:randomly", "-o", "addopts=", *tests]
  if markers:
    cmd += ["-m", markers]
  env = dict(os.environ, PYTHONPATH=tree, PYTHONDONTWRITEBYTECODE="1")
  env.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(ROOT, ".jax_cache"))
  env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
  t0 = time.time()
  try:
    p = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    rc, tail = p.returncode, (p.stdout + p.stderr)[-1500:]
  except subprocess.TimeoutExpired as e:
    rc, tail = -1, f"timeout after {timeout}s: {str(e.stdout)[-500:]}"
  return rc, time.time() - t0, tail


def outcome(rc: int) -> str:
  return {0: "missed", 1: "caught", 5: "no tests"}.get(
      rc, "timeout" if rc == -1 else "caught (error)")


def check_import_location(tree: str) -> None:
  """The copy's jcomrl must be the one imported (not the editable install's)."""
  out = subprocess.run([sys.executable, "-c", "import jcomrl; print(jcomrl.__file__)"],
                       cwd=tree, env=dict(os.environ, PYTHONPATH=tree), capture_output=True,
                       text=True, check=True).stdout.strip()
  if not out.startswith(os.path.realpath(tree)) and not out.startswith(tree):
    raise RuntimeError(f"the temporary copy is not what is imported: {out}")


def mutate_and_run(m: M, tree: str, markers: str | None, timeout: float) -> dict:
  path = os.path.join(tree, m.file)
  original = open(path).read()
  try:
    with open(path, "w") as f:
      f.write(original.replace(m.original, m.replacement, 1))
    rc, secs, tail = run_tests(tree, m.tests, markers, timeout)
  finally:
    with open(path, "w") as f:
      f.write(original)
  failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", tail, flags=re.M)
  return {"rc": rc, "outcome": outcome(rc), "seconds": round(secs, 1),
          "caught_by": failed[0] if failed else "", "tail": tail}


# Printed under the report's heading: how to read the numbers.
REPORT_NOTE = (
    "How the list was made: the first 40 mutations (the bugs a review of the test suite planted "
    "and the functions its new tests cover) were written together with the tests that catch "
    "them, so their catch rate measures that those tests exist and can fail, not how the suite "
    "fares against unseen bugs. The next 14 cover later code (inits, the official-layout "
    "export, the replay datasets); 6 of the 54 were chosen blind (code no new test targets, "
    "before any run): `online_random_fraction` was missed by every tier on the first run and is "
    "caught now by a test added for it; `normalise_anchor` was missed by the fast tier once its "
    "only covering tests had been marked slow, and a fast test was added; `replay_stream_order` "
    "and `shared_batch_vector` were missed by the fast tier while test_shared_sac's checks of the "
    "trained shared agent were marked slow, and those checks are back in it. The last 5 "
    "(`pretrain_pool_all` to `csro_online_ant_rounds`) were chosen blind in a later round, "
    "before any run, in code of the behaviour-data recipes, the anchors and CORRO's CVAE "
    "pretraining; the fast tier caught all 5 on their first run. The 6 after them (`protocols_all` "
    "to `record_step_reset`) were chosen blind in the redesign's new shared primitives; 2 were "
    "missed by every tier on the first run (the 'all' protocol list, the behaviour trainers' "
    "episode-return reset) and are caught now by tests added for them. The 4 after them "
    "(`legacy_name_swap` to `adam_step_sign`) were written with the plug-in settings reader and "
    "the optimiser builder and their tests; the 5 after them (`timeout_terminal_ignored` to "
    "`zshuffle_neighbour_pairs`) with the code and tests of the FOCAL side-by-side; of those, "
    "`zshuffle_neighbour_pairs` (the z-shuffle pairing neighbours of the split's order) was "
    "missed on its first run and is caught by a check added to test_eval. The last 3 "
    "(`taylor2_keeps_own_square` to `emaml_outer_not_stopped`) were written with "
    "jcomrl.metagrad and its tests; `loaded_dice_prev_zero` (Loaded DiCE's first weight from 0) "
    "leaves every derivative unchanged, was missed on its first run, and is caught by a check "
    "of the estimator's value added to test_metagrad. The last 5 (`awac_weights_no_scale` to "
    "`domino_decomposition_no_stop`) were chosen after the code and tests of AWAC, PEARL, the "
    "official-agent converter, the ood snapshot rule and DOMINO were written by others; "
    "`domino_decomposition_no_stop` (the official stop-gradient dropped) was missed on its "
    "first run and is caught by a gradient check added to test_domino. Add blind mutations to "
    "keep the check honest.")


def write_report(results: list[dict], out: str, tiers: list[str]) -> None:
  os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
  summary = {}
  for tier in tiers:
    ran = [r for r in results if tier in r["tiers"] or (tier == "all" and "fast" in r["tiers"])]
    caught = [r for r in ran if caught_in(r, tier)]
    summary[tier] = {"mutations": len(ran), "caught": len(caught),
                     "fraction": round(len(caught) / max(len(ran), 1), 3)}
  with open(out + ".json", "w") as f:
    json.dump({"summary": summary, "mutations": results}, f, indent=1)
  lines = ["# Mutation check (`python -m tools.mutants`)", "",
           "One planted one-line bug at a time, the covering tests run on a copy of the tree. "
           "`fast` = the selection under `-m \"not slow\"` (`make test`); `all` = without a "
           "marker filter (`make test-all`; run only for the mutations `fast` missed, since a "
           "mutation `fast` catches is caught by the superset).", "", REPORT_NOTE, ""]
  for tier, s in summary.items():
    lines.append(f"- **{tier}**: {s['caught']} / {s['mutations']} caught "
                 f"({100 * s['fraction']:.0f} %)")
  lines += ["", "| id | file:line | bug | fast | all | first failing test |",
            "|---|---|---|---|---|---|"]
  for r in results:
    f = r["tiers"].get("fast", {}).get("outcome", "-")
    a = r["tiers"].get("all", {}).get("outcome", "(= fast)" if f.startswith("caught") else "-")
    by = next((t["caught_by"] for t in r["tiers"].values() if t.get("caught_by")), "")
    lines.append(f"| {r['id']} | {r['file']}:{r['line']} | {r['note']} | {f} | {a} | "
                 f"`{by}` |")
  missed = [r for r in results if any(t.get("outcome") == "missed" for t in r["tiers"].values())]
  if missed:
    lines += ["", "## Missed", ""]
    for r in missed:
      tiers_missed = [t for t, v in r["tiers"].items() if v.get("outcome") == "missed"]
      lines.append(f"- `{r['id']}` (missed by {', '.join(tiers_missed)}): "
                   f"{r['why_missed'] or 'no reason recorded'}")
  with open(out + ".md", "w") as f:
    f.write("\n".join(lines) + "\n")


def caught_in(r: dict, tier: str) -> bool:
  if tier == "all" and "all" not in r["tiers"]:
    tier = "fast"
  return r["tiers"].get(tier, {}).get("outcome", "").startswith("caught")


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--tier", choices=("fast", "all", "both"), default="fast")
  ap.add_argument("--only", default="", help="comma-separated mutation ids")
  ap.add_argument("--list", action="store_true")
  ap.add_argument("--check", action="store_true", help="only check the originals occur once")
  ap.add_argument("--out", default="", help="report path without extension (.json and .md)")
  ap.add_argument("--timeout", type=float, default=900.0, help="seconds per test run")
  ap.add_argument("--report-only", action="store_true",
                  help="rewrite --out's .md from its .json (after editing the notes), run nothing")
  ap.add_argument("--merge", action="store_true",
                  help="keep the results of mutations not run now from an existing --out report")
  args = ap.parse_args(argv)
  chosen = [m for m in MUTATIONS if not args.only or m.id in args.only.split(",")]
  ids = [m.id for m in MUTATIONS]
  if len(set(ids)) != len(ids):
    raise SystemExit("duplicate mutation ids")
  for m in chosen:
    line = locate(m)
    if args.list:
      print(f"{m.id:24s} {m.file}:{line}  {m.note}")
  if args.list or args.check:
    print(f"{len(chosen)} mutations; every original occurs exactly once")
    return 0
  tiers = ["fast", "all"] if args.tier == "both" else [args.tier]
  if args.report_only:
    write_report(json.load(open(args.out + ".json"))["mutations"], args.out, tiers)
    return 0
  previous = {}
  if args.merge and args.out and os.path.exists(args.out + ".json"):
    previous = {r["id"]: r for r in json.load(open(args.out + ".json"))["mutations"]}
  results = []
  with tempfile.TemporaryDirectory(prefix="jcomrl-mutants-") as tree:
    copy_tree(ROOT, tree)
    check_import_location(tree)
    for m in MUTATIONS:
      if m not in chosen:
        if m.id in previous:
          results.append(previous[m.id])
        continue
      r = {"id": m.id, "file": m.file, "line": locate(m), "original": m.original,
           "replacement": m.replacement, "tests": list(m.tests), "note": m.note,
           "why_missed": m.why_missed, "tiers": {}}
      for tier in tiers:
        if tier == "all" and "fast" in r["tiers"] and caught_in(r, "fast"):
          continue
        res = mutate_and_run(m, tree, FAST_MARKERS if tier == "fast" else None, args.timeout)
        r["tiers"][tier] = res
        print(f"{m.id:24s} {tier:4s} {res['outcome']:15s} {res['seconds']:7.1f}s", flush=True)
      results.append(r)
      if args.out:
        write_report(results, args.out, tiers)
  if args.out:
    write_report(results, args.out, tiers)
  missed = [r["id"] for r in results if not caught_in(r, tiers[-1])]
  print(f"caught {len(results) - len(missed)} / {len(results)}; missed: {missed}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
