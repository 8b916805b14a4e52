"""The GRACE trainer: policy optimisation of a rationale-generating encoder with contrastive rewards.

```python
from grace_rag.trainer import TrainConfig, train
train(TrainConfig(batch_size=4, rollouts=4, lora=True, steps=100, output_dir="out"), "triplets.jsonl")
```
Modules, in data-flow order: config, data, rollout, rewards, estimators, contrastive, policy,
loop (GraceTrainer), checkpoint, run (the whole run and the published model directory).
"""

from __future__ import annotations

from typing import Any

from .config import Mode, Objective, RewardVariant, TrainConfig, load_config
from .estimators import ESTIMATORS, Estimator

__all__ = ["ESTIMATORS", "Estimator", "GraceTrainer", "Mode", "Objective", "RewardVariant", "TrainConfig",
           "load_config", "train"]


def __getattr__(name: str) -> Any:
    if name == "train":
        from .run import train

        return train
    if name == "GraceTrainer":
        from .loop import GraceTrainer

        return GraceTrainer
    raise AttributeError(f"module 'grace_rag.trainer' has no attribute {name!r}")
