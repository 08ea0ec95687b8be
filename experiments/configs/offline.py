"""Single-task offline RL: ``--config=experiments/configs/offline.py:<backbone>[@cpu|@tiny]``.

Backbones (settings and sources: :mod:`jcomrl.algos.offline_presets`): ``bc``, ``td3bc``,
``cql``, ``iql``, ``misa``. ``@cpu`` is the 2-core profile (narrower nets, 1e4 updates, K = 4,
MISA with importance-weighted partition gradients), ``@tiny`` a test-sized job. The dataset is a
one-task dataset; point ``--config.dataset`` (and ``--config.env``, the env it was collected
in) at it, e.g.::

    python -m experiments.train --config=experiments/configs/offline.py:misa@cpu \\
        --config.env=hopper_param --config.dataset=data/offline/hopper-medium --workdir=runs/x

Any ``LearnerConfig`` field is a ``learner.*`` key and a backbone's own settings are its
subtree (e.g. ``--config.learner.misa.bound=dv --config.learner.misa.partition_grad=importance``);
any hyper-parameter is a ``hparams.*`` key (``--config.hparams.misa.critic_weight=2``).
"""

from ml_collections import config_dict

from experiments.configs.common import set_schedule_and_learner
from jcomrl.algos.offline_presets import OFFLINE_PRESETS, offline_preset


def get_config(variant: str = "misa"):
  name, at, profile = variant.partition("@")
  if name not in OFFLINE_PRESETS or (at and profile not in ("cpu", "tiny")):
    raise ValueError(f"no offline variant {variant!r}; have <backbone>[@cpu|@tiny] with backbone "
                     f"in {', '.join(OFFLINE_PRESETS)}")
  tiny = profile == "tiny"
  p = offline_preset(name, profile="cpu" if profile == "cpu" else "paper", tiny=tiny)
  c = config_dict.ConfigDict()
  c.algo = name
  c.env = "hopper_param"
  c.dataset = "data/offline/hopper-medium"
  c.profile = profile or "paper"
  c.seed = 0
  c.num_seeds = 1
  chunk = set_schedule_and_learner(c, p)
  c.checkpoint_every = c.eval_every = max(chunk, c.num_steps // 4 // chunk * chunk)
  if profile == "paper" or not profile:
    c.checkpoint_every, c.eval_every = 50_000, 5_000
  c.eval = config_dict.ConfigDict(dict(num_episodes=10 if not tiny else 1, seed=123))
  return c
