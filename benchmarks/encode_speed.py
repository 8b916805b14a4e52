"""Encoding speed of the embedded model on SciFact documents.

For each rationale length and batch size (one subprocess each, so peak RSS is per config):
  fused  - grace-rag's path: generation pass whose hidden states are pooled directly
  floor  - one forward pass over prompt + rationale at the same batch size (CPU compute floor)
  naive  - HF ``generate`` then a separate forward pass over prompt + rationale
  cached - the same documents again through the SQLite cache

Usage: python benchmarks/encode_speed.py [--docs 32] [--lengths 0 32 64 128] [--batches 8 16 32]
Prints a table and writes benchmarks/out/encode_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl"


def load_docs(n: int) -> list[str]:
    docs = []
    with CORPUS.open() as fh:
        for line in fh:
            row = json.loads(line)
            docs.append(f"{row['title']}\n{row['text']}")
            if len(docs) == n:
                break
    return docs


def naive_encode(encoder, prompts, length: int, batch: int):
    """HF generate, then a separate forward pass over prompt + rationale (what we avoid)."""
    import torch

    from grace_rag.representation import forward_pool, left_pad

    model, gen = encoder.backbone.model, encoder.generator
    vectors = []
    for i in range(0, len(prompts), batch):
        chunk = prompts[i : i + batch]
        ids, attn = left_pad([p.input_ids for p in chunk], gen.pad_id, model.device)
        if length:
            with torch.inference_mode():
                out = model.generate(input_ids=ids, attention_mask=attn, max_new_tokens=length, do_sample=False, pad_token_id=gen.pad_id)
            new = out[:, ids.shape[1] :].tolist()
        else:
            new = [[] for _ in chunk]
        seqs = []
        for p, toks in zip(chunk, new):
            kept = []
            for t in toks:
                kept.append(t)
                if t in gen.stop_ids:
                    break
            seqs.append(p.input_ids + kept)
        vectors.append(forward_pool(model, seqs, [p.pool_start for p in chunk], encoder.pool_spec, gen.pad_id))
    return vectors


def run_config(n_docs: int, length: int, batch: int) -> dict:
    """Measure one (length, batch) configuration in this process."""
    from grace_rag import EncoderConfig, GraceEncoder
    from grace_rag.representation import forward_pool

    docs = load_docs(n_docs)
    encoder = GraceEncoder(config=EncoderConfig(max_rationale_tokens=length, batch_size=batch, cache=True), device="cpu")
    builder = encoder.builders[next(iter(encoder.builders))]
    prompts = [builder.build(d) for d in docs]
    encoder.generator.generate(prompts[:2], encoder.settings, encoder.pool_spec)  # warm-up

    t = time.perf_counter()
    rationales = encoder.generator.generate(prompts, encoder.settings, encoder.pool_spec)
    fused = time.perf_counter() - t
    seqs = [p.input_ids + r.token_ids for p, r in zip(prompts, rationales)]
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))  # same length-sorting as generation
    t = time.perf_counter()
    for i in range(0, len(order), batch):
        idx = order[i : i + batch]
        forward_pool(encoder.backbone.model, [seqs[j] for j in idx], [prompts[j].pool_start for j in idx], encoder.pool_spec, encoder.generator.pad_id)
    floor = time.perf_counter() - t
    sorted_prompts = [prompts[j] for j in sorted(range(len(prompts)), key=lambda i: -len(prompts[i].input_ids))]
    t = time.perf_counter()
    naive_encode(encoder, sorted_prompts, length, batch)
    naive = time.perf_counter() - t

    encoder.encode_documents(docs)  # fill the cache
    t = time.perf_counter()
    encoder.encode_documents(docs)
    cached = time.perf_counter() - t
    new_tokens = sum(len(r.token_ids) for r in rationales)
    return {
        "rationale_tokens": length, "batch_size": batch, "docs": n_docs,
        "mean_prompt_tokens": sum(len(p.input_ids) for p in prompts) / n_docs,
        "mean_rationale_tokens": new_tokens / n_docs,
        "fused_docs_per_s": n_docs / fused, "fused_gen_tokens_per_s": new_tokens / fused,
        "floor_docs_per_s": n_docs / floor, "naive_docs_per_s": n_docs / naive,
        "cached_docs_per_s": n_docs / cached,
        "fused_over_floor": fused / floor, "naive_over_fused": naive / fused, "cached_speedup": fused / cached,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=32)
    parser.add_argument("--lengths", type=int, nargs="+", default=[0, 32, 64, 128])
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "encode_speed.json")
    parser.add_argument("--one", nargs=3, type=int, help=argparse.SUPPRESS)  # internal: docs length batch
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_config(*args.one)))
        return
    results = []
    home = tempfile.mkdtemp(prefix="grace-bench-")  # fresh rationale cache, shared model conversion
    env = {**os.environ, "GRACE_RAG_HOME": os.environ.get("GRACE_RAG_HOME", str(Path.home() / ".cache" / "grace-rag"))}
    print(f"{'len':>4} {'batch':>5} {'prompt':>6} {'fused d/s':>9} {'gen tok/s':>9} {'floor d/s':>9} {'naive d/s':>9} "
          f"{'fused/floor':>11} {'naive/fused':>11} {'cache x':>8} {'RSS MB':>7}")
    for length in args.lengths:
        for batch in args.batches:
            env["GRACE_BENCH_CACHE"] = home
            out = subprocess.run([sys.executable, __file__, "--one", str(args.docs), str(length), str(batch)],
                                 env=env, capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(r)
            print(f"{length:>4} {batch:>5} {r['mean_prompt_tokens']:>6.0f} {r['fused_docs_per_s']:>9.2f} {r['fused_gen_tokens_per_s']:>9.1f} "
                  f"{r['floor_docs_per_s']:>9.2f} {r['naive_docs_per_s']:>9.2f} {r['fused_over_floor']:>11.2f} "
                  f"{r['naive_over_fused']:>11.2f} {r['cached_speedup']:>8.0f} {r['peak_rss_mb']:>7.0f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"threads": os.environ.get("OMP_NUM_THREADS", "default"), "results": results}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
