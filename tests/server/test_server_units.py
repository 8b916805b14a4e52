"""The server's parts in process: the micro-batcher, OpenAI input/output shapes, search options."""

from __future__ import annotations

import base64
import threading

import numpy as np
import pytest

from grace_rag.server.batching import MicroBatcher, ShuttingDown
from grace_rag.server.openai_api import RequestError, decode_tokens, embeddings_response, input_texts


@pytest.fixture(scope="module")
def tiny():
    from grace_rag import EncoderConfig
    from grace_rag.testing import tiny_encoder

    return tiny_encoder(EncoderConfig(max_rationale_tokens=2, cache=False, query_instruction="Find."))


def test_requests_from_many_threads_share_model_calls(tiny):
    batcher = MicroBatcher(tiny, max_texts=64, max_wait_s=0.3)
    texts = [f"text number {i}" for i in range(6)]
    results: dict[int, np.ndarray] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, batcher.encode([texts[i]], "document").vectors[0]))
               for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    batcher.close()
    np.testing.assert_allclose(np.array([results[i] for i in range(6)]), tiny.encode(texts).vectors, atol=1e-5)
    assert batcher.stats.requests == 6 and batcher.stats.calls < 6 and batcher.stats.largest > 1


def test_each_role_is_one_call_with_its_own_instruction(tiny):
    batcher = MicroBatcher(tiny, max_wait_s=0.3)
    doc, query = batcher.submit(["same text"], "document"), batcher.submit(["same text"], "query")
    doc_vectors, query_vectors = doc.result().vectors, query.result().vectors
    batcher.close()  # the encoder is not shared between threads: compare once the batcher is done
    np.testing.assert_allclose(doc_vectors, tiny.encode(["same text"], role="document").vectors, atol=1e-5)
    np.testing.assert_allclose(query_vectors, tiny.encode(["same text"], role="query").vectors, atol=1e-5)
    assert batcher.stats.calls == 2 and batcher.stats.largest == 1


def test_close_finishes_queued_work_then_refuses(tiny):
    batcher = MicroBatcher(tiny, max_wait_s=0.5)
    pending = batcher.submit(["queued before close"], "document")
    batcher.close()
    assert pending.result(timeout=30).vectors.shape == (1, tiny.dimension)
    with pytest.raises(ShuttingDown, match="shutting down"):
        batcher.submit(["too late"], "document")


def test_an_error_reaches_its_requests_and_the_batcher_keeps_going(tiny):
    batcher = MicroBatcher(tiny)
    with pytest.raises(TypeError, match="texts\\[0\\] is int"):
        batcher.encode([123], "document")  # type: ignore[list-item]
    assert batcher.encode(["fine"], "document").vectors.shape == (1, tiny.dimension)
    batcher.close()


def test_inputs_texts_and_token_ids(monkeypatch):
    from serve_support import cl100k_offline

    ids = cl100k_offline(monkeypatch).encode("Bees dance.")
    assert input_texts("one") == ["one"] and input_texts(["a", "b"]) == ["a", "b"] and input_texts([]) == []
    assert input_texts(ids) == ["Bees dance."] and input_texts([ids, ids]) == ["Bees dance."] * 2
    with pytest.raises(RequestError, match="not cl100k_base tokens"):
        decode_tokens([[10**9]])


def test_base64_vectors_decode_as_the_openai_sdk_does():
    vectors = np.array([[0.25, -1.5, 3.0]], dtype=np.float32)
    body = embeddings_response(vectors, [4], "m", "base64")
    decoded = np.frombuffer(base64.b64decode(body["data"][0]["embedding"]), dtype="float32")
    assert decoded.tolist() == [0.25, -1.5, 3.0] and body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    assert embeddings_response(vectors, [4], "m", "float")["data"][0]["embedding"] == [0.25, -1.5, 3.0]
