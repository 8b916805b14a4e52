"""Run the real trainer (``grace_rag.trainer.run.train``) as one process of ``accelerate launch``, or alone.

Usage: ``launch_train.py CONFIG_JSON DATA RECORD_DIR``. CONFIG_JSON holds TrainConfig fields, plus
optionally ``"max_minutes_by_rank": [m0, m1, ...]`` giving each process its own time budget (to
check that the processes still stop together). After every optimiser step each process saves
all its parameters to ``RECORD_DIR/rank{r}-step{s}.npy`` and appends a line to
``RECORD_DIR/rank{r}.jsonl`` (step, parameter SHA-256, backend, world size, examples seen).
"""

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from grace_rag.trainer.config import TrainConfig
from grace_rag.trainer.loop import GraceTrainer
from grace_rag.trainer.run import train


def record_steps(directory: Path) -> None:
    """Wrap GraceTrainer.step so that each process records its parameters after every step."""
    real_step = GraceTrainer.step

    def step(self: GraceTrainer, batch, index: int):
        metrics = real_step(self, batch, index)
        acc = self.accelerator
        params = torch.cat([p.detach().float().reshape(-1).cpu() for p in self.policy.parameters()]).numpy()
        np.save(directory / f"rank{acc.process_index}-step{index + 1}.npy", params)
        line = {"step": index + 1, "sha256": hashlib.sha256(params.tobytes()).hexdigest(),
                "backend": str(acc.state.backend), "world": acc.num_processes, "examples": len(batch)}
        with (directory / f"rank{acc.process_index}.jsonl").open("a") as handle:
            handle.write(json.dumps(line) + "\n")
        return metrics

    GraceTrainer.step = step


def main() -> None:
    config_path, data, directory = sys.argv[1:4]
    fields = json.loads(Path(config_path).read_text())
    by_rank = fields.pop("max_minutes_by_rank", None)
    if by_rank is not None:
        fields["max_minutes"] = by_rank[int(os.environ.get("RANK", "0"))]
    record_steps(Path(directory))
    train(TrainConfig.from_dict(fields), data, progress=False)


if __name__ == "__main__":
    main()
