"""The official behaviour agents (CORRO / UNICORN ``agent<i>.pt``) as jcomrl behaviour snapshots
(jcomrl.data.official_checkpoints, jcomrl.datagen.official_behaviour).

The torch modules here are written from the official source (PKU-RL/CORRO 210ad40; UNICORN
d8853cd ships the same files), not from the converter: ``torchkit/networks.py:17-62`` (``Mlp``:
``fc<i>`` set with ``__setattr__``, ReLU hidden layers, ``last_fc``), ``models/policy.py:11-12,
31-59,85-99`` (``TanhGaussianPolicy``: ``last_fc_log_std``, log-std clamped to [-20, 2],
deterministic action ``tanh(mean)``), ``torchkit/distributions.py:123-135`` (a sample is
``tanh(mean + std * eps)``, ``eps ~ N(0, 1)``), ``algorithms/sac.py:40-50`` (the agent's
modules) and ``learner.py:302`` (``torch.save(agent.state_dict(), "agent<i>.pt")``).
"""

import copy
import json
import math
import os
import re
import shutil
import sys
import tomllib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcomrl.data import official_checkpoints as oc
from jcomrl.data.dataset import DatasetError
from jcomrl.data.official_layout import goal_dir_name
from jcomrl.datagen import official_behaviour as ob
from jcomrl.datagen import pipeline
from jcomrl.errors import ConfigError
from jcomrl.eval import protocols
from jcomrl.nets.actor_critic import TanhGaussianPolicy, tanh_gaussian_sample

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ITERATIONS = (20, 40)  # agent20.pt, agent40.pt: --save-interval 20 (args_<env>.py:34)


@pytest.fixture(scope="module")
def torch():
  return pytest.importorskip("torch")


def _official_modules(torch):
  """``(TanhGaussianPolicy, FlattenMlp, SAC)`` as the official files define them."""
  nn, F = torch.nn, torch.nn.functional

  def fanin_init(weight):  # torchkit/pytorch_utils.py:40-49: bound 1/sqrt(size[0])
    bound = 1.0 / math.sqrt(weight.size(0))
    weight.data.uniform_(-bound, bound)

  class Mlp(nn.Module):  # networks.py:17-76 with layer_norm=False
    def __init__(self, hidden_sizes, output_size, input_size, init_w=3e-3):
      super().__init__()
      self.fcs = []  # a plain list: the layers are registered as fc0, fc1, ...
      in_size = input_size
      for i, next_size in enumerate(hidden_sizes):
        fc = nn.Linear(in_size, next_size)
        in_size = next_size
        fanin_init(fc.weight)
        fc.bias.data.fill_(0.1)
        self.__setattr__(f"fc{i}", fc)
        self.fcs.append(fc)
      self.last_fc = nn.Linear(in_size, output_size)
      self.last_fc.weight.data.uniform_(-init_w, init_w)
      self.last_fc.bias.data.uniform_(-init_w, init_w)

    def forward(self, *inputs):  # FlattenMlp, networks.py:79-86
      h = torch.cat(inputs, dim=1)
      for fc in self.fcs:
        h = F.relu(fc(h))
      return self.last_fc(h)

  class Policy(Mlp):  # models/policy.py:15-126 with std=None
    def __init__(self, obs_dim, action_dim, hidden_sizes, init_w=1e-3):
      super().__init__(hidden_sizes, action_dim, obs_dim, init_w=init_w)
      last = hidden_sizes[-1] if len(hidden_sizes) > 0 else obs_dim
      self.last_fc_log_std = nn.Linear(last, action_dim)
      self.last_fc_log_std.weight.data.uniform_(-init_w, init_w)
      self.last_fc_log_std.bias.data.uniform_(-init_w, init_w)

    def forward(self, obs, noise):
      """``(tanh(mean), tanh(mean + std * noise), mean, log_std)``."""
      h = obs
      for fc in self.fcs:
        h = F.relu(fc(h))
      mean = self.last_fc(h)
      log_std = torch.clamp(self.last_fc_log_std(h), -20, 2)
      return torch.tanh(mean), torch.tanh(mean + torch.exp(log_std) * noise), mean, log_std

  class SAC(nn.Module):  # algorithms/sac.py:40-50 (the Adam optimisers are not modules)
    def __init__(self, policy, q1, q2):
      super().__init__()
      self.qf1, self.qf2 = q1, q2
      self.qf1_target, self.qf2_target = copy.deepcopy(q1), copy.deepcopy(q2)
      self.policy = policy

  return Policy, Mlp, SAC


