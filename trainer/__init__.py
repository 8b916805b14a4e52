"""The GRACE trainer: policy optimisation of a rationale-generating encoder with contrastive rewards."""

from .config import Mode, Objective, RewardVariant, TrainConfig, load_config
from .estimators import ESTIMATORS, Estimator

__all__ = ["ESTIMATORS", "Estimator", "Mode", "Objective", "RewardVariant", "TrainConfig", "load_config"]
