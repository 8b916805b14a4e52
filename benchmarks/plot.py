"""The quality-versus-latency figure (in the manner of the GRACE paper's Figure 4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def quality_vs_latency(rows: list[dict[str, Any]], path: Path, metric: str = "ndcg@10") -> Path:
    """Scatter of warm query latency (log x) against ``metric``, one labelled point per row.

    Each row needs ``model``, ``query_ms_p50`` and ``metric``; rows missing either are left out.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [r for r in rows if r.get(metric) is not None and r.get("query_ms_p50")]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=90)
    for row in points:
        colour = "tab:gray" if row["model"] in ("bm25", "minilm") else "tab:blue"
        ax.scatter(row["query_ms_p50"], row[metric], color=colour, s=28)
        ax.annotate(row["model"], (row["query_ms_p50"], row[metric]), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("query latency p50, warm, 1 query (ms, log scale)")
    ax.set_ylabel(f"SciFact dev subset {metric}")
    ax.set_title("Quality vs latency (grey: baselines, blue: grace-rag)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
