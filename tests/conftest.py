"""Shared fixtures: an isolated GRACE_RAG_HOME per test, the real embedded model once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
#: persistent home for the one-time GGUF conversion of the embedded model (gitignored)
MODEL_HOME = Path(os.environ.get("GRACE_RAG_TEST_HOME", REPO / ".test-home"))
#: quantization="auto" resolves the same on every machine the suite runs on (float32; here and in the
#: processes tests start); tests of bf16 ask for it explicitly. GRACE_RAG_NATIVE_BF16=1 runs it all in bf16.
os.environ.setdefault("GRACE_RAG_NATIVE_BF16", "0")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "grace-home"
    monkeypatch.setenv("GRACE_RAG_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


def _load_real(name: str):
    """A built-in model, its GGUF converted once into MODEL_HOME."""
    from grace_rag.models import load_backbone

    old = os.environ.get("GRACE_RAG_HOME")
    os.environ["GRACE_RAG_HOME"] = str(MODEL_HOME)
    try:
        return load_backbone(name, device="cpu")
    finally:
        if old is None:
            os.environ.pop("GRACE_RAG_HOME", None)
        else:
            os.environ["GRACE_RAG_HOME"] = old


@pytest.fixture(scope="session")
def real_backbone():
    """The default model (embedded SmolLM2-135M-Instruct + the shipped adapter), loaded once."""
    from grace_rag.models import DEFAULT_MODEL

    return _load_real(DEFAULT_MODEL)


@pytest.fixture(scope="session")
def base_backbone():
    """The untrained embedded SmolLM2-135M-Instruct, loaded once."""
    from grace_rag.models import BASE_MODEL

    return _load_real(BASE_MODEL)


@pytest.fixture(scope="session")
def real_encoder(real_backbone):
    """A GraceEncoder on the real model: 16 rationale tokens, no cache (tests share the model)."""
    from grace_rag import EncoderConfig
    from grace_rag.encoder import GraceEncoder

    return GraceEncoder.from_backbone(real_backbone, EncoderConfig(max_rationale_tokens=16, cache=False))


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """The tiny random Llama saved as a Hugging Face model directory (loads like any local model)."""
    from grace_rag.testing import tiny_backbone

    path = tmp_path_factory.mktemp("tiny-model")
    backbone = tiny_backbone()
    backbone.model.save_pretrained(path)
    backbone.tokenizer.save_pretrained(path)
    return path
