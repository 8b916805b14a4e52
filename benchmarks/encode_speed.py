"""Encoding speed on a CPU: indexing throughput and single-query latency, one variant per process.

Variants (``--variant``), each the encoder with some of its speed options:
  today      fp32, no shared system prefix, batches of 16 texts (the path before the options existed;
             this script patches its own encoder's generator to compute every prompt whole)
  prefix     + the system prompt's KV computed once and shared by every prompt
  bf16       prefix sharing + bfloat16 linear layers
``--batch`` overrides the batch size (indexing), ``--compile`` compiles the model's forward.

For the chosen variant it prints, as one JSON line: documents/s when indexing ``--docs`` SciFact
abstracts (cache off), the forward-pass floor of the same precision (one forward pass over
prompt + the same rationales, same batches: the least any GRACE encoder must spend), and the
p50/p90 latency of ``--queries`` single SciFact claims encoded one at a time.

Compare two variants as whole processes, A B A B ..., with a process timer, e.g.
    python benchmarks/encode_speed.py --variant today --mode index --docs 16
    python benchmarks/encode_speed.py --variant bf16 --mode index --docs 16
and read the in-process figures from the JSON lines. ``--quality`` adds the variant's quality
(vectors change with bf16; prefix sharing and batching do not change them) from the same
encoder: nDCG@10 on the SciFact dev subset (150 queries, 400 documents, the README's) and
Spearman on 500 STS-B dev pairs; ``--quality-queries/--quality-corpus/--quality-pairs`` shrink it.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
STSB = ROOT.parent / "shared" / "data" / "stsbenchmark"
VARIANTS = {
    "today": dict(share_prefix=False, quantization="none", max_batch_tokens=10**9),  # batches of batch_size texts
    "prefix": dict(share_prefix=True, quantization="none"),
    "bf16": dict(share_prefix=True, quantization="bf16"),
}


def read_jsonl(path: Path, n: int, key) -> list[str]:
    out = []
    with path.open() as fh:
        for line in fh:
            out.append(key(json.loads(line)))
            if len(out) == n:
                break
    return out


def build_encoder(args: argparse.Namespace):
    from grace_rag import EncoderConfig, GraceEncoder
    from grace_rag.hf_generation import HFGenerator

    variant = VARIANTS[args.variant]
    budget = variant.get("max_batch_tokens", args.max_batch_tokens)
    config = EncoderConfig(cache=False, batch_size=args.batch, quantization=variant["quantization"],
                           max_batch_tokens=budget,
                           max_rationale_tokens=args.rationale_tokens,
                           query_rationale_tokens=args.query_rationale_tokens)
    encoder = GraceEncoder(args.model, config=config, device="cpu")
    generator = encoder.generator
    if isinstance(generator, HFGenerator) and not variant["share_prefix"]:
        generator._prefix = lambda prompts: None  # this benchmark's variant: every prompt computed whole
    if args.compile:
        encoder.backbone.model.forward = torch.compile(encoder.backbone.model.forward, dynamic=True)
    return encoder


def index_speed(encoder, docs: list[str]) -> dict:
    """Documents/s through the encoder's own path (prompts -> represent), and the forward-pass floor."""
    from grace_rag.config import Role

    encoder.encode_documents(docs[:2])  # warm-up (and compilation, if any)
    settings = encoder.settings[Role.DOCUMENT]
    started = time.perf_counter()
    prompts, writer_prompts = encoder.prompts(docs, Role.DOCUMENT)  # (the writer's: writer_input_tokens)
    rationales, _ = encoder.representer.represent(prompts, settings, writer_prompts=writer_prompts)
    seconds = time.perf_counter() - started
    started = time.perf_counter()  # the same token batches as generation, longest first
    encoder.representer.pool_sequences(prompts, [r.token_ids for r in rationales])
    floor = time.perf_counter() - started
    return {"docs": len(docs), "docs_per_s": len(docs) / seconds, "floor_docs_per_s": len(docs) / floor,
            "over_floor": seconds / floor,
            "mean_rationale_tokens": sum(len(r.token_ids) for r in rationales) / len(rationales)}


def query_latency(encoder, queries: list[str]) -> dict:
    encoder.encode_queries(queries[:1])  # warm-up
    times = []
    for q in queries:
        started = time.perf_counter()
        encoder.encode_queries([q])
        times.append(time.perf_counter() - started)
    times.sort()
    return {"queries": len(queries), "query_p50_s": statistics.median(times),
            "query_p90_s": times[math.ceil(0.9 * len(times)) - 1]}  # nearest rank


def quality(encoder, queries: int, corpus: int, pairs: int) -> dict:
    """nDCG@10 on the SciFact dev subset and STS-B dev Spearman of this very encoder (its variant's settings)."""
    from grace_rag.evaluation.runner import EvalRequest, evaluate_retrieval, evaluate_sts, prepare_dataset

    scifact = prepare_dataset(EvalRequest(SCIFACT, split="dev", subset=queries, corpus_size=corpus, distractors=1))
    stsb = prepare_dataset(EvalRequest(STSB, split="dev", subset=pairs))
    retrieval, sts = evaluate_retrieval(encoder, scifact), evaluate_sts(encoder, stsb)
    return {"ndcg@10": retrieval["ndcg@10"], "recall@10": retrieval["recall@10"],
            "scifact_subset": scifact.subset["digest"], "spearman": sts["spearman"],
            "stsb_subset": stsb.subset["digest"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="bf16")
    ap.add_argument("--mode", choices=["index", "query", "both"], default="both")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--docs", type=int, default=16)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-batch-tokens", type=int, default=4096, help="token budget per batch (not for 'today')")
    ap.add_argument("--rationale-tokens", type=int, default=32)
    ap.add_argument("--query-rationale-tokens", type=int, default=None)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--quality", action="store_true", help="also score the variant on SciFact dev and STS-B dev")
    ap.add_argument("--quality-queries", type=int, default=150)
    ap.add_argument("--quality-corpus", type=int, default=400)
    ap.add_argument("--quality-pairs", type=int, default=500)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    encoder = build_encoder(args)
    result = {"variant": args.variant, "batch": args.batch, "compile": args.compile,
              "max_batch_tokens": encoder.config.max_batch_tokens,
              "rationale_tokens": args.rationale_tokens, "query_rationale_tokens": args.query_rationale_tokens,
              "threads": torch.get_num_threads()}
    if args.mode in ("index", "both"):
        docs = read_jsonl(SCIFACT / "corpus.jsonl", args.docs, lambda r: f"{r['title']} {r['text']}")
        result.update(index_speed(encoder, docs))
    if args.mode in ("query", "both"):
        result.update(query_latency(encoder, read_jsonl(SCIFACT / "queries.jsonl", args.queries, lambda r: r["text"])))
    if args.quality:
        result.update(quality(encoder, args.quality_queries, args.quality_corpus, args.quality_pairs))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
