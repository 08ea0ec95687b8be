"""Meta-gradient estimators (``estimators``: surrogates whose derivatives are the policy-gradient,
DiCE, Loaded DiCE, LVC, Taylor-expansion, V-trace and E-MAML estimates) and tabular MDPs on which
values, adapted values and meta-gradients are exact (``tabular``). Depends only on jax and numpy.
"""

from jcomrl.metagrad import estimators, tabular
from jcomrl.metagrad.estimators import (
    ESTIMATORS,
    dice,
    emaml_surrogate,
    magic_box,
    maml_inner_step,
    pg_surrogate,
    returns_to_go,
    taylor,
    vtrace,
)

__all__ = ["ESTIMATORS", "dice", "emaml_surrogate", "estimators", "magic_box", "maml_inner_step",
           "pg_surrogate", "returns_to_go", "tabular", "taylor", "vtrace"]
