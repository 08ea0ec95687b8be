"""Representation objectives as registered modules (one file each; see :mod:`.base`).

UNICORN's view (docs/DESIGN.md, "The pipeline"): the COMRL methods differ only in which bound
on I(Z; M) their encoder optimises.

| objective        | loss                                                     | bound                     |
|------------------|----------------------------------------------------------|---------------------------|
| ``focal``        | w_focal * FOCAL distance-metric loss on task codes       | upper, I(Z; X)            |
| ``csro``         | focal + lambda * CLUB(z_i; s_i, a_i) + q_psi NLL         | interpolation             |
| ``reconstruction`` | Gaussian NLL of (ds, r) from (z, s, a)                 | I(Z; X_t | X_b)           |
| ``unicorn_ss``   | reconstruction + w_focal * focal                         | aI(Z;X)+(1-a)I(Z;X_t|X_b) |
| ``unicorn_sup``  | task-classifier cross-entropy                            | I(Z; M)                   |
| ``kl``           | w_kl * KL(q(z | context) || prior), Gaussian encoders     | upper, I(Z; X)            |
| ``borel``        | reconstruction (reward; state optional) + kl (BOReL)     | ELBO                      |
| ``smac``         | reward-decoder MSE on the RL batch + kl (SMAC, PEARL's)  | ELBO-like                 |
| ``corro``        | InfoNCE (any ``contrastive_bound``), CVAE negatives      | lower, I(Z;X_t|X_b)       |
| ``domino``       | reconstruction (+ backward) + w * [-sum of sub-context   | lower per sub-context,    |
|                  | InfoNCEs + InfoNCE between sub-contexts]                 | minus I(c_j; c_k)         |
| ``supervised``   | none (encoder trained by the critic)                     | —                         |
| ``oracle``       | none, z = true task parameters                           | —                         |
| ``none``         | none, z empty: single-task offline RL                    | —                         |
| ``prompt``       | none, z = a Prompt-DT prompt from the context (DT only)  | —                         |

``OBJECTIVES`` maps each name to its class; importing this package registers the built-in ones.
"""

from jcomrl.algos.objectives import (  # noqa: F401  (registers them)
  corro,
  csro,
  domino,
  focal,
  kl,
  none,
  oracle,
  prompt,
  smac,
  supervised,
  unicorn_ss,
  unicorn_sup,
)
from jcomrl.algos.objectives.base import (  # noqa: F401
  OBJECTIVES,
  ContextEncoder,
  Objective,
  Representation,
  code_size,
  make_representation,
  parse_terms,
  register,
  z_spread,
)
from jcomrl.algos.objectives.corro import corro_infonce  # noqa: F401
from jcomrl.algos.objectives.csro import csro_club, gaussian_nll_per_dim  # noqa: F401
from jcomrl.algos.objectives.unicorn_ss import mbrl_gaussian_nll  # noqa: F401
