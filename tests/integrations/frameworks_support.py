"""Shared pieces of the framework tests: texts, the cached tiny encoder and a call-recording wrapper."""

import functools

from grace_rag import EncoderConfig

#: Three short documents and questions that each should retrieve exactly one of them.
DOCS = {
    "bees": "Honeybees perform a waggle dance on the comb to tell their sisters the direction and distance of flowers.",
    "volcano": "A volcano erupts when molten rock, gases and ash escape through an opening in the Earth's crust.",
    "interest": "Compound interest is earned on the principal and on the interest already added, so savings grow faster.",
}
QUESTIONS = {
    "bees": "How do bees communicate where food is?",
    "volcano": "What comes out of an erupting volcano?",
}


@functools.lru_cache(maxsize=1)
def tiny_encoder_once():
    from grace_rag.testing import tiny_encoder

    return tiny_encoder(EncoderConfig(max_rationale_tokens=4, cache=False))


class Counting:
    """A real encoder that records every call (texts and role)."""

    def __init__(self, encoder):
        self._encoder = encoder
        self.calls: list[tuple[list[str], str]] = []

    def __getattr__(self, name):
        return getattr(self._encoder, name)

    def encode(self, texts, role="document"):
        self.calls.append((list(texts), str(getattr(role, "value", role))))
        return self._encoder.encode(texts, role=role)

