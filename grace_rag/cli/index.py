"""`grace-rag index`, `query`, `info` and `delete`: build, search, describe and prune an index directory."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
)

from grace_rag.cli.options import DeviceOpt, JsonOpt, QuietOpt
from grace_rag.cli.settings import Given, config_options
from grace_rag.config import EncoderConfig
from grace_rag.errors import ConfigError
from grace_rag.indexes.files import DEFAULT_INDEX_DIR
from grace_rag.textio import shown
from grace_rag.indexes.fusion import DEFAULT_ALPHA, DEFAULT_FUSION, DEFAULT_MODE, FusionMethod, SearchMode
from grace_rag.indexes.lexical import LexicalText

IndexDir = Annotated[Path, typer.Option("--index", help="Index directory.")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", help="Built-in alias, model directory or .gguf file (default: the index's model, else the embedded one).")]


def _choices(enum: type[Enum]) -> str:
    return ", ".join(member.value for member in enum)


def _ingest_help(name: str) -> str:
    """An IngestConfig field's own help."""
    from grace_rag.indexes.ingest import IngestConfig

    return {f.name: f for f in dataclasses.fields(IngestConfig)}[name].metadata["help"]


def _ray_help(name: str) -> str:
    """A RayConfig field's own help (the --ray options)."""
    from grace_rag.indexes.distributed import RayConfig

    return {f.name: f for f in dataclasses.fields(RayConfig)}[name].metadata["help"] + " With --ray."


ModeOpt = Annotated[str, typer.Option("--mode", help=f"Search mode: {_choices(SearchMode)}.")]
FusionOpt = Annotated[str | None, typer.Option(
    "--fusion", help=f"Hybrid fusion: {_choices(FusionMethod)} (default {DEFAULT_FUSION.value}).")]
AlphaOpt = Annotated[float | None, typer.Option(
    "--alpha", help=f"Weight of the dense side in weighted fusion, 0 to 1 (default {DEFAULT_ALPHA}); implies --fusion weighted.")]


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
    """A path relative to the current folder when it lies below it, printable on one line."""
    try:
        return shown(os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path)
    except ValueError:
        return shown(path)


def _line(text: str) -> str:
    """A text (a chunk, a rationale) on one printable line: runs of whitespace as one space."""
    return shown(" ".join(text.split()))


def _summary(report: Any) -> str:
    r = report
    lines = [
        f"{r.files_seen} files: {r.files_indexed} new or changed, {r.files_unchanged} unchanged, "
        f"{r.files_removed} removed, {len(r.skipped)} skipped",
        f"chunks: {r.chunks_added} added, {r.chunks_updated} updated, {r.chunks_removed} removed, "
        f"{r.chunks_unchanged} unchanged ({r.chunks_embedded} embedded) in {r.seconds:.1f} s",
    ]
    lines += [f"skipped {_shown(path)}: {shown(reason)}" for path, reason in r.skipped]
    return "\n".join(lines)


