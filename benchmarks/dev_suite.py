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


class Recorder:
    """Keeps what each dense retrieval of a run computed (document and query vectors, rationales), by
    wrapping DenseRetriever inside this benchmark: fusion and lexical variants are then scored offline
    (benchmarks/fusion_dev.py) without encoding anything again."""

    def __init__(self) -> None:
        self.runs: list[dict] = []

    def __enter__(self) -> "Recorder":
        from grace_rag.evaluation import adapters

        self._cls = adapters.DenseRetriever
        real_index, real_search, runs = self._cls.index, self._cls.search, self.runs

        def index(retriever, texts):
            real_index(retriever, texts)
            runs.append({"docs": retriever._vectors, "rationales": retriever.rationales})
            retriever._record = runs[-1]

        def search(retriever, texts, k):
            queries = retriever.embedder.encode_queries(list(texts))
            retriever._record["queries"] = queries
            return adapters.top_k(queries @ retriever._vectors.T, k)

        self._real = (real_index, real_search)
        self._cls.index, self._cls.search = index, search
        return self

    def __exit__(self, *exc: object) -> None:
        self._cls.index, self._cls.search = self._real

    def save(self, path: Path, dataset: object) -> None:
        import numpy as np

        if not self.runs:
            return
        arrays = {}
        for i, run in enumerate(self.runs):  # 0: with rationales, 1: the same encoder without (GRACE rows)
            arrays[f"docs{i}"], arrays[f"queries{i}"] = run["docs"], run["queries"]
        np.savez_compressed(path.with_suffix(".npz"), **arrays)
        meta = {"doc_ids": list(dataset.corpus), "query_ids": list(dataset.queries),
                "rationales": self.runs[0]["rationales"]}
        path.with_suffix(".rationales.json").write_text(json.dumps(meta) + "\n")


def run_one(model: str, label: str, name: str, settings: dict, args: argparse.Namespace) -> dict:
    from grace_rag.config import EncoderConfig
    from grace_rag.evaluation import EvalRequest, run_eval
    from grace_rag.evaluation.runner import prepare_dataset
    from grace_rag.indexes.fusion import FusionConfig

    target = OUT / label / f"{name}.json"
    if target.is_file() and not args.force:
        return json.loads(target.read_text())
    is_sts = name == "stsb"
    request = EvalRequest(
        dataset=STS if is_sts else RETRIEVAL_SETS[name], models=[model], split="dev",
        subset=args.sts_pairs if is_sts else args.queries,
        corpus_size=None if is_sts else args.corpus, seed=args.seed,
        grace=EncoderConfig(cache=False, **settings),
        fusion=FusionConfig.from_options(args.fusion, args.alpha) if (args.fusion or args.alpha is not None) else None,
        rationale_metrics=not args.no_rationale_metrics,
    )
    with Recorder() as recorder:
        payload = run_eval(request)
    payload["label"] = label
    payload["settings_overrides"] = settings
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(payload, indent=2) + "\n")
    if not is_sts and recorder.runs and recorder.runs[0]["rationales"] is not None:
        recorder.save(target, prepare_dataset(request))
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
