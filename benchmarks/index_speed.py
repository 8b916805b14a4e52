"""Benchmark FAISS index types on random unit vectors: build time, memory, latency, recall@10.

Usage:
    nice -n 10 python benchmarks/index_speed.py --sizes 10000 100000 1000000
    nice -n 10 python benchmarks/index_speed.py --intrinsic-dim 32 --out benchmarks/out/index_speed_latent32.json
    # large indexes: today's one-piece HNSW vs IVF filled in parallel shards and merged (GraceIndex's
    # path from 200k vectors) vs HNSW shards built in parallel and searched together (IndexShards)
    nice -n 10 python benchmarks/index_speed.py --sizes 1000000 --intrinsic-dim 32 \
        --types hnsw32 ivf-sharded hnsw32-shards --out benchmarks/out/index_speed_large.json
    # 10M, simulated: vectors generated once into a memory-mapped file and streamed from it
    nice -n 10 python benchmarks/index_speed.py --sizes 10000000 --intrinsic-dim 32 --memmap /data/vectors \
        --types ivf-sharded --out benchmarks/out/index_speed_10m.json

For each corpus size and index type it prints build time, bytes per vector (serialised
index), single-query latency p50/p99 and recall@10 against exact search, sweeping the
query-time knob (HNSW efSearch, IVF nprobe). Numbers only; nothing is asserted.
Random vectors on the sphere have no cluster structure: they are the hardest case for
approximate search, so recall here is a lower bound for real embeddings.

``--memmap DIR`` writes the corpus once to ``DIR/base-N-D-SEED-latentK.f32`` (a raw float32
memory-mapped file, reused by later runs) and streams it block by block into the indexes and
the exact ground truth, so a 10M x 576 corpus (23 GB) needs disk, not RAM; only the index
itself must fit in memory (IVF with SQ8 codes above 2M vectors: 1 byte per dimension).
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

from grace_rag.indexes.nprobe import CALIBRATION_QUERIES, calibrate_nprobe, exact_neighbours
from grace_rag.indexes.factory import HNSW_MAX, ivf_lists, set_nprobe, training_size
from grace_rag.indexes.projected import fill_hnsw_projected
from grace_rag.indexes.sharded import default_shards, fill_sharded

DIMENSION = 576  # the default embedded model's hidden size (SmolLM2-135M)
K = 10
BLOCK = 50_000  # rows per block streamed into an index (as GraceIndex reads its chunk store)


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


def memmap_vectors(directory: Path, n: int, dim: int, seed: int, intrinsic_dim: int) -> np.ndarray:
    """``unit_vectors(...)`` stored once in a raw float32 file under ``directory`` and memory-mapped."""
    path = directory / f"base-{n}-{dim}-{seed}-latent{intrinsic_dim}.f32"
    if not path.exists() or path.stat().st_size != n * dim * 4:
        directory.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        out = np.memmap(partial, dtype=np.float32, mode="w+", shape=(n, dim))
        for start in range(0, n, 1_000_000):  # each million from its own seed: bounded memory
            rows = min(1_000_000, n - start)
            out[start:start + rows] = unit_vectors(rows, dim, seed=seed * 1000 + start // 1_000_000,
                                                   intrinsic_dim=intrinsic_dim)
        out.flush()
        del out
        partial.rename(path)
    return np.memmap(path, dtype=np.float32, mode="r", shape=(n, dim))


def blocks(base: np.ndarray):
    """(ids, vectors) blocks of BLOCK rows, read in order (from RAM or from the memory-mapped file)."""
    for start in range(0, len(base), BLOCK):
        stop = min(start + BLOCK, len(base))
        yield np.arange(start, stop, dtype=np.int64), np.ascontiguousarray(base[start:stop])


def exact_top_k(base: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Exact inner-product top-K ids for each query, block by block (the base may not fit in RAM)."""
    return exact_neighbours(blocks(base), np.full(len(queries), -1, dtype=np.int64), queries, K)  # -1: no self


def ivf_factory(n: int) -> str:
    """IVF with 4*sqrt(N) lists; codes are full vectors up to 2M, 8-bit scalar-quantised above (RAM)."""
    return f"IVF{ivf_lists(n) // 2},Flat" if n <= HNSW_MAX else f"IVF{ivf_lists(n) // 2}_HNSW32,SQ8"


EF = [32, 64, 128, 256, 512, 1024]
NPROBE = [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]  # embedding-like data needs a large share of lists
SLOW_MS = 200  # a knob value whose p50 passes this ends the sweep (larger values only cost more)


