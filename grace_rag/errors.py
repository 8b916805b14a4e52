"""The one family of errors grace-rag raises for problems a user can fix."""

from __future__ import annotations


class GraceError(Exception):
    """Base class: the message says what is wrong, why, and how to fix it.

    The CLI turns any ``GraceError`` into one red line on stderr and a non-zero exit.
    """


class ConfigError(GraceError, ValueError):
    """An invalid setting (unknown pooling, layer, device, inconsistent values)."""


class ModelNotFoundError(GraceError):
    """A model name or path that cannot be resolved (offline or otherwise)."""


class CacheError(GraceError):
    """The rationale cache or a cached model conversion is unusable."""


class GraceIndexError(GraceError):
    """A missing, corrupted, foreign or mismatched index directory."""


class DataError(GraceError, ValueError):
    """Malformed input data (file:line and what is wrong)."""


def choice_error(what: str, value: object, valid: list[str]) -> ConfigError:
    """A ConfigError for an unknown choice, listing the valid values."""
    return ConfigError(f"unknown {what} {value!r}; valid values are: {', '.join(valid)}")


class ClusterError(GraceError):
    """A Ray cluster that cannot be reached, or a distributed job that failed (the index stays resumable)."""
