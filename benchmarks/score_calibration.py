"""How far apart are the cosines of related and unrelated texts? Data for a score users can threshold.

Pairs (seeded samples of shared data):
  STS-B dev     related = gold score >= --high, unrelated = gold score <= --low (both sides encoded as documents)
  SciFact dev   related = (query, a judged positive abstract), unrelated = (query, a random abstract)

For each set it prints the cosine percentiles per class, ROC AUC, the cut-off that maximises
balanced accuracy, precision/recall at usual cut-offs, and a logistic fit
p(related) = 1 / (1 + exp(-(a * cosine + b))) checked on held-out pairs (fitted on even pairs,
scored on odd ones). Writes benchmarks/out/score_calibration.json.

Usage (encodings land in the rationale cache, so re-runs are free):
  OMP_NUM_THREADS=1 GRACE_RAG_HOME=/work/cache-home python benchmarks/score_calibration.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CUTS = (0.5, 0.7, 0.8, 0.82, 0.85, 0.9, 0.95)


def sts_pairs(path: Path, n: int, high: float, low: float, seed: int) -> tuple[list[tuple[str, str]], np.ndarray]:
    from grace_rag.evaluation.datasets import load_sts

    data = load_sts(path)
    rows = list(zip(data.pairs, data.scores))
    rng = random.Random(seed)
    related = rng.sample([p for p, s in rows if s >= high], n)
    unrelated = rng.sample([p for p, s in rows if s <= low], n)
    return related + unrelated, np.array([1] * n + [0] * n)


def scifact_pairs(folder: Path, n: int, seed: int) -> tuple[list[tuple[str, str]], np.ndarray]:
    from grace_rag.evaluation.datasets import load_beir

    data = load_beir(folder, "dev")
    rng = random.Random(seed)
    qids = rng.sample(sorted(data.queries), n)
    doc_ids = sorted(data.corpus)
    related, unrelated = [], []
    for qid in qids:
        positives = sorted(d for d, s in data.qrels[qid].items() if s > 0)
        related.append((data.queries[qid], data.corpus[rng.choice(positives)]))
        other = rng.choice(doc_ids)
        while other in data.qrels[qid]:
            other = rng.choice(doc_ids)
        unrelated.append((data.queries[qid], data.corpus[other]))
    return related + unrelated, np.array([1] * n + [0] * n)


def cosines(encoder, pairs: list[tuple[str, str]], left_role: str) -> np.ndarray:
    left = encoder.encode([a for a, _ in pairs], role=left_role).vectors
    right = encoder.encode([b for _, b in pairs], role="document").vectors
    return np.einsum("ij,ij->i", left, right)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney probability that a related pair outscores an unrelated one."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def best_cut(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(cut-off, balanced accuracy) maximising balanced accuracy over the observed scores."""
    best = (0.0, 0.0)
    for cut in np.unique(scores):
        keep = scores >= cut
        balanced = 0.5 * (keep[labels == 1].mean() + (~keep[labels == 0]).mean())
        if balanced > best[1]:
            best = (float(cut), float(balanced))
    return best


def at_cut(scores: np.ndarray, labels: np.ndarray, cut: float) -> dict[str, float]:
    keep = scores >= cut
    kept = int(keep.sum())
    return {"cut": cut, "kept": kept, "precision": float(labels[keep].mean()) if kept else float("nan"),
            "recall": float(keep[labels == 1].mean()), "unrelated_kept": float(keep[labels == 0].mean())}


def fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = 50) -> tuple[float, float]:
    """(a, b) of p = sigmoid(a x + b) by Newton's method on the log-likelihood (tiny ridge for separable data)."""
    w = np.zeros(2)
    design = np.stack([x, np.ones_like(x)], axis=1)  # (n, 2)
    for _ in range(steps):
        p = 1 / (1 + np.exp(-design @ w))
        grad = design.T @ (y - p) - 1e-3 * w
        hess = (design * (p * (1 - p))[:, None]).T @ design + 1e-3 * np.eye(2)
        w += np.linalg.solve(hess, grad)
    return float(w[0]), float(w[1])


