"""`grace-rag serve` as a real uvicorn process, called over HTTP: embeddings, search, limits, auth, batching."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from conftest import DOCS
from serve_support import GRACE_RAG, ServerProcess, cl100k_offline, stopped_cleanly

KEY = "test-secret"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def server(served_index, tmp_path_factory):
    proc = ServerProcess(["--index", str(served_index), "--api-key", KEY, "--max-inputs", "8", "--max-body-mb", "0.05",
                          "--max-k", "10", "--batch-wait-ms", "300", "--device", "cpu"], tmp_path_factory.mktemp("home"))
    yield proc
    assert stopped_cleanly(proc), proc.output()


def post(server, path, body, headers=AUTH):
    return httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=60)


def test_embeddings_are_the_python_api_vectors(server, index_encoder):
    texts = list(DOCS.values())
    reply = post(server, "/v1/embeddings", {"input": texts, "model": "anything"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    vectors = np.array([row["embedding"] for row in sorted(body["data"], key=lambda r: r["index"])])
    np.testing.assert_allclose(vectors, index_encoder.encode(texts, role="document").vectors, atol=1e-5)
    assert body["model"] == index_encoder.model_name and body["usage"]["prompt_tokens"] > 0


def test_base64_query_embeddings_decode_to_the_query_vectors(server, index_encoder):
    reply = post(server, "/v1/embeddings", {"input": "where are the flowers?", "encoding_format": "base64", "input_type": "query"})
    vector = np.frombuffer(base64.b64decode(reply.json()["data"][0]["embedding"]), dtype="<f4")
    expected = index_encoder.encode(["where are the flowers?"], role="query").vectors[0]
    np.testing.assert_allclose(vector, expected, atol=1e-5)
    assert not np.allclose(expected, index_encoder.encode(["where are the flowers?"]).vectors[0], atol=1e-3)


def test_token_id_input_is_decoded_as_cl100k_base(server, index_encoder, monkeypatch):
    ids = cl100k_offline(monkeypatch).encode(DOCS["bees"])
    reply = post(server, "/v1/embeddings", {"input": [ids]})
    np.testing.assert_allclose(reply.json()["data"][0]["embedding"], index_encoder.encode([DOCS["bees"]]).vectors[0], atol=1e-5)


def test_search_finds_the_document_with_rationales_and_filters(server):
    reply = post(server, "/search", {"query": DOCS["volcano"], "k": 2, "explain": True})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert len(body["hits"]) == 2 and body["hits"][0]["text"] == DOCS["volcano"]
    assert "query_rationale" in body and "rationale" in body["hits"][0]
    plain = post(server, "/search", {"query": DOCS["volcano"], "k": 1}).json()
    assert "rationale" not in plain["hits"][0] and "query_rationale" not in plain
    only = post(server, "/search", {"query": DOCS["volcano"], "k": 3, "filters": {"file_name": "bees.txt"}}).json()
    assert [hit["metadata"]["file_name"] for hit in only["hits"]] == ["bees.txt"]


def grace_rag_query(index, query: str, *options: str) -> dict:
    """What `grace-rag query --json` prints, run as its own process on the same index."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([GRACE_RAG, "query", query, "--index", str(index), "-k", "3", "--json", "--device", "cpu",
                           *options], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("body, options", [
    ({"alpha": 0.3}, ["--alpha", "0.3"]),
    ({"fusion": "rrf"}, ["--fusion", "rrf"]),
    ({"mode": "dense", "where": ["file_name=bees.txt"]}, ["--mode", "dense", "--where", "file_name=bees.txt"]),
    ({"mode": "lexical", "filters": {"file_name": {"$in": ["bees.txt", "volcano.txt"]}}},
     ["--mode", "lexical", "--where", 'file_name=["bees.txt", "volcano.txt"]']),
    ({"mode": "hybrid", "fusion": "weighted", "alpha": 0.9, "explain": True}, ["--alpha", "0.9", "--explain"]),
])
def test_search_takes_what_grace_rag_query_takes_and_answers_the_same(server, served_index, body, options):
    reply = post(server, "/search", {"query": "where do the flowers grow", "k": 3, **body})
    assert reply.status_code == 200, reply.text
    served = reply.json()
    expected = grace_rag_query(served_index, "where do the flowers grow", *options)
    assert {k: v for k, v in served.items() if k != "hits"} == {k: v for k, v in expected.items() if k != "hits"}
    assert [h["id"] for h in served["hits"]] == [h["id"] for h in expected["hits"]]
    for mine, theirs in zip(served["hits"], expected["hits"]):
        mine.pop("relevance", None)
        assert mine.keys() == theirs.keys()
        for key, value in theirs.items():
            assert mine[key] == (pytest.approx(value, abs=1e-5) if isinstance(value, float) else value), key