@config_options(settings=EncoderConfig)
def index_command(
    path: Annotated[Path, typer.Argument(help="Folder (searched recursively) or file to index.")],
    settings: Given,
    index: IndexDir = DEFAULT_INDEX_DIR,
    model: ModelOpt = None,
    chunk_size: Annotated[int | None, typer.Option(help="Tokens per chunk (default: half the model's input length).")] = None,
    chunk_overlap: Annotated[int | None, typer.Option(help="Tokens shared by neighbouring chunks (default: chunk size / 8).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Chunks embedded and saved together.")] = 8,
    max_file_mb: Annotated[float, typer.Option(help=_ingest_help("max_file_mb"))] = 10.0,
    factory: Annotated[str | None, typer.Option(help="FAISS factory string, e.g. Flat, HNSW32, IVF1024,Flat; 'auto' picks by size.")] = None,
    nprobe: Annotated[int | None, typer.Option(
        min=0, help="IVF lists a search visits; 0 measures it when the IVF index is built (recall@10 0.95 on "
                    "stored vectors). Only used by IVF indexes (above 2M chunks, or --factory IVF...).")] = None,
    lexical_text: Annotated[LexicalText | None, typer.Option(
        help="What the lexical side (BM25) indexes per chunk: the text, or the text and its rationale "
             "(recorded; default text).")] = None,
    device: DeviceOpt = "auto",
    ray: Annotated[bool, typer.Option("--ray", help="Embed on a Ray actor pool (pip install 'grace-rag[ray]').")] = False,
    address: Annotated[str | None, typer.Option(help=_ray_help("address"))] = None,
    workers: Annotated[int | None, typer.Option(min=1, help=_ray_help("workers"))] = None,
    gpus_per_worker: Annotated[float, typer.Option(min=0, help=_ray_help("gpus_per_worker"))] = 0.0,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Index a folder: read, chunk and embed new or changed files; drop deleted ones.

    Encoder settings are recorded in the index; later runs and queries reuse them.
    """
    from grace_rag.indexes.distributed import RayConfig, require_ray
    from grace_rag.indexes.ingest import IngestConfig
    from grace_rag.indexes.service import IndexRequest, index_folder

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    request = IndexRequest(
        path=path, index_dir=index, model=model, settings=settings.build(),
        factory=factory, nprobe=nprobe, lexical_text=lexical_text, device=device,
        ingest=IngestConfig(chunk_size=chunk_size, chunk_overlap=chunk_overlap, batch_size=batch_size,
                            max_file_mb=max_file_mb),
        cluster=RayConfig(address=address, workers=workers, gpus_per_worker=gpus_per_worker) if ray else None,
    )
    if not ray and (address or workers or gpus_per_worker):
        raise ConfigError("--address, --workers and --gpus-per-worker apply to --ray; add --ray to use them")
    if ray:  # Ray Data logs each execution at INFO and warns that its own bars are off: ours are drawn
        require_ray()  # imports ray.data, which configures its logger
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    if quiet or as_json:
        report = index_folder(request)
    else:
        with RichProgress(Console(stderr=True)) as progress:
            report = index_folder(request, progress)
    typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else _summary(report))


@config_options(settings=EncoderConfig)
def query_command(
    text: Annotated[str, typer.Argument(help="What to search for.")],
    settings: Given,
    index: IndexDir = DEFAULT_INDEX_DIR,
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, help="Number of hits.")] = 5,
    mode: ModeOpt = DEFAULT_MODE.value,
    fusion: FusionOpt = None,
    alpha: AlphaOpt = None,
    explain: Annotated[bool, typer.Option("--explain", help="Show the query's rationale and each hit's.")] = False,
    where: Annotated[list[str] | None, typer.Option(
        "--where", help="Filter KEY=VALUE, KEY!=VALUE, KEY>=N ... (repeatable, all must hold) on metadata or a "
                        "column (source, position, id, text); e.g. extension=.md, source=docs/notes.md")] = None,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print {query, mode, hits: [...]} as JSON.")] = False,
) -> None:
    """Search an index (hybrid by default) with the model and settings that built it.

    Encoder settings given here must match the index's (they are checked against its fingerprint).
    """
    from grace_rag.indexes.fusion import FusionConfig
    from grace_rag.indexes.service import parse_where, query_index

    result = query_index(index, text, k=k, explain=explain, where=parse_where(where), model=model, device=device,
                         mode=mode, fusion=FusionConfig.from_options(fusion, alpha), settings=settings.build())
    if as_json:
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    console = Console()
    if explain and result["mode"] != SearchMode.LEXICAL.value:
        console.print(f"[bold]query rationale:[/bold] {escape(_line(result['query_rationale']) or '(none)')}")
    if not result["hits"]:
        console.print("no hits")
    for rank, hit in enumerate(result["hits"], 1):
        snippet = _line(hit["text"])[:200]
        console.print(f"[bold]{rank}.[/bold] {hit['score']:.3f}  [cyan]{escape(_shown(hit['source']) or hit['id'])}[/cyan] "
                      f"(chunk {hit['position']}){_sides(hit, result['mode'])}")
        console.print(f"   {escape(snippet)}", soft_wrap=True)
        if explain:
            console.print(f"   [dim]why:[/dim] {escape(_line(hit['rationale']) or '(none)')}", soft_wrap=True)


def _sides(hit: dict[str, Any], mode: str) -> str:
    """``  [dense #2 0.612, lexical #1 7.31]`` for a hybrid hit ("-" where a side missed it)."""
    if mode != SearchMode.HYBRID.value:
        return ""
    parts = [f"{side} #{hit[side + '_rank']} {hit[side + '_score']:.3f}" if hit[side + "_rank"] else f"{side} -"
             for side in ("dense", "lexical")]
    return f"  [dim]\\[{', '.join(parts)}][/dim]"


def delete_command(
    paths: Annotated[list[str], typer.Argument(help="Files or folders whose chunks to remove (as indexed, or relative to here).")],
    index: IndexDir = DEFAULT_INDEX_DIR,
    everything: Annotated[bool, typer.Option(
        "--all", help="Allow PATHS that cover every file of the index (refused without it).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove files (or whole folders) from an index without loading a model; `index` re-adds them if asked."""
    from grace_rag.indexes.service import delete_sources

    result = delete_sources(index, paths, allow_all=everything)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    for path, count in result["removed_chunks"].items():
        typer.echo(f"{shown(path)}: {count} chunks removed")
    typer.echo(f"{result['files']} files, {result['chunks']} chunks left in {shown(index)}")


def info_command(
    index: IndexDir = DEFAULT_INDEX_DIR,
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
    lexical = "up to date" if info["lexical_revision"] == info["store_revision"] else "rebuilt on next use"
    typer.echo(f"{'lexical':<16}BM25 (bm25s) over {info['lexical_text']}, {lexical}")
    for name, size in info["sizes_bytes"].items():
        typer.echo(f"{'  ' + name:<16}{size:,} bytes")
    typer.echo(f"{'total':<16}{info['total_bytes']:,} bytes")


def register(app: typer.Typer) -> None:
    """Add `index`, `query`, `info` and `delete` to the grace-rag app."""
    app.command("index")(index_command)
    app.command("query")(query_command)
    app.command("info")(info_command)
    app.command("delete")(delete_command)
