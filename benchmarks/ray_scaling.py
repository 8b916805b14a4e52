"""Ray indexing throughput with 1 and 2 embedding workers, side by side, and whether the results are identical.

Usage (needs two idle cores; `pip install 'grace-rag[ray]'`):
    OMP_NUM_THREADS=1 python benchmarks/ray_scaling.py --docs 48 --rounds 2

It writes ``--docs`` SciFact abstracts as text files, starts one local Ray cluster
(``--cpus`` CPUs), and indexes the folder into fresh index directories with 1 and 2 workers
(one CPU and one torch thread each), alternating ``1, 2, 1, 2, ...`` for ``--rounds`` rounds
so that both see the same machine. Per run it reports the wall time and the steady-state
throughput: chunks stored per second from the first stored batch to the last (actor start-up
and model loading excluded; they are reported as ``startup_s``). With ``--check`` it also
indexes the folder in this process and checks that every run stored the same chunk ids, texts
and rationales, with vectors within 1e-5. Numbers only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from grace_rag.config import EncoderConfig
from grace_rag.indexes import EncoderInfo, GraceIndex
from grace_rag.indexes.distributed import RayConfig, RayIndexer, require_ray
from grace_rag.indexes.grace_index import STORE_FILE
from grace_rag.indexes.ingest import Indexer, IngestConfig
from grace_rag.indexes.service import load_encoder

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact" / "corpus.jsonl"


class Clock:
    """Ingestion progress that records when each embedding batch was stored."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.stored: list[tuple[float, int]] = []

    def start(self, phase: str, total: int) -> None:
        if phase == "embedding":
            self.started = time.perf_counter()

    def advance(self, phase: str, n: int = 1) -> None:
        if phase == "embedding":
            self.stored.append((time.perf_counter(), n))

    def summary(self) -> dict[str, float]:
        """Start-up (to the first stored batch) and steady-state chunks/s (first to last stored batch)."""
        first, last = self.stored[0][0], self.stored[-1][0]
        after_first = sum(n for _, n in self.stored[1:])
        return {"startup_s": round(first - self.started, 2),
                "chunks_per_s": round(after_first / (last - first), 3) if last > first else float("nan")}


def write_docs(folder: Path, n: int, corpus: Path) -> None:
    folder.mkdir(parents=True)
    with corpus.open() as handle:
        for i, line in zip(range(n), handle):
            row = json.loads(line)
            (folder / f"{row['_id']}.txt").write_text(f"{row['title']}\n\n{row['text']}\n")


def snapshot(index_dir: Path) -> tuple[list[tuple], np.ndarray]:
    with sqlite3.connect(index_dir / STORE_FILE) as db:
        rows = db.execute("SELECT id, text, rationale, vector FROM chunks ORDER BY id").fetchall()
    return [r[:3] for r in rows], np.stack([np.frombuffer(r[3], np.float32) for r in rows])


def same(a: Path, b: Path) -> bool:
    (rows_a, vec_a), (rows_b, vec_b) = snapshot(a), snapshot(b)
    return rows_a == rows_b and vec_a.shape == vec_b.shape and bool(np.abs(vec_a - vec_b).max() <= 1e-5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--docs", type=int, default=48, help="SciFact abstracts to index")
    parser.add_argument("--corpus", type=Path, default=SCIFACT)
    parser.add_argument("--max-rationale-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4, help="chunks per model call (and per stored batch)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    parser.add_argument("--check", action="store_true", help="also index in this process and compare")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/ray_scaling.json"))
    args = parser.parse_args()

    ray = require_ray()
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # one INFO line per execution otherwise
    encoder = load_encoder(args.model, EncoderConfig(cache=False, max_rationale_tokens=args.rationale_tokens), "cpu")
    ingest = IngestConfig(batch_size=args.batch_size)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        write_docs(docs, args.docs, args.corpus)
        reference = None
        if args.check:
            reference = Path(tmp) / "single"
            with GraceIndex.create(reference, EncoderInfo.of(encoder)) as index:
                started = time.perf_counter()
                report = Indexer(index, encoder, ingest).run(docs)
            print(f"single process: {report.chunks_embedded} chunks in {time.perf_counter() - started:.1f} s")
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        try:
            for round_ in range(args.rounds):
                for workers in args.workers:
                    path = Path(tmp) / f"ray-{workers}-{round_}"
                    clock = Clock()
                    started = time.perf_counter()
                    with GraceIndex.create(path, EncoderInfo.of(encoder)) as index:
                        report = RayIndexer(index, encoder, ingest, clock,
                                            cluster=RayConfig(workers=workers, cpus_per_worker=1)).run(docs)
                    row = {"round": round_, "workers": workers, "chunks": report.chunks_embedded,
                           "wall_s": round(time.perf_counter() - started, 2), **clock.summary()}
                    if reference is not None:
                        row["identical_to_single_process"] = same(path, reference)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        finally:
            ray.shutdown()
    summary = {w: statistics.median(r["chunks_per_s"] for r in rows if r["workers"] == w) for w in args.workers}
    base = summary[args.workers[0]]
    for w, rate in summary.items():
        print(f"{w} worker(s): {rate:.3f} chunks/s (median), {rate / base:.2f}x {args.workers[0]} worker(s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": rows,
                                    "median_chunks_per_s": summary}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