@pytest.mark.parametrize("body, message", [
    ({"mode": "both"}, "unknown mode 'both'; valid values are: dense, lexical, hybrid"),
    ({"fusion": "rrf", "alpha": 0.3}, "alpha weights the weighted fusion"),
    ({"alpha": 1.5}, "alpha must be between 0 and 1"),
    ({"where": ["file_name=bees.txt"], "filters": {"file_name": "bees.txt"}}, "not both"),
    ({"where": ["nonsense"]}, "KEY=VALUE"),
    ({"filters": {"lang": "en"}}, "unknown filter key 'lang'"),
])
def test_bad_search_options_are_the_errors_grace_rag_query_gives(server, body, message):
    reply = post(server, "/search", {"query": "bees", **body})
    assert reply.status_code == 400 and message in reply.json()["error"]["message"], reply.text


@pytest.mark.parametrize("path, body, status, message", [
    ("/v1/embeddings", {"input": ["t"] * 9}, 400, "at most 8 per request (--max-inputs)"),
    ("/v1/embeddings", {"input": ["x" * 20_001]}, 400, "--max-text-chars"),
    ("/v1/embeddings", {"input": ["t"] * 4 + ["x" * 15_000] * 4}, 413, "the request body is over"),
    ("/v1/embeddings", {"input": "t", "dimensions": 8}, 400, "dimensions=8 is not supported"),
    ("/v1/embeddings", {"input": 5}, 400, "input: must be a string, a list of strings, or token ids"),
    ("/v1/embeddings", {"input": "t", "temperature": 1}, 400, "temperature: Extra inputs are not permitted"),
    ("/search", {"query": "t", "k": 11}, 400, "k=11 is over this server's limit of 10"),
    ("/search", {"query": "  "}, 400, "query is empty"),
])
def test_limits_and_bad_requests_are_clear_4xx_errors(server, path, body, status, message):
    reply = post(server, path, body)
    assert reply.status_code == status and message in reply.json()["error"]["message"], reply.text


def test_a_body_that_is_not_json_is_a_400(server):
    reply = httpx.post(f"{server.url}/v1/embeddings", content=b"not json", headers={**AUTH, "content-type": "application/json"})
    assert reply.status_code == 400 and reply.json()["error"]["message"] == "invalid request: the body is not valid JSON"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}])
def test_a_missing_or_wrong_bearer_token_is_401(server, headers):
    for reply in (post(server, "/v1/embeddings", {"input": "t"}, headers), httpx.get(f"{server.url}/info", headers=headers)):
        assert reply.status_code == 401 and reply.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in reply.json()["error"]["message"]
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"  # health needs no token


def test_parallel_clients_are_all_answered_and_batched(server, index_encoder):
    before = httpx.get(f"{server.url}/info", headers=AUTH).json()["batching"]
    texts = [f"client number {i} asks about {word}" for i, word in enumerate(["bees", "lava", "money", "rain", "ice", "stars", "tea", "ships"])]
    with ThreadPoolExecutor(len(texts)) as pool:
        replies = list(pool.map(lambda text: post(server, "/v1/embeddings", {"input": text}), texts))
    assert [r.status_code for r in replies] == [200] * len(texts)
    vectors = np.array([r.json()["data"][0]["embedding"] for r in replies])
    np.testing.assert_allclose(vectors, index_encoder.encode(texts).vectors, atol=1e-5)
    after = httpx.get(f"{server.url}/info", headers=AUTH).json()["batching"]
    assert after["requests"] - before["requests"] == len(texts)
    assert after["calls"] - before["calls"] < len(texts) and after["largest_batch_requests"] > 1


def test_info_describes_model_index_and_limits(server, index_encoder):
    info = httpx.get(f"{server.url}/info", headers=AUTH).json()
    assert info["fingerprint"] == index_encoder.fingerprint and info["dimension"] == index_encoder.dimension
    assert info["index"]["chunks"] == len(DOCS) and info["limits"]["max_inputs"] == 8
    assert info["score_calibration"] is None  # the tiny model has no calibration
