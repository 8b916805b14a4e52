"""What the CLI lets through to stderr: its own progress, warnings and one red line per error.

Library chatter (transformers' weight-loading and GGUF-conversion bars, its warnings, INFO log
records such as "rebuilt Flat FAISS index with 7 vectors") appears only with ``grace-rag --verbose``;
DEBUG records (bm25s' "Building index from tokens") never do.
"""

from __future__ import annotations

import logging

FORMAT = "%(levelname)s %(name)s: %(message)s"

_handler: logging.Handler | None = None  # the stderr handler of the console script


def install_log_handler() -> None:
    """Log records to stderr as ``LEVEL logger: message`` (the console script's only handler)."""
    global _handler
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter(FORMAT))
    logging.getLogger().addHandler(_handler)
    configure_output(verbose=False)


def configure_output(verbose: bool) -> None:
    """Log WARNING and above (INFO too with ``verbose``); library progress bars only with ``verbose``."""
    level = logging.INFO if verbose else logging.WARNING
    logging.getLogger().setLevel(level)
    if _handler is not None:
        # The handler filters too: a library that sets its own logger to DEBUG (bm25s does, on
        # import) would otherwise reach stderr whatever the root level says.
        _handler.setLevel(level)
    from transformers.utils import logging as hf_logging

    if verbose:  # transformers' own default level (its INFO dumps whole configs), with its bars
        hf_logging.enable_progress_bar()
        hf_logging.set_verbosity_warning()
    else:
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
