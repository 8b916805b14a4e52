"""Run the index/query/info commands as a program (for tests that kill a real indexing process)."""

import typer

from grace_rag.cli.index import register

app = typer.Typer()
register(app)

if __name__ == "__main__":
    app()
