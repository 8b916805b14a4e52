"""`grace-rag eval`: score models side by side on a BEIR folder or an STS file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from grace_rag.cli.settings import Given, config_options
from grace_rag.config import EncoderConfig

RETRIEVAL_COLUMNS = ["ndcg@10", "recall@10", "recall@100", "mrr@10", "docs_per_s"]
#: rationale quality of GraceEncoder rows (grace_rag.evaluation.rationale_quality), header -> key
RATIONALE_COLUMNS = {"contrib.": "rationale_contribution", "distinct3": "rationale_distinct3",
                     "ppl": "rationale_ppl", "grounding": "rationale_grounding", "cut": "rationale_cut"}
STS_COLUMNS = ["spearman", "docs_per_s"]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if value >= 10 else f"{value:.4f}"
    return str(value)


def results_table(payload: dict[str, Any]) -> Table:
    """A rich table of one ``run_eval`` payload."""
    columns = {name: name for name in (STS_COLUMNS if payload["task"] == "sts" else RETRIEVAL_COLUMNS)}
    if any("rationale_ppl" in row or "rationale_distinct3" in row for row in payload["results"]):
        columns.update(RATIONALE_COLUMNS)
    subset = payload.get("subset")
    caption = "full split"
    if subset:
        size = (f"{subset['n_pairs']} pairs" if "n_pairs" in subset
                else f"{subset['queries']} queries, {subset['documents']} documents")
        caption = f"subset {subset['digest']}: {size}, seed {subset['seed']}"
    table = Table(title=f"{payload['dataset']} ({payload['split']})", caption=caption)
    table.add_column("model")
    for header in columns:
        table.add_column(header, justify="right")
    for row in payload["results"]:
        table.add_row(row["model"], *(_cell(row.get(key)) for key in columns.values()))
    return table


@config_options(settings=EncoderConfig)
def eval_command(
    dataset_dir: Annotated[Path, typer.Argument(
        exists=True, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/), or an STS .tsv "
                          "file / a folder of sts-<split>.tsv files.")],
    settings: Given,
    model: Annotated[list[str] | None, typer.Option(
        "--model", "-m", help="Model to evaluate, repeatable: bm25, minilm, default, "
                              "a GraceEncoder model name or a model directory; hybrid:NAME fuses "
                              "NAME with BM25 as a grace-rag index does (e.g. hybrid:default).")] = None,
    split: Annotated[str, typer.Option(help="qrels/<split>.tsv or sts-<split>.tsv.")] = "test",
    subset: Annotated[int | None, typer.Option(
        help="Evaluate a seeded subset: N queries (retrieval) or N pairs (STS).")] = None,
    corpus_size: Annotated[int | None, typer.Option(
        help="Documents in a retrieval subset (default 10 x --subset).")] = None,
    distractors: Annotated[int, typer.Option(
        help="BM25 distractors per query in a retrieval subset (then random fill).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the subset sample.")] = 0,
    fusion: Annotated[str | None, typer.Option(
        help="Fusion of hybrid:NAME models: rrf or weighted (default: the index's default).")] = None,
    alpha: Annotated[float | None, typer.Option(
        help="Weight of the dense side in weighted fusion (0 to 1); implies --fusion weighted.")] = None,
    rationale_metrics: Annotated[bool, typer.Option(
        "--rationale-metrics/--no-rationale-metrics",
        help="For GRACE models on retrieval data, also score their document rationales: contribution "
             "(nDCG@10 minus nDCG@10 without rationales), distinct 3-grams, perplexity under the untrained "
             "base model, grounding (BM25 MRR of the rationale's own text) and the share cut at the limit.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON results here.")] = None,
) -> None:
    """Evaluate models on a retrieval or STS dataset and print the metrics.

    Encoder settings apply to every GraceEncoder model evaluated (the model's own fill the rest).
    """
    from grace_rag.evaluation import EvalRequest, run_eval
    from grace_rag.indexes.fusion import FusionConfig

    request = EvalRequest(
        dataset=dataset_dir, models=model or ["default"], split=split, subset=subset,
        corpus_size=corpus_size, distractors=distractors, seed=seed,
        grace=settings.build(),
        fusion=FusionConfig.from_options(fusion, alpha), rationale_metrics=rationale_metrics,
    )
    payload = run_eval(request)
    text = json.dumps(payload, indent=2)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    if as_json:
        typer.echo(text)
    else:
        Console().print(results_table(payload))


def register(app: typer.Typer) -> None:
    """Add the ``eval`` command to the grace-rag CLI."""
    app.command("eval")(eval_command)
