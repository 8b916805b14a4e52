"""Benchmark: dense, lexical (BM25) and fused retrieval on the SciFact dev subset, to choose the default fusion.

    GRACE_RAG_HOME=/work/cache-home OMP_NUM_THREADS=1 python benchmarks/fusion.py --model default

Scores, with the index's own BM25 and fusion code (``grace_rag.evaluation.hybrid``): the dense
side alone, BM25 alone, reciprocal rank fusion (k = 60) and weighted fusion of min-max-normalised
scores for alpha (weight of the dense side) = 0.0, 0.1, ..., 1.0. Dense vectors come through the
encoder's SQLite cache under ``$GRACE_RAG_HOME``, so a second run with the same model and
settings costs seconds. Prints a Markdown table and writes it as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from grace_rag.config import EncoderConfig
from grace_rag.evaluation import SubsetSpec, build_subset, load_beir, retrieval_metrics
from grace_rag.evaluation.hybrid import HybridRetriever, as_arrays
from grace_rag.evaluation.runner import RETRIEVAL_DEPTH
from grace_rag.indexes.fusion import DEFAULT_ALPHA, DEFAULT_FUSION, FusionConfig, FusionMethod, SearchMode, fuse, single_side

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"  # ../shared/data beside the repository
OUT = Path(__file__).resolve().parent / "out"
ALPHAS = [round(0.1 * i, 1) for i in range(11)]
METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def load_encoder(model: str, overrides: dict[str, Any]) -> Any:
    from grace_rag.encoder import GraceEncoder

    config = EncoderConfig(show_progress=True, **overrides)
    return GraceEncoder(config=config) if model == "default" else GraceEncoder(model=model, config=config)


def score(rows: list[list], dataset: Any, doc_ids: list[str], query_ids: list[str]) -> dict[str, float]:
    positions, values = as_arrays(rows, RETRIEVAL_DEPTH)
    run = {qid: {doc_ids[int(p)]: float(s) for p, s in zip(ps, vs)} for qid, ps, vs in zip(query_ids, positions, values)}
    return {name: round(value, 4) for name, value in retrieval_metrics(dataset.qrels, run).items() if name in METRICS}


def sweep(dense: list, lexical: list, dataset: Any, doc_ids: list[str], query_ids: list[str]) -> list[dict[str, Any]]:
    """One row per method: dense, lexical, RRF, weighted for every alpha."""
    configs = [("dense", None, None), ("lexical", None, None), ("rrf", FusionConfig(method=FusionMethod.RRF), None)]
    configs += [("weighted", FusionConfig(method=FusionMethod.WEIGHTED, alpha=a), a) for a in ALPHAS]
    rows = []
    for method, config, alpha in configs:
        if config is None:
            mode = SearchMode(method)
            fused = [single_side(d if mode is SearchMode.DENSE else lex, mode) for d, lex in zip(dense, lexical)]
        else:
            fused = [fuse(d, lex, config) for d, lex in zip(dense, lexical)]
        rows.append({"method": method, "alpha": alpha, **score(fused, dataset, doc_ids, query_ids)})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| method | alpha | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
    for row in rows:
        alpha = "" if row["alpha"] is None else f"{row['alpha']:.1f}"
        lines.append(f"| {row['method']} | {alpha} | " + " | ".join(f"{row[m]:.3f}" for m in METRICS) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=SCIFACT, help="SciFact BEIR folder")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--queries", type=int, default=150)
    ap.add_argument("--corpus", type=int, default=400)
    ap.add_argument("--distractors", type=int, default=1)
    ap.add_argument("--model", default="default", help="default, a built-in alias or a model directory")
    ap.add_argument("--rationale-tokens", type=int, default=None)
    ap.add_argument("--layer", default=None)
    ap.add_argument("--out", type=Path, default=None, help="JSON output (default benchmarks/out/fusion-<model>.json)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if "GRACE_RAG_HOME" not in os.environ:
        logging.warning("GRACE_RAG_HOME is not set: the vector cache goes to ~/.cache/grace-rag")

    dataset = build_subset(load_beir(args.data, args.split),
                           SubsetSpec(n_queries=args.queries, corpus_size=args.corpus, distractors_per_query=args.distractors))
    overrides = {k: v for k, v in {"max_rationale_tokens": args.rationale_tokens, "layer": args.layer}.items() if v is not None}
    encoder = load_encoder(args.model, overrides)
    doc_ids, query_ids = list(dataset.corpus), list(dataset.queries)
    started = time.perf_counter()
    retriever = HybridRetriever(encoder)
    retriever.index([dataset.corpus[d] for d in doc_ids])
    dense, lexical = retriever.rankings([dataset.queries[q] for q in query_ids], RETRIEVAL_DEPTH)
    seconds = time.perf_counter() - started
    rows = sweep(dense, lexical, dataset, doc_ids, query_ids)
    payload = {"model": encoder.model_name, "fingerprint": encoder.fingerprint, "settings": encoder.config.identity(),
               "subset": dataset.subset, "encode_and_search_s": round(seconds, 1),
               "current_default": {"fusion": DEFAULT_FUSION.value, "alpha": DEFAULT_ALPHA}, "rows": rows}
    out = args.out or OUT / f"fusion-{Path(args.model).name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"{encoder.model_name} ({encoder.fingerprint[:12]}), subset {dataset.subset['digest']}, "
          f"{len(query_ids)} queries / {len(doc_ids)} documents, {seconds:.0f} s\n")
    print(table(rows))


if __name__ == "__main__":
    main()
