"""The ``grace-rag`` command: builds the typer app from the command-group modules.

Every ``GraceError`` (and a missing optional dependency) becomes one red line on stderr and
exit code 1; library tracebacks never reach the user.
"""

from __future__ import annotations

import logging
from typing import Any

import typer
from typer.core import TyperGroup

from grace_rag.errors import GraceError


def fail(message: str) -> typer.Exit:
    """Print ``message`` as one red line on stderr; return the exit to raise."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(1)


class _GraceGroup(TyperGroup):
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except GraceError as exc:
            raise fail(str(exc)) from None
        except ImportError as exc:  # optional extras: the message names what to install
            raise fail(str(exc)) from None


app = typer.Typer(
    cls=_GraceGroup,
    name="grace-rag",
    help="Embeddings that reason: index, search, explain, evaluate and train GRACE encoders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _register_commands() -> None:
    from grace_rag.cli import encode, eval, index, serve, train

    for module in (index, encode, eval, train, serve):
        module.register(app)


_register_commands()


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _quiet_libraries()
    app()


def _quiet_libraries() -> None:
    """The CLI draws its own progress: no weight-loading bars or info chatter from transformers."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
