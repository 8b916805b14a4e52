"""Benchmark: GRACE training on SciFact triplets with the embedded SmolLM2-135M, before/after nDCG@10.

    python benchmarks/train_scifact.py --steps 40 --objective grace --out /tmp/grace-run
    python benchmarks/train_scifact.py --steps 0                       # only the untrained baseline
    python benchmarks/train_scifact.py --steps 1000 --max-minutes 40 --skip-before ...   # a time budget

Prints seconds per training step and nDCG@10 on a SciFact dev subset (seeded: queries, all
their positives, BM25 distractors, random fill) before and after training, as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from grace_rag.config import EncoderConfig
from grace_rag.encoder import GraceEncoder, resolve_device
from grace_rag.evaluation import SubsetSpec, build_subset, evaluate_retrieval, load_beir
from grace_rag.models import DEFAULT_MODEL, load_backbone
from grace_rag.trainer.config import TrainConfig, train_encoder
from grace_rag.trainer.run import train

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"


def ndcg(model: str, dataset, tokens: int, max_input: int) -> dict:
    enc = GraceEncoder(model=model, config=EncoderConfig(max_rationale_tokens=tokens, max_input_tokens=max_input,
                                                         cache=False, batch_size=16), device="cpu")
    started = time.perf_counter()
    result = evaluate_retrieval(enc, dataset)
    return {"ndcg@10": result["ndcg@10"], "recall@10": result["recall@10"], "eval_s": time.perf_counter() - started}


TRACKED = ("reward_total", "reward_primary", "reward_consistency", "reward_hard", "adv_std", "finished_frac",
           "rationale_len", "contrastive_loss", "kl", "grad_norm")


def _mean(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return sum(values) / len(values) if values else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--objective", default="grace")
    ap.add_argument("--estimator", default="grpo")
    ap.add_argument("--reward-variant", default="paper")
    ap.add_argument("--unsupervised", action="store_true")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--rollouts", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=64, help="rationale tokens (training and eval)")
    ap.add_argument("--max-input", type=int, default=256, help="input tokens in training")
    ap.add_argument("--eval-max-input", type=int, default=256, help="input tokens in evaluation")
    ap.add_argument("--length-penalty", type=float, default=-1.0, help="reward of cut-off rollouts; 0 turns it off")
    ap.add_argument("--max-minutes", type=float, default=None, help="stop training after this wall time")
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--corpus", type=int, default=100)
    ap.add_argument("--distractors", type=int, default=5, help="BM25 distractors per query in the eval subset")
    ap.add_argument("--skip-before", action="store_true")
    ap.add_argument("--track-kl", action="store_true")
    ap.add_argument("--grad-accum", type=int, default=2)
    ap.add_argument("--out", default="/tmp/grace-scifact")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    dataset = build_subset(load_beir(SCIFACT, "dev"), SubsetSpec(n_queries=args.queries, corpus_size=args.corpus,
                                                                     distractors_per_query=args.distractors))
    emit = lambda **kw: print(json.dumps(kw), flush=True)  # noqa: E731
    if not args.skip_before:
        emit(stage="before", **ndcg(DEFAULT_MODEL, dataset, args.tokens, args.eval_max_input), subset=dataset.subset)
    if args.steps == 0:
        return
    cfg = TrainConfig(mode="unsupervised" if args.unsupervised else "supervised", objective=args.objective,
                      estimator=args.estimator, reward_variant=args.reward_variant, batch_size=args.batch_size,
                      rollouts=args.rollouts, lora=True,
                      encoder=train_encoder().with_changes(max_rationale_tokens=args.tokens, max_input_tokens=args.max_input), learning_rate=args.lr, steps=args.steps, save_every=0, output_dir=args.out,
                      track_kl=args.track_kl, grad_accum=args.grad_accum, max_minutes=args.max_minutes,
                      length_penalty=args.length_penalty or None)
    # unsupervised: the BEIR folder itself (its corpus.jsonl is the corpus)
    data = SCIFACT if args.unsupervised else SCIFACT / "train_triplets.jsonl"
    backbone = load_backbone(DEFAULT_MODEL, device=resolve_device("cpu"))
    started = time.perf_counter()
    result = train(cfg, data, backbone=backbone, progress=False)
    elapsed = time.perf_counter() - started
    with open(Path(args.out) / "metrics.jsonl") as handle:
        rows = [json.loads(line) for line in handle if '"s_per_step"' in line]
    emit(stage="train", steps=result.steps, train_s=elapsed, s_per_step=_mean(rows, "s_per_step"),
         first_reward=rows[0].get("reward_total"), last_reward=rows[-1].get("reward_total"),
         config={k: v for k, v in cfg.to_dict().items() if k in ("objective", "estimator", "reward_variant", "learning_rate", "mode", "batch_size", "rollouts",
                                   "encoder", "length_penalty", "lora")},
         means_first10={k: _mean(rows[:10], k) for k in TRACKED}, means_last10={k: _mean(rows[-10:], k) for k in TRACKED})
    emit(stage="after", **ndcg(str(result.output_dir), dataset, args.tokens, args.eval_max_input), subset=dataset.subset)


if __name__ == "__main__":
    main()