def _agent(torch, obs_dim, act_dim, hidden, seed, log_std_bias=None):
  """An official SAC agent with trained-looking actor weights (not the near-zero heads of the
  initialisation); ``log_std_bias`` pushes the log-std past the clamp."""
  Policy, Mlp, SAC = _official_modules(torch)
  torch.manual_seed(seed)
  policy = Policy(obs_dim, act_dim, list(hidden))
  q = [Mlp(list(hidden), 1, obs_dim + act_dim) for _ in range(2)]
  with torch.no_grad():
    for p in policy.parameters():
      p.normal_(0.0, 0.6)
    if log_std_bias is not None:
      policy.last_fc_log_std.bias.copy_(torch.tensor(log_std_bias))
  return SAC(policy, *q)


def _save(torch, agent, run_dir, iteration) -> str:
  """learner.py:296-302: ``<run dir>/models/agent<i>.pt`` holding the agent's state dict."""
  os.makedirs(os.path.join(run_dir, "models"), exist_ok=True)
  path = os.path.join(run_dir, "models", f"agent{iteration}.pt")
  torch.save(agent.state_dict(), path)
  return path


def _close(ours, theirs):
  np.testing.assert_allclose(np.asarray(ours), theirs.detach().numpy(), rtol=1e-5, atol=2e-6)


def _torch_actions(torch, agent, obs, eps):
  with torch.no_grad():
    return agent.policy(torch.from_numpy(np.array(obs, np.float32)),
                        torch.from_numpy(np.array(eps, np.float32)))


def test_the_converted_actor_computes_the_official_policy(torch, tmp_path):
  """Mean, clamped log-std, tanh(mean) and a sample with the same noise equal torch's."""
  hidden = (16, 8)  # two widths: a transposed or swapped layer cannot pass
  agent = _agent(torch, 5, 3, hidden, seed=0, log_std_bias=[3.5, -25.0, 0.2])
  path = _save(torch, agent, str(tmp_path / "seed_1_goal_2.62"), 20)
  params = oc.load_rlkit_actor(path)
  assert oc.actor_sizes(params) == (5, hidden, 3)
  assert sorted(params["params"]["MLP_0"]) == ["Dense_0", "Dense_1", "Dense_2"]
  # The actor's own state dict (keys fc0.weight, ...) and the module give the same params.
  for other in (agent.policy.state_dict(), agent.policy):
    jax.tree.map(np.testing.assert_array_equal, oc.load_rlkit_actor(other), params)

  obs = 3.0 * np.random.RandomState(0).normal(size=(64, 5)).astype(np.float32)
  mean, log_std = TanhGaussianPolicy(hidden, 3).apply(params, jnp.asarray(obs),
                                                      jnp.zeros((64, 0)))
  key = jax.random.key(3)
  sample, _ = tanh_gaussian_sample(key, mean, log_std)
  eps = jax.random.normal(key, mean.shape)  # the noise tanh_gaussian_sample draws from key
  t_det, t_sample, t_mean, t_log_std = _torch_actions(torch, agent, obs, eps)
  _close(mean, t_mean)
  _close(log_std, t_log_std)
  _close(jnp.tanh(mean), t_det)
  _close(sample, t_sample)
  ls = t_log_std.numpy()
  assert np.any(ls == 2.0) and np.any(ls == -20.0) and np.any((ls > -20) & (ls < 2))


