"""Encoders for the framework tests: the tiny random Llama, and the real embedded model (once)."""

import pytest
from frameworks_support import real_encoder_once, tiny_encoder_once


@pytest.fixture(scope="session")
def tiny():
    return tiny_encoder_once()


@pytest.fixture(scope="session")
def real_encoder():
    """The embedded SmolLM2 model with short rationales, loaded once per session."""
    return real_encoder_once()
