"""``grace-rag explain``: show the rationale (and optionally the vector) for texts."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from grace_rag.cli.options import DeviceOpt, JsonOpt, ModelOpt
from grace_rag.cli.settings import Given, config_options
from grace_rag.config import EncoderConfig, Role
from grace_rag.models import DEFAULT_MODEL
from grace_rag.textio import shown


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
    if as_json:  # with each rationale's quality figures (grace_rag.evaluation.rationale_quality)
        from grace_rag.evaluation.rationale_quality import explain_figures

        typer.echo(json.dumps(explain_figures(encoder, texts, role), indent=2))
        return
    rationales = encoder.explain(texts, role=role)
    for text, rationale in zip(texts, rationales):
        typer.secho(shown(text), bold=True)
        typer.echo(f"  -> {shown(' '.join(rationale.split()))}\n")  # one line: a rationale may hold newlines


def register(app: typer.Typer) -> None:
    app.command("explain")(explain)
