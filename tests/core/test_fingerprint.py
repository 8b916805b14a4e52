"""Fingerprints are what indexes and caches are keyed by: the same encoder must keep the same one."""

import pytest

from grace_rag.config import EncoderConfig

#: the shipped default model at its own settings in float32 (the adapter of recipe (a), shipped with
#: writer = base and writer_input_tokens = 128; the previous adapter's was 114df98a581ec224c61db9b80473e7ed).
#: A new shipped model changes it: update it together with the model, never for the same one.
DEFAULT_FINGERPRINT = "6618c0c9b9e9a92ddfbd8194196f9750"


def test_the_settings_part_of_the_default_fingerprint_is_pinned():
    """What ``identity()`` puts into every fingerprint for the library defaults (runtime fields and
    neutral values left out, so fingerprints written before a field existed stay valid)."""
    identity = EncoderConfig().identity()
    assert set(identity) == {"max_rationale_tokens", "max_input_tokens", "pooling", "layer", "quantization",
                             "query_instruction", "document_instruction", "temperature", "top_p", "seed"}
    assert (identity["max_rationale_tokens"], identity["pooling"], identity["layer"], identity["quantization"]) == (
        32, "mean", "last", "auto")
    assert EncoderConfig(quantization="none", query_rationale_tokens=None, writer="model").identity().keys() == \
        identity.keys() - {"quantization"}


@pytest.mark.integration
def test_the_default_encoder_keeps_its_fingerprint(real_backbone):
    from grace_rag.encoder import GraceEncoder

    encoder = GraceEncoder.from_backbone(real_backbone, EncoderConfig(quantization="none", cache=False))
    assert encoder.fingerprint == DEFAULT_FINGERPRINT
