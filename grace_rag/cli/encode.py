"""``grace-rag explain``: show the rationale (and optionally the vector) for texts."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from grace_rag.cli.options import DeviceOpt, JsonOpt, ModelOpt
from grace_rag.cli.settings import Given, config_options
from grace_rag.config import EncoderConfig, Role
from grace_rag.models import DEFAULT_MODEL


@config_options(settings=EncoderConfig)
def explain(
    texts: Annotated[list[str], typer.Argument(help="Texts to explain.")],
    settings: Given,
    model: ModelOpt = DEFAULT_MODEL,
    role: Annotated[Role, typer.Option(help="Encode as a query or a document.")] = Role.DOCUMENT,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Print the rationale the encoder writes for each text (what its embedding is built from)."""
    from grace_rag.encoder import GraceEncoder

    encoder = GraceEncoder(model=model, config=settings.build(), device=device)
    rationales = encoder.explain(texts, role=role)
    if as_json:
        typer.echo(json.dumps([{"text": t, "rationale": r} for t, r in zip(texts, rationales)], indent=2))
        return
    for text, rationale in zip(texts, rationales):
        typer.secho(text, bold=True)
        typer.echo(f"  -> {rationale}\n")


def register(app: typer.Typer) -> None:
    app.command("explain")(explain)