def calibration_check(scores: np.ndarray, labels: np.ndarray, a: float, b: float) -> dict[str, float]:
    """Log-loss and mean predicted vs observed rate of related pairs (a calibrated model matches them)."""
    p = np.clip(1 / (1 + np.exp(-(a * scores + b))), 1e-6, 1 - 1e-6)
    logloss = float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))
    return {"log_loss": logloss, "mean_p": float(p.mean()), "related_rate": float(labels.mean()),
            "accuracy_at_p_0.5": float(((p >= 0.5) == (labels == 1)).mean())}


def describe(name: str, scores: np.ndarray, labels: np.ndarray) -> dict:
    pct = (5, 25, 50, 75, 95)
    classes = {kind: {f"p{q}": float(np.percentile(scores[labels == v], q)) for q in pct}
               | {"mean": float(scores[labels == v].mean()), "n": int((labels == v).sum())}
               for kind, v in (("related", 1), ("unrelated", 0))}
    cut, balanced = best_cut(scores, labels)
    train, held = np.arange(len(scores)) % 2 == 0, np.arange(len(scores)) % 2 == 1
    a, b = fit_logistic(scores[train], labels[train].astype(float))
    a_all, b_all = fit_logistic(scores, labels.astype(float))
    return {"logistic_all": {"a": a_all, "b": b_all, "cutoff_p50": -b_all / a_all},"name": name, "classes": classes, "auc": auc(scores, labels), "best_cut": cut,
            "best_balanced_accuracy": balanced, "cuts": [at_cut(scores, labels, c) for c in CUTS],
            "logistic": {"a": a, "b": b, "held_out": calibration_check(scores[held], labels[held], a, b)}}


def print_report(result: dict) -> None:
    print(f"\n== {result['name']}: AUC {result['auc']:.3f}, best cut-off {result['best_cut']:.3f} "
          f"(balanced accuracy {result['best_balanced_accuracy']:.3f})")
    for kind, stats in result["classes"].items():
        print(f"  {kind:<9} n={stats['n']:<4} mean {stats['mean']:.3f}  "
              + "  ".join(f"{k} {v:.3f}" for k, v in stats.items() if k.startswith("p")))
    for row in result["cuts"]:
        print(f"  cosine >= {row['cut']:.2f}: keeps {row['kept']:>3}, precision {row['precision']:.2f}, "
              f"recall {row['recall']:.2f}, unrelated kept {row['unrelated_kept']:.2f}")
    fit = result["logistic"]
    print(f"  logistic a={fit['a']:.2f} b={fit['b']:.2f}; held-out " + ", ".join(f"{k} {v:.3f}" for k, v in fit["held_out"].items()))
    every = result["logistic_all"]
    print(f"  logistic on every pair: a={every['a']:.2f} b={every['b']:.2f} (p = 0.5 at cosine {every['cutoff_p50']:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--sts-pairs", type=int, default=100, help="STS pairs per class")
    parser.add_argument("--scifact-queries", type=int, default=80)
    parser.add_argument("--high", type=float, default=4.0)
    parser.add_argument("--low", type=float, default=1.0)
    parser.add_argument("--layer", default=None, help="override the encoder layer (e.g. penultimate)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "score_calibration.json")
    args = parser.parse_args()

    from grace_rag import EncoderConfig, GraceEncoder

    config = EncoderConfig(show_progress=True, **({"layer": args.layer} if args.layer else {}))
    encoder = GraceEncoder(args.model, config=config, device="cpu")
    start = time.perf_counter()
    sts, sts_labels = sts_pairs(args.data / "stsbenchmark" / "sts-dev.tsv", args.sts_pairs, args.high, args.low, args.seed)
    sci, sci_labels = scifact_pairs(args.data / "scifact", args.scifact_queries, args.seed)
    sets = {"sts-b dev": (cosines(encoder, sts, "document"), sts_labels),
            "scifact dev": (cosines(encoder, sci, "query"), sci_labels)}
    pooled = (np.concatenate([s for s, _ in sets.values()]), np.concatenate([lab for _, lab in sets.values()]))
    results = [describe(name, *data) for name, data in [*sets.items(), ("pooled", pooled)]]
    for result in results:
        print_report(result)
    meta = {"model": encoder.model_name, "fingerprint": encoder.fingerprint, "settings": encoder.config.identity(),
            "args": {k: str(v) for k, v in vars(args).items()}, "seconds": round(time.perf_counter() - start, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"\nwrote {args.out} ({meta['seconds']} s)")


if __name__ == "__main__":
    main()
