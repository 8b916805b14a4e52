"""Render the benchmark summary as benchmarks/out/report/REPORT.md (tables, plot, what the numbers say)."""

from __future__ import annotations

from typing import Any

QUALITY_COLUMNS = [("ndcg@10", "nDCG@10"), ("recall@10", "R@10"), ("recall@100", "R@100"),
                   ("mrr@10", "MRR@10"), ("spearman", "STS-B ρ")]
SPEED_COLUMNS = [("docs_per_s", "docs/s (index)"), ("query_ms_p50", "query p50 ms"),
                 ("query_ms_p95", "query p95 ms"), ("peak_rss_mb", "peak RSS MB")]
BASELINES = ("bm25", "minilm")


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:.0f}"
        return f"{value:.{digits}f}" if abs(value) >= 1 or digits >= 3 else f"{value:.2g}"
    return str(value)


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]], digits: int) -> str:
    head = "| model | " + " | ".join(title for _, title in columns) + " |"
    rule = "|---|" + "---:|" * len(columns)
    body = ["| " + row["model"] + " | "
            + " | ".join(_fmt(row.get(key), digits) for key, _ in columns) + " |" for row in rows]
    return "\n".join([head, rule, *body])


def _best(rows: list[dict[str, Any]], key: str, grace: bool) -> dict[str, Any] | None:
    pool = [r for r in rows if (r["model"] not in BASELINES) == grace and r.get(key) is not None]
    return max(pool, key=lambda r: r[key]) if pool else None


def findings(rows: list[dict[str, Any]]) -> list[str]:
    """Plain statements computed from the numbers, so they stay true when the report reruns."""
    lines = []
    for key, name in (("ndcg@10", "SciFact nDCG@10"), ("spearman", "STS-B Spearman")):
        grace, base = _best(rows, key, True), _best(rows, key, False)
        if not grace or not base:
            continue
        verdict = "beats" if grace[key] > base[key] else "loses to"
        lines.append(f"- {name}: the best grace-rag row ({grace['model']}, {grace[key]:.3f}) "
                     f"{verdict} the best baseline ({base['model']}, {base[key]:.3f}).")
    by_model = {r["model"]: r for r in rows}
    zero, longest = by_model.get("grace rt=0 (base)"), by_model.get("grace rt=128")
    if zero and longest and zero.get("ndcg@10") is not None and longest.get("ndcg@10") is not None:
        delta = longest["ndcg@10"] - zero["ndcg@10"]
        lines.append(f"- Rationales: 128 rationale tokens change SciFact nDCG@10 by {delta:+.3f} "
                     "against no rationale (rt=0).")
    speeds = {r["model"]: r.get("docs_per_s") for r in rows if r.get("docs_per_s")}
    if "minilm" in speeds and "grace rt=32" in speeds:
        ratio = speeds["minilm"] / speeds["grace rt=32"]
        lines.append(f"- Cost: indexing with grace rt=32 is {ratio:.0f}x slower than MiniLM on "
                     "this CPU (the rationale is generated token by token).")
    return lines


def render_readme(summary: dict[str, Any], plot_name: str, command_args: str) -> str:
    rows = summary["rows"]
    scifact, sts = summary["scifact_subset"], summary["sts_subset"]
    speed = rows[0] if rows else {}
    command = f"nice -n 10 python -m benchmarks.report {command_args}".strip()
    return "\n".join([
        "# grace-rag benchmarks",
        "",
        f"Regenerate with `{command}` (or `make bench`). Results are cached in",
        "`benchmarks/results/`; `results.json` holds every number below.",
        "",
        "## Data",
        "",
        f"- SciFact dev subset `{scifact['digest']}`: {scifact['queries']} queries, "
        f"{scifact['documents']} documents ({scifact['positives']} positives, "
        f"{scifact['bm25_distractors']} BM25 distractors, {scifact['random_fill']} random), "
        f"seed {scifact['seed']}. Not comparable with full-corpus MTEB numbers (BM25 0.687, "
        f"MiniLM 0.645 on the full test set): a {scifact['documents']}-document corpus is "
        "much easier.",
        f"- STS-B dev subset `{sts['digest']}`: {sts['n_pairs']} pairs, seed {sts['seed']}.",
        "",
        "## Quality",
        "",
        table(rows, QUALITY_COLUMNS, 3),
        "",
        "## Speed",
        "",
        f"CPU, {speed.get('speed_docs', '?')} SciFact documents indexed with the rationale "
        f"cache off; query latency over {speed.get('speed_queries', '?')} single queries in a "
        "warm process (encode + exact search); peak resident memory of that process.",
        "",
        table(rows, SPEED_COLUMNS, 1),
        "",
        f"![quality vs latency]({plot_name})",
        "",
        "## What the numbers say",
        "",
        *findings(rows),
        "",
    ])
