"""tiktoken's cl100k_base on this offline machine: llama-index-core ships a copy of it."""

from pathlib import Path


def bundled_tiktoken_cache() -> str:
    import llama_index.core

    return str(Path(llama_index.core.__file__).parent / "_static" / "tiktoken_cache")


def cl100k_offline(monkeypatch):
    """Point tiktoken at the bundled copy (for this test) and return the cl100k_base encoding."""
    import tiktoken

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", bundled_tiktoken_cache())
    return tiktoken.get_encoding("cl100k_base")