def test_a_state_dict_that_is_not_the_official_actor_is_refused_in_one_line(torch, tmp_path):
  state = _agent(torch, 5, 3, (16, 8), seed=1).state_dict()

  def changed(drop=(), **put):
    out = {k: v for k, v in state.items() if k not in drop}
    out.update({k.replace("__", "."): v for k, v in put.items()})
    return out

  cases = [
      (changed(drop=["policy.last_fc_log_std.bias"]),
       r"lacks key 'policy\.last_fc_log_std\.bias'.*learner\.py:302"),
      (changed(drop=["policy.fc1.bias"]), r"lacks key 'policy\.fc1\.bias'"),
      (changed(drop=["policy.fc0.weight", "policy.fc0.bias"]), r"lacks key 'policy\.fc0\.weight'"),
      (changed(policy__fc1__weight=torch.zeros(8, 7)),
       r"key 'policy\.fc1\.weight' has shape \(8, 7\); expected \(out, 16\)"),
      (changed(policy__fc0__bias=torch.zeros(3)),
       r"key 'policy\.fc0\.bias' has shape \(3,\); expected \(16,\)"),
      (changed(policy__last_fc_log_std__weight=torch.zeros(2, 8)),
       r"key 'policy\.last_fc_log_std\.weight' has shape \(2, 8\); expected \(3, 8\)"),
      (changed(policy__layer_norm0__weight=torch.ones(16)),
       r"unexpected actor key 'policy\.layer_norm0\.weight'"),
      ({k: v for k, v in state.items() if k.startswith("qf1.")}, "no rlkit TanhGaussianPolicy"),
  ]
  for bad, match in cases:
    with pytest.raises(DatasetError, match=match) as e:
      oc.load_rlkit_actor(bad)
    assert "\n" not in str(e.value), str(e.value)
  with pytest.raises(DatasetError, match=r"observation size is 5, expected 4; convert agents collected in this env"):
    oc.load_rlkit_actor(state, obs_size=4, action_size=3)
  # A pickled module is not loaded (torch.load weights_only): one line naming the format.
  torch.save(torch.nn.Linear(2, 2), str(tmp_path / "agent20.pt"))
  with pytest.raises(DatasetError, match=r"not a PyTorch state dict of tensors") as e:
    oc.load_rlkit_actor(str(tmp_path / "agent20.pt"))
  assert "\n" not in str(e.value)


