"""Benchmark: does the GRACE policy objective earn its place? An ablation at equal wall-clock (issue 10).

    python benchmarks/ablation.py list                      # the arms and their settings
    python benchmarks/ablation.py run ARM [--minutes 30]    # train (resumable), then evaluate
    python benchmarks/ablation.py ref warm                  # a starting point scored unchanged
    python benchmarks/ablation.py table                     # the results as a Markdown table

Every arm trains for the same wall-clock budget (``--max-minutes``; two arms side by side, one
thread each, as the README's training table was measured) on SciFact's 740 train triplets (or,
``unsup-*``, on the SciFact corpus without labels), then its published model is scored as a user
would load it: ``grace-rag eval`` on SciFact dev subset ``9dee594a2b35`` (150 queries, 400
documents, 1 BM25 distractor per query), greedy 32-token document rationales, no query
rationale, penultimate-layer mean pooling.

The warm start is the shipped adapter ``smollm2-135m-grace`` (100 InfoNCE steps at B = 16; it
is itself "InfoNCE alone" for 3.5 hours): warm arms continue it, ``*-scratch`` arms start from
the untrained base with a fresh LoRA adapter. The control for every warm GRACE arm is
``cl-warm-*``: the same minutes spent on more InfoNCE.

A run killed part-way resumes from its checkpoint (every 10 steps) with the minutes left; a
finished arm is not run again. Trained models go to ``--runs`` (not committed); the small result
file ``benchmarks/out/ablation/ARM.json`` holds the eval, the training summary (steps, minutes,
the mean within-group reward spread and advantage spread, clip fraction) and the commands.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "out" / "ablation"
TRIPLETS = SHARED / "scifact" / "train_triplets.jsonl"
CORPUS = SHARED / "scifact" / "corpus.jsonl"
EVAL = ["--split", "dev", "--subset", "150", "--corpus-size", "400", "--distractors", "1", "--quantization", "none"]

WARM, BASE = "smollm2-135m-grace", "smollm2-135m-instruct"
#: settings of every arm (the shipped adapter's training settings; cut rollouts keep their reward)
COMMON: dict[str, Any] = dict(lora=True, length_penalty="off", track_kl=False, save_every=10)
ENCODER: dict[str, Any] = dict(max_rationale_tokens=32, query_rationale_tokens=0, max_input_tokens=128, layer="penultimate")
GRACE = dict(objective="grace", batch_size=4, estimator="grpo")
INFONCE = dict(objective="contrastive", batch_size=16)


def _arm(init: str, encoder: dict[str, Any] | None = None, **settings: Any) -> dict[str, Any]:
    return {"init": init, "settings": {**COMMON, **settings, "encoder": {**ENCODER, **(encoder or {})}}}


ARMS: dict[str, dict[str, Any]] = {
    # InfoNCE alone: the control at equal wall-clock
    "cl-warm-lr1e-4": _arm(WARM, **INFONCE, learning_rate=1e-4),
    "cl-warm-lr1e-5": _arm(WARM, **INFONCE, learning_rate=1e-5),
    # InfoNCE warm start -> GRACE with each new reward
    "grace-warm-soft_rank-lr1e-4-k4": _arm(WARM, **GRACE, reward_variant="soft_rank", learning_rate=1e-4, rollouts=4),
    "grace-warm-soft_rank-lr1e-5-k4": _arm(WARM, **GRACE, reward_variant="soft_rank", learning_rate=1e-5, rollouts=4),
    "grace-warm-margin-lr1e-4-k4": _arm(WARM, **GRACE, reward_variant="margin", learning_rate=1e-4, rollouts=4),
    "grace-warm-margin-lr1e-5-k4": _arm(WARM, **GRACE, reward_variant="margin", learning_rate=1e-5, rollouts=4),
    "grace-warm-soft_rank-lr1e-4-k8": _arm(WARM, **GRACE, reward_variant="soft_rank", learning_rate=1e-4, rollouts=8),
    "grace-warm-margin-lr1e-4-k8": _arm(WARM, **GRACE, reward_variant="margin", learning_rate=1e-4, rollouts=8),
    # both objectives from the warm start
    "grace-warm-soft_rank-lr1e-4-k4-balanced": _arm(WARM, **GRACE, reward_variant="soft_rank", learning_rate=1e-4,
                                                    rollouts=4, encoder={"pooling": "balanced"}),
    "both-warm-soft_rank-lr1e-4-k4": _arm(WARM, **{**GRACE, "objective": "both"}, reward_variant="soft_rank",
                                          learning_rate=1e-4, rollouts=4),
    # from scratch (the untrained base, a fresh LoRA adapter)
    "cl-scratch-lr2e-4": _arm(BASE, **INFONCE, learning_rate=2e-4),
    "grace-scratch-soft_rank-lr1e-4-k4": _arm(BASE, **GRACE, reward_variant="soft_rank", learning_rate=1e-4,
                                              rollouts=4),
    "unsup-scratch-lr1e-4-k4": _arm(BASE, mode="unsupervised", objective="grace", batch_size=4, rollouts=4,
                                    learning_rate=1e-4),
}


#: the starting points scored as they are (0 minutes), with the arms' inference settings
REFERENCES: dict[str, tuple[str, dict[str, str]]] = {
    "warm": (WARM, {}),
    "warm-balanced": (WARM, {"pooling": "balanced"}),
    "base": (BASE, {}),
}


def arm_config(name: str, seed: int) -> dict[str, Any]:
    """The TrainConfig fields of an arm (as a ``--config`` file holds them)."""
    arm = ARMS[name]
    return {"model": arm["init"], "seed": seed, **arm["settings"]}


def run_name(name: str, seed: int) -> str:
    return name if seed == 0 else f"{name}-seed{seed}"


def grace_rag() -> str:
    return str(Path(sys.executable).with_name("grace-rag"))


def _metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    return sum(values) / len(values) if values else None


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Steps, minutes and the spread of rewards/advantages over a run's per-step metrics."""
    steps = [r for r in rows if "s_per_step" in r]
    first, last = steps[:10], steps[-10:]
    out: dict[str, Any] = {"steps": len(steps), "train_minutes": sum(r["s_per_step"] for r in steps) / 60}
    for key in ("reward_std_in_group", "adv_std", "clip_frac", "ratio_dev", "zero_adv_frac", "finished_frac",
                "rationale_len", "grad_norm", "s_per_step"):
        out[key] = _mean(steps, key)
    for key in ("reward_total", "reward_primary", "contrastive_loss"):
        out[f"{key}_first10"], out[f"{key}_last10"] = _mean(first, key), _mean(last, key)
    return out


