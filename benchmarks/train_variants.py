"""Benchmark: how much the paper's and the per-rollout reward variants differ on real rollouts.

    python benchmarks/train_variants.py --batches 2 --tokens 64

Samples GRACE rollouts (B triplets, K rollouts) from the embedded SmolLM2-135M on SciFact
triplets, scores the same embeddings with both reward variants, and prints, per batch:
the spread of each variant's group-mean advantage, their correlation, and the share of the
per-rollout advantage variance that comes from the negative/hard terms (zero by
construction in the paper's variant, where those terms are constant within a group).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from grace_rag.models import DEFAULT_MODEL, load_backbone
from grace_rag.trainer import rewards as R
from grace_rag.trainer.config import TrainConfig, train_encoder
from grace_rag.trainer.data import load_triplets
from grace_rag.trainer.estimators import group_mean_advantage
from grace_rag.trainer.loop import GraceTrainer
from grace_rag.trainer.run import batch_for_step

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--rollouts", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--max-input", type=int, default=128)
    args = ap.parse_args()
    cfg = TrainConfig(batch_size=args.batch_size, rollouts=args.rollouts, lora=True, track_kl=False,
                      encoder=train_encoder().with_changes(max_rationale_tokens=args.tokens, max_input_tokens=args.max_input))
    trainer = GraceTrainer(cfg, load_backbone(DEFAULT_MODEL, device="cpu"))
    data = load_triplets(SCIFACT / "train_triplets.jsonl")
    for step in range(args.batches):
        ro = trainer.rollout(batch_for_step(data, step, cfg.batch_size, cfg.seed), step)
        q, pos, neg = ro.context.embeddings, ro.group_embeddings(), ro.negative_embeddings()
        done = torch.ones(pos.shape[:2], dtype=torch.bool)  # compare the similarity terms only
        kw = dict(lambda_consistency=cfg.lambda_consistency, lambda_hard=cfg.lambda_hard, tau=cfg.tau,
                  length_penalty=None)
        paper = R.supervised_rewards(q, pos, neg, done, variant="paper", **kw)
        varied = R.supervised_rewards(q, pos, neg, done, variant="per_rollout", **kw)
        a_p, a_v = group_mean_advantage(paper.total), group_mean_advantage(varied.total)
        neg_part = group_mean_advantage(
            (-(torch.einsum("bkd,bmd->bkm", pos, neg).sum(2)) + cfg.lambda_hard * varied.hard) / cfg.tau)
        print(json.dumps({
            "batch": step, "finished_frac": float(ro.group.finished.float().mean()),
            "adv_std_paper": float(a_p.std()), "adv_std_per_rollout": float(a_v.std()),
            "corr": float(torch.corrcoef(torch.stack([a_p.flatten(), a_v.flatten()]))[0, 1]),
            "neg_hard_share_of_var_per_rollout": float(neg_part.var() / a_v.var()),
            "mean_sim_q_pos": float(torch.einsum("bd,bkd->bk", q, pos).mean()),
            "mean_consistency": float(paper.consistency.mean()),
        }), flush=True)


if __name__ == "__main__":
    main()
