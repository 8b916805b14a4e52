"""The tiny random Llama encoder for the framework tests (the real model comes from tests/conftest.py)."""

import pytest
from frameworks_support import tiny_encoder_once


@pytest.fixture(scope="session")
def tiny():
    return tiny_encoder_once()