def run_arm(name: str, seed: int, minutes: float, runs: Path) -> dict[str, Any]:
    """Train the arm within ``minutes`` of wall-clock (resuming a killed run), then evaluate what it published."""
    tag = run_name(name, seed)
    out_dir, work = runs / tag, runs / f"{tag}.checkpoints"
    runs.mkdir(parents=True, exist_ok=True)
    config = runs / f"{tag}.json"
    config.write_text(json.dumps(arm_config(name, seed), indent=2) + "\n")
    cfg = arm_config(name, seed)
    data = CORPUS if cfg.get("mode") == "unsupervised" else TRIPLETS
    if not (out_dir / "grace_encoder.json").is_file():
        spent = summarise(_metrics(work / "metrics.jsonl"))["train_minutes"] if work.is_dir() else 0.0
        cmd = [grace_rag(), "train", str(data), "--config", str(config), "--out", str(out_dir), "--steps", "100000",
               "--max-minutes", f"{max(0.1, minutes - spent):.2f}", "--quiet"]
        if any(work.glob("step-*")):
            cmd.append("--resume")
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    eval_file = runs / f"{tag}.eval.json"
    if not eval_file.is_file():
        cmd = [grace_rag(), "eval", str(SHARED / "scifact"), *EVAL, "-m", str(out_dir), "--out", str(eval_file)]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    result = json.loads(eval_file.read_text())["results"][0]
    record = {
        "arm": name, "seed": seed, "budget_minutes": minutes, "config": cfg,
        "ndcg@10": result["ndcg@10"], "recall@10": result["recall@10"], "mrr@10": result["mrr@10"],
        "subset": json.loads(eval_file.read_text())["subset"]["digest"],
        "train": summarise(_metrics(out_dir / "metrics.jsonl")),
        "command": f"python benchmarks/ablation.py run {name} --seed {seed} --minutes {minutes:g}",
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{tag}.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def run_reference(name: str, runs: Path) -> dict[str, Any]:
    """Score a starting point unchanged, with the arms' 32-token document rationales (and its pooling)."""
    model, extra = REFERENCES[name]
    eval_file = runs / f"ref-{name}.eval.json"
    runs.mkdir(parents=True, exist_ok=True)
    if not eval_file.is_file():
        flags = [f"--{k}={v}" for k, v in extra.items()]
        cmd = [grace_rag(), "eval", str(SHARED / "scifact"), *EVAL, "--max-rationale-tokens", "32", *flags, "-m", model,
               "--out", str(eval_file)]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    data = json.loads(eval_file.read_text())
    result = data["results"][0]
    record = {"reference": name, "model": model, "settings": {**result["settings"]}, "ndcg@10": result["ndcg@10"],
              "recall@10": result["recall@10"], "mrr@10": result["mrr@10"], "subset": data["subset"]["digest"],
              "command": f"python benchmarks/ablation.py ref {name}"}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"ref-{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


def table() -> str:
    """Every finished arm, best nDCG@10 first, with its seeds' mean."""
    records = [json.loads(p.read_text()) for p in sorted(OUT.glob("*.json")) if not p.name.startswith("ref-")]
    by_arm: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(records, key=lambda r: r["seed"]):
        by_arm.setdefault(r["arm"], []).append(r)
    lines = ["| arm | start | objective | reward | lr | K | seeds | nDCG@10 (each) | mean | steps | "
             "in-group reward std | adv std | clip frac |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = []
    for arm, rs in by_arm.items():
        cfg = rs[0]["config"]
        grace = cfg.get("objective") != "contrastive"
        mean = sum(r["ndcg@10"] for r in rs) / len(rs)
        rows.append((mean, "| " + " | ".join([
            arm, "warm" if cfg["model"] == WARM else "base", cfg.get("objective", "grace"),
            cfg.get("reward_variant", "unsup" if cfg.get("mode") == "unsupervised" else "–") if grace else "–",
            f"{cfg['learning_rate']:g}", str(cfg.get("rollouts", "–")) if grace else "–",
            str(len(rs)), " / ".join(f"{r['ndcg@10']:.3f}" for r in rs),
            f"**{mean:.3f}**", " / ".join(str(r["train"]["steps"]) for r in rs),
            _fmt(_mean([r["train"] for r in rs], "reward_std_in_group")),
            _fmt(_mean([r["train"] for r in rs], "adv_std")),
            _fmt(_mean([r["train"] for r in rs], "clip_frac")),
        ]) + " |"))
    refs = [json.loads(p.read_text()) for p in sorted(OUT.glob("ref-*.json"))]
    ref_lines = ["", "| starting point, unchanged (0 minutes) | pooling | nDCG@10 |", "|---|---|---|"]
    ref_lines += [f"| {r['reference']} ({r['model']}) | {r['settings']['pooling']} | {r['ndcg@10']:.3f} |" for r in refs]
    return "\n".join(lines + [row for _, row in sorted(rows, reverse=True)] + (ref_lines if refs else []))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    run = sub.add_parser("run")
    run.add_argument("arm", choices=sorted(ARMS))
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--minutes", type=float, default=30.0, help="wall-clock training budget")
    run.add_argument("--runs", type=Path, default=Path(os.environ.get("GRACE_ABLATION_RUNS", "/tmp/grace-ablation")))
    ref = sub.add_parser("ref")
    ref.add_argument("name", choices=sorted(REFERENCES))
    ref.add_argument("--runs", type=Path, default=Path(os.environ.get("GRACE_ABLATION_RUNS", "/tmp/grace-ablation")))
    sub.add_parser("table")
    args = ap.parse_args()
    if args.cmd == "list":
        for name in ARMS:
            print(name, json.dumps(arm_config(name, 0)))
    elif args.cmd == "run":
        print(json.dumps(run_arm(args.arm, args.seed, args.minutes, args.runs)))
    elif args.cmd == "ref":
        print(json.dumps(run_reference(args.name, args.runs)))
    else:
        print(table())


if __name__ == "__main__":
    main()
