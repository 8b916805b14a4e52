"""Warm query latency through `grace-rag serve` against one `grace-rag query` process per question.

Both arms search the same index (examples/docs, the default model and settings) with the same
distinct questions, each encoded for the first time in its arm (each arm gets its own rationale
cache; the converted model is shared), one question at a time:
  cli      wall time of `grace-rag query Q --index DIR --json` (process start, imports, model load, query)
  serve    wall time of POST /search on a running `grace-rag serve --index DIR` (after one warm-up question)
  cached   the same questions asked of the server again (answered from its rationale cache)

Both arms run with OMP_NUM_THREADS=1. Usage: GRACE_RAG_HOME=/work/cache-home python benchmarks/serve_latency.py [--queries 20]
Prints p50/p99 per arm and writes benchmarks/out/serve_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "server"))
QUESTIONS = [
    "How do plants turn sunlight into food?", "What makes a bridge stay up?", "Why can light not escape a black hole?",
    "How do bees tell each other where flowers are?", "What starts a volcanic eruption?", "How does money grow over time?",
    "What do corals eat?", "Why did the French Revolution begin?", "How long does marathon training take?",
    "What is a Python decorator for?", "What makes sourdough rise?", "How does TCP recover lost packets?",
    "How do vaccines train the immune system?", "Which chess openings start with e4?", "What is an event horizon?",
    "How does a suspension bridge carry its deck?", "What gives sourdough its sour taste?", "What is the Tennis Court Oath?",
    "How often should I do a long run?", "What is chlorophyll?", "What does the three-way handshake do?",
    "Why are coral reefs bleaching?", "How does a queen bee live?", "What is a pyroclastic flow?",
]


def fresh_home(base: Path, name: str) -> Path:
    """A GRACE_RAG_HOME with no rationale cache that shares ``base``'s converted models."""
    home = Path(tempfile.mkdtemp(prefix=f"grace-{name}-"))
    (home / "models").symlink_to((base / "models").resolve())
    return home


def run(cmd: list[str], home: Path) -> float:
    """Wall seconds of one process (one thread, as the server gets: see serve_support)."""
    env = {**os.environ, "GRACE_RAG_HOME": str(home), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def percentiles(seconds: list[float]) -> dict[str, float]:
    values = np.array(seconds)
    return {"n": len(values), "p50_s": float(np.percentile(values, 50)), "p99_s": float(np.percentile(values, 99)),
            "mean_s": float(values.mean())}


def serve_arm(index: Path, home: Path, questions: list[str]) -> tuple[list[float], list[float]]:
    import httpx
    from serve_support import ServerProcess

    server = ServerProcess(["--index", str(index), "--log-level", "warning"], home)
    try:
        httpx.post(f"{server.url}/search", json={"query": "A warm-up question about nothing in particular."}, timeout=600)
        first, again = [], []
        for seconds in (first, again):
            for question in questions:
                start = time.perf_counter()
                reply = httpx.post(f"{server.url}/search", json={"query": question, "k": 3}, timeout=600)
                seconds.append(time.perf_counter() - start)
                reply.raise_for_status()
        return first, again
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--docs", type=Path, default=ROOT / "examples" / "docs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "serve_latency.json")
    args = parser.parse_args()
    base = Path(os.environ.get("GRACE_RAG_HOME", Path.home() / ".cache" / "grace-rag"))
    grace = str(Path(sys.executable).with_name("grace-rag"))
    questions = QUESTIONS[: args.queries]
    work = Path(tempfile.mkdtemp(prefix="grace-serve-bench-"))
    index = work / "index"
    print(f"indexing {args.docs} ({run([grace, 'index', str(args.docs), '--index', str(index), '-q'], base):.0f} s)")

    cli_home, serve_home = fresh_home(base, "cli"), fresh_home(base, "serve")
    cli = [run([grace, "query", q, "--index", str(index), "-k", "3", "--json"], cli_home) for q in questions]
    serve, cached = serve_arm(index, serve_home, questions)
    result = {"cli": percentiles(cli), "serve": percentiles(serve), "serve_cached": percentiles(cached),
              "questions": len(questions), "docs": str(args.docs), "threads_per_process": 1}
    result["speedup_p50"] = result["cli"]["p50_s"] / result["serve"]["p50_s"]
    result["speedup_p99"] = result["cli"]["p99_s"] / result["serve"]["p99_s"]
    for arm in ("cli", "serve", "serve_cached"):
        row = result[arm]
        print(f"{arm:<13} n={row['n']:<3} p50 {row['p50_s'] * 1000:9.1f} ms   p99 {row['p99_s'] * 1000:9.1f} ms")
    print(f"serve is {result['speedup_p50']:.1f}x faster at p50, {result['speedup_p99']:.1f}x at p99")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    for home in (cli_home, serve_home):
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
