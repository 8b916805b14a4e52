"""The dev suite: one model (and its settings) on the five retrieval dev sets and STS-B dev, one JSON each.

Retrieval dev sets (``../shared/data``, BEIR layout, ``dev`` qrels): SciFact, SQuAD, SNLI,
arXiv CS, arXiv astro-ph; each cut to a seeded NanoBEIR-style subset (``--queries`` queries, their
positives, BM25 distractors, random fill up to ``--corpus`` documents). STS-B dev: a seeded
sample of ``--sts-pairs`` pairs. GRACE models are scored with their rationale columns
(``grace_rag.evaluation.rationale_quality``). Results go to ``benchmarks/out/dev/<label>/<set>.json``
and an existing file is reused, so an interrupted suite resumes where it stopped.

    python benchmarks/dev_suite.py --model smollm2-135m-instruct --label base-paper
    python benchmarks/dev_suite.py --model smollm2-135m-instruct --label base-summary \\
        --set document_instruction="Summarize the following text in one sentence."
    python benchmarks/dev_suite.py --model bm25 --model minilm --model hybrid:minilm
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATA = REPO.parent / "shared" / "data"
OUT = REPO / "benchmarks" / "out" / "dev"
RETRIEVAL_SETS = {
    "scifact": DATA / "scifact",
    "squad": DATA / "squad" / "dev",
    "snli": DATA / "snli" / "dev",
    "arxiv_cs": DATA / "arxiv_cs" / "dev",
    "arxiv_astroph": DATA / "arxiv_astroph" / "dev",
}
STS = DATA / "stsbenchmark"


def parse_value(text: str) -> object:
    """``16`` -> 16, ``0.5`` -> 0.5, ``true`` -> True, anything else stays a string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def settings_from(pairs: list[str]) -> dict[str, object]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set takes FIELD=VALUE (an EncoderConfig field), got {pair!r}")
        out[key.strip()] = parse_value(value)
    return out


def run_one(model: str, label: str, name: str, settings: dict, args: argparse.Namespace) -> dict:
    from grace_rag.evaluation import EvalRequest, GraceSettings, run_eval
    from grace_rag.indexes.fusion import FusionConfig

    target = OUT / label / f"{name}.json"
    if target.is_file() and not args.force:
        return json.loads(target.read_text())
    is_sts = name == "stsb"
    request = EvalRequest(
        dataset=STS if is_sts else RETRIEVAL_SETS[name], models=[model], split="dev",
        subset=args.sts_pairs if is_sts else args.queries,
        corpus_size=None if is_sts else args.corpus, seed=args.seed,
        grace=GraceSettings(cache=False, extra=settings),
        fusion=FusionConfig.from_options(args.fusion, args.alpha) if (args.fusion or args.alpha is not None) else None,
        rationale_metrics=not args.no_rationale_metrics,
    )
    payload = run_eval(request)
    payload["label"] = label
    payload["settings_overrides"] = settings
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(payload, indent=2) + "\n")
    return payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="bm25, minilm, a GRACE model, hybrid:NAME")
    parser.add_argument("--label", help="output folder name (default: the model name); one model per label")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="EncoderConfig override for GRACE models, e.g. max_rationale_tokens=32")
    parser.add_argument("--sets", default=",".join([*RETRIEVAL_SETS, "stsb"]), help="comma-separated dev sets")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--corpus", type=int, default=300)
    parser.add_argument("--sts-pairs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fusion", choices=["rrf", "weighted"])
    parser.add_argument("--alpha", type=float)
    parser.add_argument("--no-rationale-metrics", action="store_true")
    parser.add_argument("--force", action="store_true", help="recompute even if the JSON exists")
    args = parser.parse_args()
    settings = settings_from(args.set)
    for model in args.model:
        label = args.label or model.replace("/", "_").replace(":", "-")
        if args.label and len(args.model) > 1:
            raise SystemExit("--label names one model's results; pass one --model with it")
        for name in args.sets.split(","):
            payload = run_one(model, label, name, settings, args)
            row = payload["results"][0]
            keys = ["spearman"] if name == "stsb" else ["ndcg@10", "rationale_contribution", "rationale_distinct3",
                                                        "rationale_ppl", "rationale_grounding", "rationale_cut"]
            shown = " ".join(f"{k}={row[k]:.4f}" for k in keys if isinstance(row.get(k), (int, float)))
            print(f"{label:28s} {name:14s} {shown}", flush=True)


if __name__ == "__main__":
    main()
