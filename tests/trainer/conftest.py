"""Shared fixtures: a small triplet set over the tiny test tokenizer's vocabulary."""

import json

import pytest

from grace_rag.trainer.data import Triplet

WORDS = ["cat sleeps mat", "proteins fold cell", "interest rates bank", "river flooded rain",
         "fox jumps dog", "central bank inflation"]


@pytest.fixture
def triplets():
    return [Triplet(w, w + " again", (WORDS[(i + 2) % len(WORDS)],)) for i, w in enumerate(WORDS)]


@pytest.fixture
def triplet_file(tmp_path, triplets):
    path = tmp_path / "triplets.jsonl"
    path.write_text("".join(json.dumps({"query": t.query, "positive": t.positive, "negative": t.negatives[0]}) + "\n"
                            for t in triplets))
    return path


class Crash(RuntimeError):
    """Raised by :func:`crash_at` to simulate a process killed during a step."""


@pytest.fixture
def crash_at(monkeypatch):
    """``crash_at(n)``: GraceTrainer.step raises Crash at step index n; ``crash_at(None)`` restores it."""
    from grace_rag.trainer.loop import GraceTrainer

    real = GraceTrainer.step

    def install(n):
        if n is None:
            monkeypatch.setattr(GraceTrainer, "step", real)
            return

        def crashing(self, batch, step):
            if step == n:
                raise Crash("killed")
            return real(self, batch, step)

        monkeypatch.setattr(GraceTrainer, "step", crashing)

    install.error = Crash
    return install
