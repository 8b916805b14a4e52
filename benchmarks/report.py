"""Regenerate benchmarks/out/report/REPORT.md (quality and speed tables, the quality-vs-latency plot) for docs/results.md.

    nice -n 10 python -m benchmarks.report                       # the full report (hours)
    nice -n 10 python -m benchmarks.report --queries 5 --corpus 40 --sts-pairs 20 --speed-docs 4

Results are cached per configuration and subset in ``benchmarks/results/``; a rerun only
computes what is missing (delete a file to recompute it). Sizes are parameters.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.configs import CONFIGS, BenchConfig, slug
from benchmarks.plot import quality_vs_latency
from benchmarks.quality import run_quality
from benchmarks.render import render_readme
from grace_rag.evaluation.datasets import load_beir, load_sts
from grace_rag.evaluation.subset import SubsetSpec, build_subset, subset_sts

logger = logging.getLogger("benchmarks.report")
HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--queries", type=int, default=50, help="SciFact dev queries")
    parser.add_argument("--corpus", type=int, default=500, help="SciFact subset documents")
    parser.add_argument("--sts-pairs", type=int, default=300, help="STS-B dev pairs")
    parser.add_argument("--speed-docs", type=int, default=20, help="documents timed per config")
    parser.add_argument("--speed-queries", type=int, default=10, help="queries timed per config")
    parser.add_argument("--only", action="append", help="run only these labels (repeatable)")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "report")
    return parser.parse_args(argv)


def run_speed(config: BenchConfig, args: argparse.Namespace) -> dict[str, Any]:
    """Speed of one config measured in a child process (so peak memory is its own), cached."""
    path = args.results / f"speed-d{args.speed_docs}-q{args.speed_queries}-{slug(config.label)}.json"
    if path.is_file():
        return json.loads(path.read_text())
    command = [sys.executable, "-m", "benchmarks.speed", config.label, "--data",
               str(args.data / "scifact"), "--docs", str(args.speed_docs),
               "--queries", str(args.speed_queries)]
    logger.info("speed: %s", config.label)
    done = subprocess.run(command, capture_output=True, text=True, cwd=HERE.parent, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"speed run for {config.label} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    args.results.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    scifact = build_subset(load_beir(args.data / "scifact", "dev"),
                           SubsetSpec(n_queries=args.queries, corpus_size=args.corpus, seed=0))
    sts = subset_sts(load_sts(args.data / "stsbenchmark" / "sts-dev.tsv", name="stsbenchmark"),
                     args.sts_pairs, seed=0)
    configs = [c for c in CONFIGS if not args.only or c.label in args.only]
    rows = []
    for config in configs:
        quality = run_quality(config, [scifact, sts], args.results)
        speed = run_speed(config, args)
        rows.append({"model": config.label, **quality["scifact"],
                     "spearman": quality["stsbenchmark"].get("spearman"),
                     **{k: v for k, v in speed.items() if k != "model"}})
    plot = quality_vs_latency(rows, args.out / "quality_vs_latency.png")
    summary = {"scifact_subset": scifact.subset, "sts_subset": sts.subset, "rows": rows}
    (args.out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    readme = render_readme(summary, plot.name, shlex.join(sys.argv[1:] if argv is None else argv))
    (args.out / "REPORT.md").write_text(readme)
    logger.info("wrote %s; run python benchmarks/results_page.py to update docs/results.md", args.out / "REPORT.md")


if __name__ == "__main__":
    main()
