"""The ``grace-rag`` command: builds the typer app from the command-group modules.

Every ``GraceError`` (and a missing optional dependency) becomes one red line on stderr and
exit code 1; a usage error (unknown option, bad number) is one line too, with exit code 2;
library tracebacks never reach the user. Text arguments are checked at this one boundary
(:mod:`grace_rag.textio`): a query or filter that is not valid UTF-8 is one line, not a crash.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

try:  # typer 0.2x vendors click as typer._click (pinned in constraints.txt)
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - typer versions that use click itself
    from click.exceptions import NoArgsIsHelpError, UsageError

from grace_rag.errors import GraceError
from grace_rag.textio import check_text, shown


MAX_ERROR_CHARS = 2000  # a message quoting a huge value (a whole text, a list) is cut, not printed in full


def fail(message: str) -> typer.Exit:
    """Print ``message`` as one red line on stderr (undecodable bytes as ``\\xNN``, control characters
    escaped, at most MAX_ERROR_CHARS); return the exit to raise."""
    line = shown(message)
    if len(line) > MAX_ERROR_CHARS:
        line = f"{line[:MAX_ERROR_CHARS]}... ({len(line) - MAX_ERROR_CHARS:,} more characters)"
    typer.secho(f"error: {line}", fg=typer.colors.RED, err=True)
    return typer.Exit(1)


class OneLineUsageError(UsageError):
    """A click usage error shown as one red line (with where to find help) instead of a usage block."""

    def show(self, file: Any = None) -> None:
        command = self.ctx.command_path if self.ctx is not None else "grace-rag"
        typer.secho(f"error: {self.format_message()} (see `{command} --help`)", fg=typer.colors.RED, err=True)


def _one_line(exc: UsageError) -> UsageError:
    if isinstance(exc, (OneLineUsageError, NoArgsIsHelpError)):
        return exc
    return OneLineUsageError(exc.format_message(), exc.ctx)


class _GraceGroup(TyperGroup):
    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except UsageError as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            raise _one_line(exc) from None
        except GraceError as exc:
            raise fail(str(exc)) from None
        except ImportError as exc:  # optional extras: the message names what to install
            raise fail(str(exc)) from None


class GraceCommand(TyperCommand):
    """A command whose text parameters (``str`` values; paths arrive as ``Path``) must be valid UTF-8."""

    def invoke(self, ctx: Any) -> Any:
        for param in self.params:
            values = ctx.params.get(param.name)
            for value in values if isinstance(values, (list, tuple)) else [values]:
                if isinstance(value, str):
                    check_text(value, _param_name(param))
        return super().invoke(ctx)


def _param_name(param: Any) -> str:
    if param.param_type_name == "argument":
        return f"the {param.name.upper()} argument"
    return "/".join(param.opts)


app = typer.Typer(
    cls=_GraceGroup,
    name="grace-rag",
    help="Embeddings that reason: index, search, explain, evaluate and train GRACE encoders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show library logs and progress bars (model loading, conversion).")] = False,
) -> None:
    """Embeddings that reason: index, search, explain, evaluate and train GRACE encoders."""
    from grace_rag.cli.output import configure_output

    configure_output(verbose)


def _register_commands() -> None:
    from grace_rag.cli import encode, eval, index, serve, train

    for module in (index, encode, eval, train, serve):
        module.register(app)
    for command in app.registered_commands:
        if command.cls in (None, TyperCommand):
            command.cls = GraceCommand


_register_commands()


def main() -> None:
    """Console-script entry point."""
    from grace_rag.cli.output import install_log_handler

    install_log_handler()
    app()
