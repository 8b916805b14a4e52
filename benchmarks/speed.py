"""Speed of one configuration, in a fresh process: docs/s, warm query latency, peak memory.

Run as ``python -m benchmarks.speed LABEL --docs N --queries M``; prints one JSON object.
Rationale caching is off, so every document and query is really encoded.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np

from benchmarks.configs import BY_LABEL
from grace_rag.evaluation.adapters import as_retriever, load_model
from grace_rag.evaluation.datasets import load_beir


def measure(label: str, data_dir: str, n_docs: int, n_queries: int) -> dict:
    config = BY_LABEL[label]
    settings = config.settings
    if config.group == "grace":
        settings = settings.with_changes(cache=False)
    dataset = load_beir(data_dir, "dev")
    docs = list(dataset.corpus.values())[:n_docs]
    queries = list(dataset.queries.values())[:n_queries + 1]
    retriever = as_retriever(load_model(config.model, settings).model)
    started = time.perf_counter()
    retriever.index(docs)
    docs_per_s = len(docs) / (time.perf_counter() - started)
    retriever.search(queries[:1], 10)  # warm-up
    latencies = []
    for query in queries[1:]:
        started = time.perf_counter()
        retriever.search([query], 10)
        latencies.append((time.perf_counter() - started) * 1000)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"model": label, "docs_per_s": docs_per_s, "speed_docs": len(docs),
            "query_ms_p50": float(np.percentile(latencies, 50)),
            "query_ms_p95": float(np.percentile(latencies, 95)),
            "speed_queries": len(latencies), "peak_rss_mb": peak_kib / 1024}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("label", choices=sorted(BY_LABEL))
    parser.add_argument("--data", default="/work/shared/data/scifact")
    parser.add_argument("--docs", type=int, default=20)
    parser.add_argument("--queries", type=int, default=10)
    args = parser.parse_args(argv)
    result = measure(args.label, args.data, args.docs, args.queries)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
