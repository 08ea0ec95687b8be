"""Mutual-information estimators and bounds as pure loss functions (depends only on jax).

Lower bounds (``lower``) take a critic score matrix ``scores[i, j] = f(x_i, y_j)`` (positives on
the diagonal) or explicit ``(pos [K], neg [K, M])`` scores; upper bounds (``upper``) take a
conditional log-likelihood matrix ``log_q[i, j] = log q(y_j | x_i)``; ``variational`` holds the
Barber–Agakov (classification / generative) bounds and ``metric`` FOCAL's distance-metric loss.
Every bound returns its value in nats; maximise lower bounds, minimise upper bounds.
"""

from jcomrl.mi.lower import (
    WITH_NEGATIVES,
    DVEMAState,
    dv,
    dv_ema,
    dv_ema_init,
    dv_with_negatives,
    infonce,
    infonce_with_negatives,
    interpolated,
    interpolated_with_negatives,
    js,
    js_fgan,
    js_fgan_with_negatives,
    js_with_negatives,
    logmeanexp,
    nwj,
    nwj_with_negatives,
    smile,
    smile_with_negatives,
    tuba,
    tuba_with_negatives,
)
from jcomrl.mi.metric import focal_metric_loss, pairwise_mean_sq_dist
from jcomrl.mi.upper import UPPER_BOUNDS, club, club_sampled, gaussian_log_q, l1out
from jcomrl.mi.variational import (
    barber_agakov,
    classification_bound,
    gaussian_nll,
    generative_bound,
    log_var_bounds_penalty,
    soft_clamp_log_var,
)

__all__ = [
    "UPPER_BOUNDS", "WITH_NEGATIVES", "interpolated_with_negatives", "tuba_with_negatives",
    "DVEMAState", "barber_agakov", "classification_bound", "club", "club_sampled", "dv",
    "dv_ema", "dv_ema_init", "dv_with_negatives", "focal_metric_loss", "gaussian_log_q",
    "gaussian_nll", "generative_bound", "infonce", "infonce_with_negatives", "interpolated", "js",
    "js_fgan", "js_fgan_with_negatives", "js_with_negatives", "l1out", "log_var_bounds_penalty",
    "logmeanexp", "nwj", "nwj_with_negatives", "pairwise_mean_sq_dist", "smile",
    "smile_with_negatives", "soft_clamp_log_var", "tuba",
]
