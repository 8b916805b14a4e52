"""Publish an intermediate checkpoint of a training run as a model directory, while the run goes on.

A run publishes its model only at the end; to score it at step N (or to start another recipe from
it), this loads the run's config and the checkpoint ``OUT.checkpoints/step-0000000N`` and writes
the same directory ``grace-rag train`` would have written at that step (adapter or weights,
``grace_encoder.json``, ``grace_train.json``, ``metrics.jsonl`` up to N).

    python benchmarks/export_checkpoint.py /work/runs/cand-b.checkpoints/step-00000050 --out /work/runs/cand-b-50
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a step-NNNNNNNN folder of a run's checkpoints")
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the model")
    args = parser.parse_args()

    from grace_rag.trainer.checkpoint import check_output_dir, load_checkpoint
    from grace_rag.trainer.config import TrainConfig
    from grace_rag.trainer.loop import GraceTrainer
    from grace_rag.trainer.run import TrainResult, publish_model, training_backbone

    state = json.loads((args.checkpoint / "state.json").read_text())
    config = TrainConfig.from_dict(state["config"], source=str(args.checkpoint / "state.json"))
    check_output_dir(args.out, [])
    trainer = GraceTrainer(config, training_backbone(config))
    step = load_checkpoint(args.checkpoint, trainer.policy, trainer.optimizer)["step"]
    metrics = args.checkpoint.parent / "metrics.jsonl"
    with tempfile.TemporaryDirectory() as tmp:
        kept = Path(tmp) / "metrics.jsonl"
        if metrics.is_file():
            lines = [ln for ln in metrics.read_text().splitlines() if json.loads(ln).get("step", 0) <= step]
            kept.write_text("".join(ln + "\n" for ln in lines))
        publish_model(trainer, args.out, kept, TrainResult(args.out, step, {}))
    print(f"step {step} of {args.checkpoint.parent} written to {args.out}")


if __name__ == "__main__":
    main()