def test_without_torch_reading_a_checkpoint_names_the_extra(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
  with pytest.raises(oc.TorchUnavailableError, match=r"pip install 'jcomrl\[torch\]'") as e:
    oc.load_rlkit_actor(str(tmp_path / "agent20.pt"))
  assert isinstance(e.value, ImportError) and isinstance(e.value, DatasetError)
  assert "\n" not in str(e.value)


def test_official_run_directories_and_checkpoint_steps(tmp_path):
  for run, its in (("seed_1_goal_2.62", (20, 200, 40)), ("seed_2_goal_2.739", (20,)),
                   ("8__30_10_16_14_58", (100,))):  # learner.py:49-53; utils/tb_logger.py:18
    os.makedirs(tmp_path / run / "models")
    for i in its:
      (tmp_path / run / "models" / f"agent{i}.pt").write_bytes(b"")
  os.makedirs(tmp_path / "logs")  # not a run directory
  found = oc.find_task_checkpoints(str(tmp_path))
  assert list(found) == ["8__30_10_16_14_58", "seed_1_goal_2.62", "seed_2_goal_2.739"]
  assert list(found["seed_1_goal_2.62"]) == [20, 40, 200]
  assert [oc.task_dir_seed(n) for n in found] == [8, 1, 2]
  assert oc.rows_by_goal(["seed_1_goal_2.62", "seed_2_goal_2.739"],
                         np.array([[2.7391], [1.0], [2.6202]])) == {
                             "seed_1_goal_2.62": 2, "seed_2_goal_2.739": 0}
  with pytest.raises(DatasetError, match="no goal in the directory name"):
    oc.rows_by_goal(["8__30_10_16_14_58"], np.zeros((3, 1)))
  with pytest.raises(DatasetError, match="matches 2 task rows"):
    oc.rows_by_goal(["seed_1_goal_2.62"], np.array([[2.62], [2.6201]]))
  with pytest.raises(DatasetError, match="no agent<i>.pt checkpoint"):
    oc.find_agent_checkpoints(str(tmp_path / "logs"))
  # 50 random rollouts + 2 per iteration of 200 steps (args_ant_dir.py:23-24).
  steps, unit = ob.checkpoint_steps([20, 200], "ant_dir")
  assert unit == "env_steps" and steps.tolist() == [18_000, 90_000]
  steps, unit = ob.checkpoint_steps([20, 3000], "walker_param")  # falls end episodes
  assert unit == "iterations" and steps.tolist() == [20, 3000]
  steps, unit = ob.checkpoint_steps([20], "point_robot", warmup_steps=100, steps_per_iteration=20)
  assert unit == "env_steps" and steps.tolist() == [500]
  with pytest.raises(ConfigError, match="needs steps_per_iteration"):
    ob.checkpoint_steps([20], "point_robot", warmup_steps=100)


@pytest.fixture(scope="module")
def official_tree(torch, tmp_path_factory, synthetic_dir):
  """UNICORN's ``batch_data_copy/<Env>/data`` layout (README.md:47-56) for the 40 point-robot
  tasks of the synthetic dataset: ``seed_<k>_goal_<g>/models/agent{20,40}.pt``; returns
  ``(root, {(row, iteration): agent})``."""
  root = str(tmp_path_factory.mktemp("official"))
  params = np.load(os.path.join(synthetic_dir, "task_params.npy"))
  agents = {}
  for row, goal in enumerate(params):
    run = os.path.join(root, goal_dir_name(row + 1, goal))
    for it in ITERATIONS:
      agents[(row, it)] = _agent(torch, 2, 2, (8,), seed=100 * row + it)
      _save(torch, agents[(row, it)], run, it)
  return root, agents


def _dataset_copy(synthetic_dir, tmp_path) -> str:
  out = str(tmp_path / "point_robot")
  shutil.copytree(synthetic_dir, out)
  return out


def test_stored_agents_restore_through_the_ood_path(torch, official_tree, synthetic_dir,
                                                    point_env, tmp_path):
  root, agents = official_tree
  data_dir = _dataset_copy(synthetic_dir, tmp_path)
  params = np.load(os.path.join(data_dir, "task_params.npy"))
  found = oc.find_task_checkpoints(root)
  rows = oc.rows_by_goal(found, params)
  assert sorted(rows.values()) == list(range(len(params)))
  ckpts = {rows[name]: per for name, per in found.items()}
  stored = ob.store_official_behaviour(data_dir, point_env, ckpts, warmup_steps=100,
                                       steps_per_iteration=40)
  back = pipeline.load_behaviour(data_dir, point_env)  # jcomrl.run's restore for the ood protocol
  assert back.algo == "sac_per_task" and back.hidden_sizes == (8,)
  assert back.steps.tolist() == [900, 1700]
  jax.tree.map(np.testing.assert_array_equal, back.params, stored.params)
  with open(os.path.join(data_dir, "behaviour", ob.SOURCE_FILE)) as f:
    record = json.load(f)
  assert record["iterations"] == list(ITERATIONS) and record["steps_unit"] == "env_steps"
  assert record["files"]["3"]["40"]["path"] == os.path.abspath(ckpts[3][40])

  key = jax.random.key(5)
  eps = jax.random.normal(key, (2,))
  obs = np.array([0.3, -0.7], np.float32)
  for k, it in enumerate(ITERATIONS):
    snap = jax.tree.map(lambda x, k=k: x[k], back.params)
    det, sto = back.make_policy(snap, True), back.make_policy(snap, False)
    for row in (0, 17, len(params) - 1):
      o = jnp.concatenate([obs, params[row]])  # the rollout appends the task vector
      t_det, t_sto, _, _ = _torch_actions(torch, agents[(row, it)], obs, eps)
      _close(det(o, key)[0], t_det)
      _close(sto(o, key)[0], t_sto)
  # The OOD protocol's context: test task 39 rolled by task 5's agent40 (snapshot 1).
  tasks = jax.tree.map(lambda x: x[np.array([39])], point_env.all_benchmark_tasks())
  ctx = protocols.behaviour_contexts(point_env, back, tasks, params[[5]], [1], key,
                                     deterministic=True)
  first_obs, first_action = np.asarray(ctx.obs[0, 0, 0]), np.asarray(ctx.action[0, 0, 0])
  _close(first_action, _torch_actions(torch, agents[(5, 40)], first_obs, np.zeros(2))[0])


def test_storing_refuses_without_touching_the_dataset(torch, official_tree, synthetic_dir,
                                                      point_env, tmp_path):
  root, _ = official_tree
  data_dir = _dataset_copy(synthetic_dir, tmp_path)
  params = np.load(os.path.join(data_dir, "task_params.npy"))
  found = oc.find_task_checkpoints(root)
  ckpts = {row: found[name] for name, row in oc.rows_by_goal(found, params).items()}
  before = sorted(os.listdir(data_dir))
  with pytest.raises(DatasetError, match=r"missing rows \[7\]"):
    ob.store_official_behaviour(data_dir, point_env, {r: c for r, c in ckpts.items() if r != 7})
  bad = dict(ckpts)
  bad[9] = {20: ckpts[9][20], 40: str(tmp_path / "wrong.pt")}
  torch.save(_agent(torch, 2, 2, (4,), seed=0).state_dict(), bad[9][40])
  with pytest.raises(DatasetError, match=r"wrong\.pt: the actor's hidden sizes are \(4,\), "
                                         r"expected \(8,\)"):
    ob.store_official_behaviour(data_dir, point_env, bad)
  with pytest.raises(DatasetError, match=r"no checkpoint of iteration\(s\) \[60\]"):
    ob.store_official_behaviour(data_dir, point_env, ckpts, iterations=[20, 60])
  assert sorted(os.listdir(data_dir)) == before  # nothing written, no temporary left
  # Existing snapshots are kept unless overwrite=True, which replaces them once complete.
  ob.store_official_behaviour(data_dir, point_env, ckpts, iterations=[40])
  with pytest.raises(DatasetError, match="behaviour exists.*overwrite=True"):
    ob.store_official_behaviour(data_dir, point_env, ckpts)
  assert pipeline.load_behaviour(data_dir, point_env).steps.tolist() == [40]  # iterations
  ob.store_official_behaviour(data_dir, point_env, ckpts, overwrite=True)
  assert pipeline.load_behaviour(data_dir, point_env).steps.tolist() == [20, 40]
  assert sorted(os.listdir(data_dir)) == sorted(before + ["behaviour"])


def test_the_makefile_installs_the_torch_extra_from_the_cpu_index():
  """make install puts torch's CPU wheel in before '.[dev]' (so `make test` runs the tests above
  on CI without pulling the CUDA wheel), in the range of pyproject's torch extra."""
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    extras = tomllib.load(f)["project"]["optional-dependencies"]
  with open(os.path.join(ROOT, "Makefile")) as f:
    makefile = f.read()
  spec = re.search(r"^TORCH_SPEC := (.+)$", makefile, re.M).group(1)
  assert extras["torch"] == [spec] and not any("torch" in d for d in extras["dev"])
  assert re.search(r"^TORCH_INDEX := https://download\.pytorch\.org/whl/cpu$", makefile, re.M)
  torch_line = makefile.index("--index-url $(TORCH_INDEX) '$(TORCH_SPEC)'")
  assert torch_line < makefile.index("pip install --quiet -e '.[dev]'")


def test_convert_imports_the_data_and_the_agents_of_one_official_tree(torch, synthetic_dir,
                                                                      point_env, tmp_path):
  """``experiments.convert --from=unicorn --behaviour=...``: a UNICORN layout (our export) and
  run directories of the same names holding the agents; each run's agents land on the row of
  the data directory of its name, and the ood default takes every agent (all are trained)."""
  from experiments import cli
  from experiments.convert import convert
  from jcomrl.data.official_layout import export_unicorn
  from jcomrl.eval import protocols

  layout = str(tmp_path / "PointRobot")
  export_unicorn(synthetic_dir, layout)
  params = np.load(os.path.join(synthetic_dir, "task_params.npy"))
  runs, agents = str(tmp_path / "runs"), {}
  for row, goal in enumerate(params):
    name = goal_dir_name(row, goal)  # the exported data directory's name
    agents[row] = _agent(torch, 2, 2, (8,), seed=row)
    _save(torch, agents[row], os.path.join(runs, name), 20)
  bad = str(tmp_path / "bad")
  with pytest.raises(DatasetError, match="no official run directory"):
    convert("unicorn", None, [layout], bad, env="point_robot", behaviour=str(tmp_path))
  assert not os.path.exists(bad)  # refused before the dataset was written
  with pytest.raises(cli.UsageError, match="pass --env"):
    convert("unicorn", None, [layout], bad, env="not_an_env", behaviour=runs)
  out = str(tmp_path / "imported")
  line = convert("unicorn", None, [layout], out, env="point_robot", behaviour=runs)
  assert "behaviour/" in line
  back = pipeline.load_behaviour(out, point_env)
  assert protocols.ood_snapshot_ids(back.num_snapshots, "trained", back.steps) == [0]
  obs, eps = np.array([0.3, -0.7], np.float32), np.zeros(2, np.float32)
  snap = jax.tree.map(lambda x: x[0], back.params)
  det = back.make_policy(snap, True)
  imported = np.load(os.path.join(out, "task_params.npy"))
  for row in (0, 21, len(params) - 1):
    o = jnp.concatenate([obs, imported[row]])
    _close(det(o, jax.random.key(0))[0], _torch_actions(torch, agents[row], obs, eps)[0])
