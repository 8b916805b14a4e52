"""`grace-rag index`, `query` and `info`: build, search and describe a FAISS index directory."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
)

from grace_rag.cli.options import DeviceOpt, JsonOpt, QuietOpt, RationaleTokensOpt

DEFAULT_INDEX = Path(".grace-index")
IndexDir = Annotated[Path, typer.Option("--index", help="Index directory.")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", help="Built-in alias, model directory or .gguf file (default: the index's model, else the embedded one).")]


class RichProgress:
    """The ingestion progress protocol drawn as rich bars on stderr (files, chunks, ETA)."""

    def __init__(self, console: Console) -> None:
        self._bars = Progress(
            TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def start(self, phase: str, total: int) -> None:
        self._tasks[phase] = self._bars.add_task(phase, total=total)

    def advance(self, phase: str, n: int = 1) -> None:
        self._bars.advance(self._tasks[phase], n)

    def __enter__(self) -> "RichProgress":
        self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bars.stop()


def _shown(path: str) -> str:
    """A path relative to the current folder when it lies below it."""
    try:
        return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path
    except ValueError:
        return path


def _summary(report: Any) -> str:
    r = report
    lines = [
        f"{r.files_seen} files: {r.files_indexed} new or changed, {r.files_unchanged} unchanged, "
        f"{r.files_removed} removed, {len(r.skipped)} skipped",
        f"chunks: {r.chunks_added} added, {r.chunks_updated} updated, {r.chunks_removed} removed, "
        f"{r.chunks_unchanged} unchanged ({r.chunks_embedded} embedded) in {r.seconds:.1f} s",
    ]
    lines += [f"skipped {_shown(path)}: {reason}" for path, reason in r.skipped]
    return "\n".join(lines)


def index_command(
    path: Annotated[Path, typer.Argument(help="Folder (searched recursively) or file to index.")],
    index: IndexDir = DEFAULT_INDEX,
    model: ModelOpt = None,
    chunk_size: Annotated[int | None, typer.Option(help="Tokens per chunk (default: half the model's input length).")] = None,
    chunk_overlap: Annotated[int | None, typer.Option(help="Tokens shared by neighbouring chunks (default: chunk size / 8).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Chunks embedded and saved together.")] = 8,
    rationale_tokens: RationaleTokensOpt = None,
    factory: Annotated[str | None, typer.Option(help="FAISS factory string, e.g. Flat, HNSW32, IVF1024,Flat; 'auto' picks by size.")] = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Index a folder: read, chunk and embed new or changed files; drop deleted ones."""
    from grace_rag.indexes.ingest import IngestConfig
    from grace_rag.indexes.service import IndexRequest, index_folder

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    request = IndexRequest(
        path=path, index_dir=index, model=model, rationale_tokens=rationale_tokens, factory=factory, device=device,
        ingest=IngestConfig(chunk_size=chunk_size, chunk_overlap=chunk_overlap, batch_size=batch_size),
    )
    if quiet or as_json:
        report = index_folder(request)
    else:
        with RichProgress(Console(stderr=True)) as progress:
            report = index_folder(request, progress)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    elif not quiet or report.skipped:
        typer.echo(_summary(report))


def query_command(
    text: Annotated[str, typer.Argument(help="What to search for.")],
    index: IndexDir = DEFAULT_INDEX,
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, help="Number of hits.")] = 5,
    explain: Annotated[bool, typer.Option("--explain", help="Show the query's rationale and each hit's.")] = False,
    where: Annotated[list[str] | None, typer.Option("--where", help="Metadata filter KEY=VALUE (repeatable), e.g. extension=.md")] = None,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print {query, hits: [...]} as JSON.")] = False,
) -> None:
    """Search an index with the model that built it."""
    from grace_rag.indexes.service import parse_where, query_index

    result = query_index(index, text, k=k, explain=explain, where=parse_where(where), model=model, device=device)
    if as_json:
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    console = Console()
    if explain:
        console.print(f"[bold]query rationale:[/bold] {escape(result['query_rationale'] or '(none)')}")
    if not result["hits"]:
        console.print("no hits")
    for rank, hit in enumerate(result["hits"], 1):
        snippet = " ".join(hit["text"].split())[:200]
        console.print(f"[bold]{rank}.[/bold] {hit['score']:.3f}  [cyan]{escape(_shown(hit['source']) or hit['id'])}[/cyan] (chunk {hit['position']})")
        console.print(f"   {escape(snippet)}", soft_wrap=True)
        if explain:
            console.print(f"   [dim]why:[/dim] {escape(hit['rationale'] or '(none)')}", soft_wrap=True)


def info_command(
    index: IndexDir = DEFAULT_INDEX,
    as_json: JsonOpt = False,
) -> None:
    """Describe an index: model, fingerprint, index type, counts, sizes on disk."""
    from grace_rag.indexes.service import index_info

    info = index_info(index)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    for key in ("path", "model", "fingerprint", "dimension", "metric", "factory", "factory_request", "chunks", "files"):
        typer.echo(f"{key:<16}{info[key]}")
    typer.echo(f"{'search':<16}" + ", ".join(f"{k}={v}" for k, v in info["search"].items()))
    for name, size in info["sizes_bytes"].items():
        typer.echo(f"{'  ' + name:<16}{size:,} bytes")
    typer.echo(f"{'total':<16}{info['total_bytes']:,} bytes")


def register(app: typer.Typer) -> None:
    """Add `index`, `query` and `info` to the grace-rag app."""
    app.command("index")(index_command)
    app.command("query")(query_command)
    app.command("info")(info_command)
