"""Flax modules: MLPs, context encoders, policies, critics and the objectives' decoders."""

from jcomrl.nets.actor_critic import DoubleCritic, StateActionCritic, TanhGaussianPolicy
from jcomrl.nets.critics import ConcatCritic, SeparableCritic
from jcomrl.nets.decoders import ClubNet, GaussianMLP, TransitionCVAE, TransitionDecoder
from jcomrl.nets.encoders import AttentionPoolEncoder, MeanTanhEncoder, make_encoder
from jcomrl.nets.mlp import MLP

__all__ = ["MLP", "AttentionPoolEncoder", "ClubNet", "ConcatCritic", "DoubleCritic",
           "GaussianMLP", "MeanTanhEncoder", "SeparableCritic", "StateActionCritic",
           "TanhGaussianPolicy", "TransitionCVAE", "TransitionDecoder", "make_encoder"]
