"""Side-by-side table of dev-suite results (``benchmarks/out/dev/<label>/<set>.json``), as markdown.

One row per label: dense nDCG@10 on each retrieval dev set and their mean, STS-B Spearman, and the
rationale columns averaged over the retrieval sets (contribution = nDCG@10 minus nDCG@10 without
rationales; distinct 3-grams; median perplexity under the untrained base; grounding MRR; share cut).

    python benchmarks/dev_table.py sweep-paper sweep-topics sweep-summary sweep-questions
    python benchmarks/dev_table.py --sets scifact,squad,snli sweep-paper sweep-topics
    python benchmarks/dev_table.py --hybrid "hybrid w0.5 / text" candidate-b minilm

``--hybrid`` adds, under each label that has one, a row from ``benchmarks/fusion_dev.py``'s fusion.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from statistics import mean

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.dev_suite import OUT, RETRIEVAL_SETS  # noqa: E402

RATIONALE = [("contrib.", "rationale_contribution"), ("distinct3", "rationale_distinct3"),
             ("ppl", "rationale_ppl"), ("grounding", "rationale_grounding"), ("cut", "rationale_cut")]


def row_of(label: str, name: str) -> dict | None:
    path = OUT / label / f"{name}.json"
    return json.loads(path.read_text())["results"][0] if path.is_file() else None


def fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def hybrid_line(label: str, sets: list[str], variant: str, width: int) -> str | None:
    """A row from ``benchmarks/fusion_dev.py``'s fusion.json of ``label``: nDCG@10 of one variant."""
    path = OUT / label / "fusion.json"
    if not path.is_file():
        return None
    scores = json.loads(path.read_text())["sets"]
    ndcg = [scores.get(name, {}).get(variant) for name in sets]
    cells = [f"{label}, {variant}", *(fmt(v) for v in ndcg),
             fmt(mean(ndcg)) if all(v is not None for v in ndcg) else "–"]
    return "| " + " | ".join(cells + ["–"] * (width - len(cells))) + " |"


def table(labels: list[str], sets: list[str], hybrid: str | None = None) -> str:
    head = ["model", *sets, "mean", "STS-B ρ", *(h for h, _ in RATIONALE)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label in labels:
        rows = {name: row_of(label, name) for name in sets}
        ndcg = [r["ndcg@10"] if r else None for r in rows.values()]
        sts = row_of(label, "stsb")
        cells = [label, *(fmt(v) for v in ndcg),
                 fmt(mean(ndcg)) if all(v is not None for v in ndcg) else "–",
                 fmt(sts.get("spearman")) if sts else "–"]
        for _, key in RATIONALE:
            values = [r[key] for r in rows.values() if r and isinstance(r.get(key), (int, float))]
            cells.append(fmt(mean(values), 2 if key == "rationale_ppl" else 3) if values else "–")
        lines.append("| " + " | ".join(cells) + " |")
        extra = hybrid_line(label, sets, hybrid, len(head)) if hybrid else None
        if extra:
            lines.append(extra)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labels", nargs="+")
    parser.add_argument("--sets", default=",".join(RETRIEVAL_SETS))
    parser.add_argument("--hybrid", metavar="VARIANT",
                        help="also a row per label from its fusion.json, e.g. 'hybrid w0.5 / text'")
    args = parser.parse_args()
    print(table(args.labels, args.sets.split(","), args.hybrid))


if __name__ == "__main__":
    main()
