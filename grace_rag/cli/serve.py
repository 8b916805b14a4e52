"""`grace-rag serve`: keep the model warm behind an HTTP API (embeddings, search, health, info)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from grace_rag.cli.options import DeviceOpt
from grace_rag.cli.settings import Given, config_options
from grace_rag.config import EncoderConfig
from grace_rag.indexes.files import DEFAULT_INDEX_DIR


@config_options(settings=EncoderConfig)
def serve_command(
    settings: Given,
    index: Annotated[Path, typer.Option("--index", help="Index directory to search (its model and settings are used).")] = DEFAULT_INDEX_DIR,
    embeddings_only: Annotated[bool, typer.Option("--embeddings-only", help="No index: serve /v1/embeddings for --model.")] = False,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model for --embeddings-only (default: the embedded one).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    api_key: Annotated[str | None, typer.Option(envvar="GRACE_RAG_API_KEY", help="Require 'Authorization: Bearer KEY' (all but /health).")] = None,
    device: DeviceOpt = "auto",
    max_inputs: Annotated[int, typer.Option(min=1, help="Texts per /v1/embeddings request.")] = 256,
    max_text_chars: Annotated[int, typer.Option(min=1, help="Characters per text or query.")] = 20_000,
    max_body_mb: Annotated[float, typer.Option(min=0.001, help="Request body size limit in MiB.")] = 4.0,
    max_k: Annotated[int, typer.Option(min=1, help="Largest k for /search.")] = 100,
    batch_texts: Annotated[int, typer.Option(min=1, help="Texts per model call (concurrent requests are batched).")] = 64,
    batch_wait_ms: Annotated[float, typer.Option(min=0, help="Wait this long for more requests before a model call.")] = 0.0,
    shutdown_timeout: Annotated[float, typer.Option(min=0, help="Seconds requests in flight get to finish on SIGTERM/Ctrl-C.")] = 30.0,
    log_level: Annotated[str, typer.Option(help="uvicorn log level: critical, error, warning, info, debug.")] = "info",
) -> None:
    """Serve an index over HTTP with the model kept warm: OpenAI-compatible POST /v1/embeddings, POST /search, GET /health, GET /info.

    Encoder settings given here must match the index's (checked against its fingerprint); with
    --embeddings-only they configure the served model.
    """
    from grace_rag.server.run import build_service, listen, serve
    from grace_rag.server.service import ServeLimits

    limits = ServeLimits(max_inputs=max_inputs, max_text_chars=max_text_chars, max_body_bytes=int(max_body_mb * 1024 * 1024),
                         max_k=max_k, batch_texts=batch_texts, batch_wait_ms=batch_wait_ms)
    sock = listen(host, port)  # a busy port is refused before the model loads
    try:
        service = build_service(None if embeddings_only else index, model, device, limits, settings.build())
    except BaseException:
        sock.close()
        raise
    what = "embeddings only" if embeddings_only else f"index {index}"
    bound = sock.getsockname()[1]  # the port --port 0 was given
    typer.echo(f"grace-rag serve: {service.encoder.model_name} ({what}) on http://{host}:{bound}", err=True)
    serve(service, sock, api_key=api_key, shutdown_timeout=shutdown_timeout, log_level=log_level)


def register(app: typer.Typer) -> None:
    """Add `serve` to the grace-rag app."""
    app.command("serve")(serve_command)
