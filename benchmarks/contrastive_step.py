"""Benchmark: seconds per InfoNCE step with memoised greedy rationales against decoding them every step.

    python benchmarks/contrastive_step.py --triplets 32 --batch-size 16 --epochs 2

Two trainers start from the same model (the shipped adapter, trained further as ``grace-rag
train --objective contrastive --lora`` does) and take turns, step by step, over the same
batches, so both see the same machine: ``memo`` keeps each text's greedy rationale once decoded
(today's trainer), ``decode`` forgets them before every step, as the trainer did before the
memo existed (every step decoded its positives' and negatives' rationales again). From the
second epoch on, ``memo`` decodes nothing. Prints one JSON line per step and a summary:
mean s/step per trainer over all steps and over the epochs after the first.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from grace_rag.config import EncoderConfig
from grace_rag.trainer.config import TrainConfig
from grace_rag.trainer.data import load_triplets
from grace_rag.trainer.loop import GraceTrainer
from grace_rag.trainer.run import batch_for_step, training_backbone

TRIPLETS = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact" / "train_triplets.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-grace")
    ap.add_argument("--triplets", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=32)
    args = ap.parse_args()
    cfg = TrainConfig(objective="contrastive", model=args.model, lora=True, batch_size=args.batch_size,
                      encoder=EncoderConfig(max_rationale_tokens=args.tokens, query_rationale_tokens=0,
                                            max_input_tokens=128, layer="penultimate"),
                      learning_rate=1e-4, track_kl=False)
    data = load_triplets(TRIPLETS)[:args.triplets]
    trainers = {"memo": GraceTrainer(cfg, training_backbone(cfg)), "decode": GraceTrainer(cfg, training_backbone(cfg))}
    per_epoch = len(data) // cfg.batch_size
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for step in range(per_epoch * args.epochs):
        batch = batch_for_step(data, step, cfg.batch_size, cfg.seed)
        for name, trainer in trainers.items():
            if name == "decode":
                trainer.memo.load({})  # what the trainer did before the memo: decode every step
            seconds = trainer.step(batch, step)["s_per_step"]
            times[name].append(seconds)
            print(json.dumps({"step": step + 1, "epoch": step // per_epoch + 1, "trainer": name,
                              "s_per_step": round(seconds, 2)}), flush=True)
    later = {name: t[per_epoch:] for name, t in times.items()}
    print(json.dumps({
        "batch_size": cfg.batch_size, "tokens": args.tokens, "steps": len(times["memo"]),
        "mean_s_per_step": {name: round(statistics.mean(t), 2) for name, t in times.items()},
        "mean_s_per_step_after_epoch_1": {name: round(statistics.mean(t), 2) for name, t in later.items() if t},
        "ratio_decode_over_memo_after_epoch_1": round(statistics.mean(later["decode"]) / statistics.mean(later["memo"]), 2)
        if later["memo"] else None,
    }), flush=True)


if __name__ == "__main__":
    main()
