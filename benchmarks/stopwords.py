"""Benchmark: the lexical side of an index with each English stop list, on the dev sets in ../shared/data.

    python benchmarks/stopwords.py            # a few seconds per dataset; BM25 needs no model

Scores each stop list with the index's own BM25 (``grace_rag.indexes.lexical.LexicalIndex``: bm25s,
k1 = 1.5, b = 0.75, Snowball English stemmer) over each dev corpus, as ``grace-rag query --mode
lexical`` ranks (its 100 best), with the evaluation's metrics (pytrec_eval). ``en`` is bm25s's
33-word list (what the index used before, and what ``grace-rag eval -m bm25`` uses); ``en_plus``
is NLTK's 179-word English list as bm25s ships it, which also drops question words ("does",
"what", "how", ...). Prints a Markdown table and writes it as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from grace_rag.evaluation import load_beir, retrieval_metrics
from grace_rag.indexes.lexical import LexicalIndex

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data beside the repository
DATASETS = {"squad": "squad/dev", "snli": "snli/dev", "arxiv_cs": "arxiv_cs/dev", "arxiv_astroph": "arxiv_astroph/dev",
            "scifact": "scifact"}
STOP_LISTS = ("en", "en_plus")
METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def lexical_run(dataset, stopwords: str, depth: int = 100) -> dict[str, dict[str, float]]:
    """Each dev query's ``depth`` best documents by the index's BM25 with ``stopwords``."""
    doc_ids = list(dataset.corpus)
    index = LexicalIndex.build(list(range(len(doc_ids))), [dataset.corpus[d] for d in doc_ids], 0, stopwords)
    return {qid: {doc_ids[p]: score for p, score in index.search(text, depth)} for qid, text in dataset.queries.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "stopwords.json")
    args = parser.parse_args()
    rows = []
    for name, folder in DATASETS.items():
        dataset = load_beir(args.data / folder, "dev")
        for stopwords in STOP_LISTS:
            scores = retrieval_metrics(dataset.qrels, lexical_run(dataset, stopwords))
            rows.append({"dataset": name, "stopwords": stopwords, "queries": len(dataset.queries),
                         "documents": len(dataset.corpus), **{m: round(scores[m], 4) for m in METRICS}})
    print("| dataset (dev) | queries / documents | " + " | ".join(f"{m}: {' → '.join(STOP_LISTS)}" for m in METRICS) + " |")
    print("|---|---|" + "---|" * len(METRICS))
    for name in DATASETS:
        mine = [row for row in rows if row["dataset"] == name]
        cells = [" → ".join(f"{row[m]:.4f}" for row in mine) for m in METRICS]
        print(f"| {name} | {mine[0]['queries']} / {mine[0]['documents']} | " + " | ".join(cells) + " |")
    for stopwords in STOP_LISTS:
        mean = sum(row["ndcg@10"] for row in rows if row["stopwords"] == stopwords) / len(DATASETS)
        print(f"mean nDCG@10 with {stopwords}: {mean:.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
