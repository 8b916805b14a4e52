"""grace-rag command-line interface (typer)."""