def index_types(n: int, dim: int = DIMENSION) -> dict[str, tuple[str, str, list[int], dict[str, int]]]:
    """name -> (factory string, knob name, knob values to sweep, fixed parameters).

    ``hnsw32-pca-graph`` is HNSW32 whose graph is built on a PCA projection to a quarter of the
    dimensions, then searched with the full vectors (``grace_rag.indexes.projected``). The last
    four build a cheaper graph and re-rank its candidates exactly (``RFlat`` keeps the
    full vectors; ``k_factor_rf`` = candidates per wanted hit): a graph over 8-bit codes
    (``HNSW32_SQ8``), or over a PCA projection to a quarter of the dimensions.
    """
    ivf = ivf_factory(n)
    return {
        "flat": ("Flat", "", [0], {}),
        "hnsw32": ("HNSW32", "efSearch", EF, {}),
        "ivf": (ivf, "nprobe", NPROBE, {}),
        "ivf-sharded": (ivf, "nprobe", NPROBE, {}),
        "hnsw32-shards": ("HNSW32", "efSearch", EF, {}),
        "hnsw32-pca-graph": ("HNSW32", "efSearch", EF, {}),
        "hnsw16": ("HNSW16", "efSearch", EF, {}),
        "hnsw32-sq8": ("HNSW32_SQ8", "efSearch", EF, {}),
        "hnsw32-sq8-refine": ("HNSW32_SQ8,RFlat", "efSearch", EF, {"k_factor_rf": 2}),
        "pca-hnsw32-refine": (f"PCA{dim // 4},HNSW32,RFlat", "efSearch", EF, {"k_factor_rf": 4}),
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


def build(name: str, factory: str, base: np.ndarray, shards: int) -> tuple[faiss.Index, float]:
    """The index of type ``name`` over ``base`` and its build time in seconds (training included)."""
    index = faiss.index_factory(base.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    start = time.perf_counter()
    if name == "hnsw32-shards":
        return hnsw_shards(factory, base, shards), time.perf_counter() - start
    if name == "hnsw32-pca-graph":  # GraceIndex's path from PROJECTED_MIN vectors
        return fill_hnsw_projected(index, blocks(base)), time.perf_counter() - start
    if not index.is_trained:
        size = training_size(index)  # as GraceIndex.rebuild trains: 64 vectors per list
        rows = np.sort(np.random.default_rng(1).choice(len(base), min(len(base), size), replace=False))
        index.train(np.ascontiguousarray(base[rows]))
    if name == "ivf-sharded":  # what GraceIndex.rebuild does from SHARDED_MIN vectors
        return fill_sharded(index, blocks(base), shards), time.perf_counter() - start
    for ids, vectors in blocks(base):
        index.add(vectors)
    return index, time.perf_counter() - start


def hnsw_shards(factory: str, base: np.ndarray, shards: int) -> faiss.Index:
    """``shards`` HNSW graphs over consecutive parts of ``base``, built in parallel threads, searched as one."""
    from concurrent.futures import ThreadPoolExecutor

    threads = max(1, faiss.omp_get_max_threads() // shards)
    bounds = np.linspace(0, len(base), shards + 1).astype(int)

    def one(part: int) -> faiss.Index:
        faiss.omp_set_num_threads(threads)
        index = faiss.index_factory(base.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
        for start in range(bounds[part], bounds[part + 1], BLOCK):
            index.add(np.ascontiguousarray(base[start:min(start + BLOCK, bounds[part + 1])]))
        return index

    with ThreadPoolExecutor(shards) as pool:
        parts = list(pool.map(one, range(shards)))
    joined = faiss.IndexShards(base.shape[1], True, True)  # threaded search, ids continue shard after shard
    for part in parts:
        joined.add_shard(part)
        part.this.disown()  # the joined index owns (and frees) its shards
    joined.own_indices = True
    return joined


def real_vectors(path: Path, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """(base, queries) from a saved (N, D) array of real embeddings: the last ``n_queries`` rows are the queries."""
    vectors = np.load(path).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors[:-n_queries]), np.ascontiguousarray(vectors[-n_queries:])


def run_size(n: int, dim: int, n_queries: int, types: list[str], intrinsic_dim: int = 0,
             memmap: Path | None = None, shards: int = 2, vectors: Path | None = None) -> list[dict]:
    if vectors is not None:
        base, queries = real_vectors(vectors, n_queries)
        n, dim = base.shape
    elif memmap is not None:
        base = memmap_vectors(memmap, n, dim, seed=n, intrinsic_dim=intrinsic_dim)
    else:
        base = unit_vectors(n, dim, seed=n, intrinsic_dim=intrinsic_dim)
    if vectors is None:
        queries = unit_vectors(n_queries, dim, seed=n + 1, intrinsic_dim=intrinsic_dim)
    truth = exact_top_k(base, queries)
    rows = []
    for name, (factory, knob, values, fixed) in index_types(n, dim).items():
        if name not in types:
            continue
        index, build_s = build(name, factory, base, shards)
        for param, value in fixed.items():
            faiss.ParameterSpace().set_index_parameter(index, param, value)
        parts = [index.at(i) for i in range(index.count())] if isinstance(index, faiss.IndexShards) else [index]
        per_vector = sum(bytes_per_vector(part, n) for part in parts)
        auto = {}
        if knob == "nprobe":  # what GraceIndex's nprobe "auto" would pick, measured on stored vectors
            start = time.perf_counter()
            picks = np.arange(len(base) // CALIBRATION_QUERIES // 2, len(base), len(base) // CALIBRATION_QUERIES)
            picks = picks[:CALIBRATION_QUERIES]
            nprobe, stored_recall = calibrate_nprobe(index, lambda: blocks(base), picks.astype(np.int64),
                                                     np.ascontiguousarray(base[picks]))
            auto = {"auto_nprobe": nprobe, "auto_recall_stored": round(stored_recall, 4),
                    "calibration_s": round(time.perf_counter() - start, 1)}
            print(f"nprobe auto: {nprobe} (recall@10 {stored_recall:.3f} on {len(picks)} stored vectors, "
                  f"{auto['calibration_s']} s)", flush=True)
            values = sorted(set(values) | {nprobe})
        for value in values:
            if knob == "nprobe":
                set_nprobe(index, value)  # as GraceIndex searches: an HNSW coarse quantizer is told to find them all
            elif knob:
                faiss.ParameterSpace().set_index_parameter(index, knob, value)
            times, found = latencies_ms(index, queries)
            row = {
                "n": n, "data": vectors.stem if vectors is not None else f"latent{intrinsic_dim}" if intrinsic_dim
                else "random", "type": name,
                "factory": factory, "knob": ",".join([f"{knob}={value}"] * bool(knob) + [f"{p}={v}" for p, v in fixed.items()]) or "-", "memmap": memmap is not None,
                "shards": shards if name.endswith(("-sharded", "-shards")) else 1,
                "build_s": round(build_s, 2), "bytes_per_vector": round(per_vector, 1),
                "p50_ms": round(float(np.percentile(times, 50)), 3),
                "p99_ms": round(float(np.percentile(times, 99)), 3),
                "recall@10": round(recall_at_k(found, truth), 4), **auto,
            }
            rows.append(row)
            print(format_row(row), flush=True)
            if (row["recall@10"] >= 0.999 or row["p50_ms"] > SLOW_MS) and value >= auto.get("auto_nprobe", 0):
                break  # larger knob values only cost time
        del index
    return rows


def format_row(row: dict) -> str:
    return (
        f"{row['n']:>10,} {row['data']:<8} {row['type']:<13} {row['factory']:<22} {row['knob']:<14} "
        f"build {row['build_s']:>8.2f} s  {row['bytes_per_vector']:>7.1f} B/vec  "
        f"p50 {row['p50_ms']:>8.3f} ms  p99 {row['p99_ms']:>8.3f} ms  recall@10 {row['recall@10']:.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--types", nargs="+", default=["flat", "hnsw32", "ivf"],
                        choices=sorted(index_types(1)))
    parser.add_argument("--dim", type=int, default=DIMENSION)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--intrinsic-dim", type=int, default=0,
                        help="0: uniform random unit vectors; k: k-dim latent structure + noise (embedding-like)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--shards", type=int, default=0, help="shards of ivf-sharded / hnsw32-shards (0: one per thread, at least 2)")
    parser.add_argument("--memmap", type=Path, default=None,
                        help="folder for the corpus as a memory-mapped float32 file, streamed into the indexes")
    parser.add_argument("--vectors", type=Path, default=None,
                        help="a .npy file of real embeddings (N, D) instead of generated ones; its last --queries "
                             "rows are the queries (--sizes and --dim are then ignored)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/index_speed.json"))
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    print(f"faiss {faiss.__version__}, dim {args.dim}, {args.queries} queries, {args.threads} threads")
    rows = []
    for n in args.sizes if args.vectors is None else [0]:
        rows.extend(run_size(n, args.dim, args.queries, args.types, args.intrinsic_dim, args.memmap,
                             args.shards or default_shards(args.threads), args.vectors))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
