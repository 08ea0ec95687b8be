"""Mutual-information estimators and bounds as pure loss functions (depends only on jax)."""

from jcomrl.mi.metric import focal_metric_loss, pairwise_mean_sq_dist

__all__ = ["focal_metric_loss", "pairwise_mean_sq_dist"]
