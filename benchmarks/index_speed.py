"""Benchmark FAISS index types on random unit vectors: build time, memory, latency, recall@10.

Usage:
    nice -n 10 python benchmarks/index_speed.py --sizes 10000 100000 1000000
    nice -n 10 python benchmarks/index_speed.py --intrinsic-dim 32 --out benchmarks/out/index_speed_latent32.json

For each corpus size and index type it prints build time, bytes per vector (serialised
index), single-query latency p50/p99 and recall@10 against exact search, sweeping the
query-time knob (HNSW efSearch, IVF nprobe). Numbers only; nothing is asserted.
Random vectors on the sphere have no cluster structure: they are the hardest case for
approximate search, so recall here is a lower bound for real embeddings.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from grace_rag.indexes.factory import ivf_lists

DIMENSION = 576  # the default embedded model's hidden size (SmolLM2-135M)
K = 10


def unit_vectors(n: int, dim: int, seed: int, intrinsic_dim: int = 0) -> np.ndarray:
    """``n`` unit vectors (float32), generated in blocks to bound peak memory.

    ``intrinsic_dim`` 0: uniform on the sphere (no structure at all). ``intrinsic_dim`` k > 0:
    a random k-dimensional subspace plus 10% isotropic noise, closer to real text embeddings,
    whose variance concentrates in a few dozen directions.
    """
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(12345).standard_normal((intrinsic_dim, dim), dtype=np.float32) if intrinsic_dim else None
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        rows = min(100_000, n - start)
        block = rng.standard_normal((rows, dim), dtype=np.float32)
        if basis is not None:
            latent = rng.standard_normal((rows, intrinsic_dim), dtype=np.float32)
            block = latent @ basis / np.sqrt(intrinsic_dim) + 0.1 * block
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + rows] = block
    return out


def index_types(n: int) -> dict[str, tuple[str, str, list[int]]]:
    """name -> (factory string, knob name, knob values to sweep)."""
    ivf = f"IVF{ivf_lists(n) // 2},Flat"
    return {
        "flat": ("Flat", "", [0]),
        "hnsw32": ("HNSW32", "efSearch", [32, 64, 128, 256, 512, 1024]),
        "ivf": (ivf, "nprobe", [8, 16, 32, 64, 128, 256]),
    }


def bytes_per_vector(index: faiss.Index, n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.faiss")
        faiss.write_index(index, path)
        return os.path.getsize(path) / n


def latencies_ms(index: faiss.Index, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One query at a time, as an interactive search would run: (latencies in ms, ids)."""
    times, ids = [], []
    index.search(queries[:1], K)  # warm-up
    for q in queries:
        start = time.perf_counter()
        _, found = index.search(q[None, :], K)
        times.append((time.perf_counter() - start) * 1000)
        ids.append(found[0])
    return np.array(times), np.stack(ids)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / truth.size


def build(factory: str, base: np.ndarray) -> tuple[faiss.Index, float]:
    index = faiss.index_factory(base.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    start = time.perf_counter()
    if not index.is_trained:
        ivf = faiss.extract_index_ivf(index)
        sample = base[np.random.default_rng(1).choice(len(base), min(len(base), 40 * ivf.nlist), replace=False)]
        index.train(sample)
    index.add(base)
    return index, time.perf_counter() - start


def run_size(n: int, dim: int, n_queries: int, types: list[str], intrinsic_dim: int = 0) -> list[dict]:
    base = unit_vectors(n, dim, seed=n, intrinsic_dim=intrinsic_dim)
    queries = unit_vectors(n_queries, dim, seed=n + 1, intrinsic_dim=intrinsic_dim)
    exact = faiss.IndexFlatIP(dim)
    exact.add(base)
    _, truth = exact.search(queries, K)
    del exact
    rows = []
    for name, (factory, knob, values) in index_types(n).items():
        if name not in types:
            continue
        index, build_s = build(factory, base)
        per_vector = bytes_per_vector(index, n)
        for value in values:
            if knob:
                faiss.ParameterSpace().set_index_parameter(index, knob, value)
            times, found = latencies_ms(index, queries)
            row = {
                "n": n, "data": f"latent{intrinsic_dim}" if intrinsic_dim else "random", "type": name, "factory": factory, "knob": f"{knob}={value}" if knob else "-",
                "build_s": round(build_s, 2), "bytes_per_vector": round(per_vector, 1),
                "p50_ms": round(float(np.percentile(times, 50)), 3),
                "p99_ms": round(float(np.percentile(times, 99)), 3),
                "recall@10": round(recall_at_k(found, truth), 4),
            }
            rows.append(row)
            print(format_row(row), flush=True)
            if row["recall@10"] >= 0.999:
                break  # larger knob values only cost time
        del index
    return rows


def format_row(row: dict) -> str:
    return (
        f"{row['n']:>9,} {row['data']:<8} {row['type']:<7} {row['factory']:<16} {row['knob']:<14} "
        f"build {row['build_s']:>8.2f} s  {row['bytes_per_vector']:>7.1f} B/vec  "
        f"p50 {row['p50_ms']:>8.3f} ms  p99 {row['p99_ms']:>8.3f} ms  recall@10 {row['recall@10']:.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--types", nargs="+", default=["flat", "hnsw32", "ivf"])
    parser.add_argument("--dim", type=int, default=DIMENSION)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--intrinsic-dim", type=int, default=0,
                        help="0: uniform random unit vectors; k: k-dim latent structure + noise (embedding-like)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/index_speed.json"))
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    print(f"faiss {faiss.__version__}, dim {args.dim}, {args.queries} queries, {args.threads} threads")
    rows = []
    for n in args.sizes:
        rows.extend(run_size(n, args.dim, args.queries, args.types, args.intrinsic_dim))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
