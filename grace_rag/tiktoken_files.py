"""tiktoken's files offline: the copy llama-index-core ships (cl100k_base among them), and seeding tiktoken's cache with it.

Used by the server (OpenAI clients send cl100k_base token ids) and by the LlamaIndex adapter
(its splitters load tiktoken, also in spawned worker processes).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def bundled_tiktoken_cache() -> Path | None:
    """The folder of tiktoken files (cl100k_base among them) that llama-index-core ships, if installed."""
    try:
        import llama_index.core
    except ImportError:
        return None
    folder = Path(llama_index.core.__file__).parent / "_static" / "tiktoken_cache"
    return folder if folder.is_dir() else None


def seed_tiktoken_cache() -> None:
    """Copy the tiktoken files llama-index-core ships (cl100k_base among them) into tiktoken's default
    cache when they are not there yet, so that a tokenizer rebuilt in a spawned process (LlamaIndex's
    ``IngestionPipeline(num_workers=N)`` unpickles SentenceSplitter's) loads offline instead of
    downloading. Nothing is done where TIKTOKEN_CACHE_DIR or DATA_GYM_CACHE_DIR choose the cache."""
    if "TIKTOKEN_CACHE_DIR" in os.environ or "DATA_GYM_CACHE_DIR" in os.environ:
        return
    bundled = bundled_tiktoken_cache()
    if bundled is None:
        return
    cache = Path(tempfile.gettempdir()) / "data-gym-cache"  # tiktoken's default (tiktoken.load.read_file_cached)
    for source in bundled.iterdir():
        target = cache / source.name
        if not source.is_file() or target.exists():
            continue
        try:
            cache.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{source.name}.", dir=cache)
            with os.fdopen(fd, "wb") as handle:
                handle.write(source.read_bytes())
            os.replace(tmp, target)
        except OSError:  # a cache we cannot write: tiktoken downloads as it would have
            return
