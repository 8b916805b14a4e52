"""Fixtures for index tests: a pretend encoder identity and the tiny random encoder."""

import pytest

from grace_rag.indexes import EncoderInfo

DIM = 16


@pytest.fixture
def info() -> EncoderInfo:
    """The identity of a (pretend) encoder: pure index round trips need vectors, not a model."""
    return EncoderInfo(model_name="fake-model", fingerprint="f" * 32, dimension=DIM, settings={"max_rationale_tokens": 4})


@pytest.fixture(scope="session")
def tiny():
    """The tiny random Llama encoder (no download)."""
    from grace_rag import EncoderConfig
    from grace_rag.testing import tiny_encoder

    return tiny_encoder(EncoderConfig(max_rationale_tokens=4, cache=False))
