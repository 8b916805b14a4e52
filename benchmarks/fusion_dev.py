"""Hybrid search variants on every dev set, from the vectors the dev suite saved (nothing is encoded).

For a label written by ``benchmarks/dev_suite.py`` (``benchmarks/out/dev/<label>/<set>.npz``),
scores on each retrieval dev set, with the index's own BM25 (``LexicalIndex``) and fusion code:

- dense with and without the model's rationales;
- BM25 over the text, and over text + the model's rationale (the lexical-side option);
- hybrid: RRF and weighted fusion at several alphas, each with either lexical side.

Prints a per-set table with the mean and the worst set, and writes
``benchmarks/out/dev/<label>/fusion.json``. The fusion default is chosen on the mean over the
sets, with the worst set as a check, never on one set.

    python benchmarks/fusion_dev.py --label candidate-b
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.dev_suite import OUT, RETRIEVAL_SETS  # noqa: E402

ALPHAS = (0.3, 0.4, 0.5, 0.6, 0.7)


def dense_rankings(queries: np.ndarray, docs: np.ndarray, depth: int) -> list[list[tuple[int, float]]]:
    scores = queries @ docs.T  # (Q, N)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :depth]
    return [[(int(j), float(scores[i, j])) for j in row] for i, row in enumerate(order)]


def ndcg(qrels: dict, query_ids: list[str], doc_ids: list[str], rankings: list[list[tuple[int, float]]]) -> float:
    from grace_rag.evaluation.metrics import retrieval_metrics

    run = {qid: {doc_ids[int(j)]: float(s) for j, s in ranking} for qid, ranking in zip(query_ids, rankings)}
    return float(retrieval_metrics({q: qrels[q] for q in query_ids}, run)["ndcg@10"])


def variants(name: str, folder: Path) -> dict[str, float]:
    """nDCG@10 of every variant on dev set ``name``."""
    from grace_rag.evaluation.datasets import load_beir
    from grace_rag.indexes.fusion import FusionConfig, fuse
    from grace_rag.indexes.lexical import LexicalIndex

    arrays = np.load(folder / f"{name}.npz")
    meta = json.loads((folder / f"{name}.rationales.json").read_text())
    dataset = load_beir(RETRIEVAL_SETS[name], "dev")
    doc_ids, query_ids, rationales = meta["doc_ids"], meta["query_ids"], meta["rationales"]
    texts = [dataset.corpus[d] for d in doc_ids]
    queries = [dataset.queries[q] for q in query_ids]
    depth = max(100, FusionConfig().candidates)
    dense = dense_rankings(arrays["queries0"], arrays["docs0"], depth)
    plain = dense_rankings(arrays["queries1"], arrays["docs1"], depth) if "docs1" in arrays else None
    fids = list(range(len(texts)))
    lexical = {"text": LexicalIndex.build(fids, texts, revision=0),
               "text+rationale": LexicalIndex.build(fids, [f"{t}\n{r}" for t, r in zip(texts, rationales)], 0)}
    lex_rank = {side: [index.search(q, depth) for q in queries] for side, index in lexical.items()}
    out = {"dense": ndcg(dataset.qrels, query_ids, doc_ids, dense)}
    if plain is not None:
        out["dense (no rationale)"] = ndcg(dataset.qrels, query_ids, doc_ids, plain)
    for side, ranks in lex_rank.items():
        out[f"bm25 {side}"] = ndcg(dataset.qrels, query_ids, doc_ids, ranks)
        configs = [("rrf", FusionConfig(method="rrf"))] + [(f"w{a}", FusionConfig(method="weighted", alpha=a))
                                                            for a in ALPHAS]
        for label, config in configs:
            fused = [[(int(f.key), f.score) for f in fuse(d, lx, config)] for d, lx in zip(dense, ranks)]
            out[f"hybrid {label} / {side}"] = ndcg(dataset.qrels, query_ids, doc_ids, fused)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", required=True)
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    args = parser.parse_args()
    folder = OUT / args.label
    sets = [name for name in RETRIEVAL_SETS if (folder / f"{name}.npz").is_file()]
    if not sets:
        raise SystemExit(f"{folder}: no saved vectors; run benchmarks/dev_suite.py --label {args.label} first")
    table = {name: variants(name, folder) for name in sets}
    rows = list(next(iter(table.values())))
    summary = {row: {"mean": float(np.mean([table[s][row] for s in sets])),
                     "worst": float(min(table[s][row] for s in sets))} for row in rows}
    if args.markdown:
        print("| variant | " + " | ".join(sets) + " | mean | worst |\n|" + "---|" * (len(sets) + 3))
        for row in rows:
            print(f"| {row} | " + " | ".join(f"{table[s][row]:.3f}" for s in sets)
                  + f" | {summary[row]['mean']:.3f} | {summary[row]['worst']:.3f} |")
    else:
        print(f"{'variant':36s} " + " ".join(f"{s[:9]:>9s}" for s in sets) + f" {'mean':>7s} {'worst':>7s}")
        for row in rows:
            print(f"{row:36s} " + " ".join(f"{table[s][row]:9.4f}" for s in sets)
                  + f" {summary[row]['mean']:7.4f} {summary[row]['worst']:7.4f}")
    (folder / "fusion.json").write_text(json.dumps({"sets": table, "summary": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
