"""Bad requests to `grace-rag serve` (issue 21, items 5, 7, 8, 12, 16): a clear 4xx, never a 500, nothing written.

Most cases run the real FastAPI application in process (Starlette's TestClient) over a copy of the
small index of this suite, with the tiny model the index was built with; the index folder must be
unchanged afterwards. What needs a real socket (a lying Content-Length, a busy port, --port 0)
runs `grace-rag serve` as a process.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from robustness_support import changes, refused, snapshot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from serve_support import GRACE_RAG, ServerProcess  # noqa: E402

KEY = "k3y"
AUTH = {"Authorization": f"Bearer {KEY}"}
bad_input = pytest.mark.bad_input


def post(client, path: str, body: dict | str):
    """POST ``body`` as JSON with ASCII escapes (how a client sends a lone surrogate: ``"\\ud800"``);
    a ``str`` is sent as it is (a nest too deep for Python's own JSON encoder)."""
    content = body if isinstance(body, str) else json.dumps(body)
    return client.post(path, content=content.encode(), headers={**AUTH, "Content-Type": "application/json"})


def nested(op: str, depth: int, mode: str = "hybrid") -> str:
    """A /search body whose filter nests ``depth`` groups: ``{"$not": {"$not": ... {"file_name": ...}}}``."""
    flt = ('{"' + op + '": ') * depth + '{"file_name": "volcanoes.txt"}' + "}" * depth
    return '{"query": "lava", "mode": "' + mode + '", "filters": ' + flt + "}"


@pytest.fixture
def client(work):
    """The app over ``work/ix`` with the tiny model, calibrated (so relevance is reported) with a known fit."""
    from fastapi.testclient import TestClient

    from grace_rag.score_calibration import ScoreCalibration
    from grace_rag.server.app import create_app
    from grace_rag.server.service import GraceService

    service = GraceService.for_index(work / "ix", device="cpu")
    service.calibration = ScoreCalibration(a=10.0, b=-5.0)
    before = snapshot(work / "ix")
    with TestClient(create_app(service, api_key=KEY), raise_server_exceptions=False) as test_client:
        test_client.service = service
        yield test_client
    assert not changes(before, snapshot(work / "ix"))


SEARCH_CASES = [
    ("filter-value-lone-surrogate", {"query": "lava", "filters": {"source": "\ud800"}}, "not valid UTF-8"),
    ("filter-key-lone-surrogate", {"query": "lava", "filters": {"\ud800": "x"}}, "a filter key is not valid UTF-8"),
    ("filter-in-list-lone-surrogate", {"query": "lava", "filters": {"source": {"$in": ["a", "\udfff"]}}},
     "not valid UTF-8"),
    ("filter-17-nested-not", nested("$not", 17), "16 levels deep"),
    ("filter-50-nested-not", nested("$not", 50), "16 levels deep"),
    ("filter-900-nested-not", nested("$not", 900), "16 levels deep"),
    ("filter-900-nested-and", nested("$and", 900), "16 levels deep"),
    ("filter-900-nested-or-lexical", nested("$or", 900, "lexical"), "16 levels deep"),
    ("filter-5000-nested-not", nested("$not", 5000), "could not be read as JSON (malformed, or nested too deeply)"),
    ("query-lone-surrogate", {"query": "lava \ud800"}, "query is not valid UTF-8"),
    ("query-lone-surrogate-lexical", {"query": "\udc80", "mode": "lexical"}, "query is not valid UTF-8"),
    ("mode-lone-surrogate", {"query": "lava", "mode": "\ud800"}, "unknown mode"),
    ("mode-unknown", {"query": "lava", "mode": "fuzzy"}, "unknown mode 'fuzzy'"),
    ("filter-unknown-key-lexical", {"query": "lava", "mode": "lexical", "filters": {"lang": "en"}},
     "unknown filter key 'lang'"),
    ("filter-not-an-object", {"query": "lava", "filters": ["source"]}, "filters"),
    ("filter-operator-unknown", {"query": "lava", "filters": {"position": {"$near": 1}}}, "unknown filter operator"),
]


@bad_input
@pytest.mark.parametrize("case", SEARCH_CASES, ids=[c[0] for c in SEARCH_CASES])
def test_bad_search_requests_are_400_not_500(client, case):
    _, body, fragment = case
    before = client.service.batcher.stats.calls
    reply = post(client, "/search", body)
    assert reply.status_code == 400, reply.text
    assert fragment in reply.json()["error"]["message"], reply.text
    assert client.service.batcher.stats.calls == before  # refused before the model was asked


EMBEDDING_CASES = [
    ("input-lone-surrogate", {"input": "\ud800"}, "input[0] is not valid UTF-8"),
    ("input-second-lone-surrogate", {"input": ["fine", "a\udcffb"]}, "input[1] is not valid UTF-8"),
    ("input-type-unknown", {"input": "x", "input_type": "passage"}, "input_type"),
]


@bad_input
@pytest.mark.parametrize("case", EMBEDDING_CASES, ids=[c[0] for c in EMBEDDING_CASES])
def test_bad_embedding_requests_are_400_not_500(client, case):
    _, body, fragment = case
    reply = post(client, "/v1/embeddings", body)
    assert reply.status_code == 400 and fragment in reply.json()["error"]["message"], reply.text


def test_sixteen_nested_groups_still_search(client):
    reply = post(client, "/search", nested("$and", 16, "lexical"))
    assert reply.status_code == 200, reply.text


# -- 5. relevance only from a calibrated cosine ----------------------------------------------------
@bad_input
def test_lexical_hits_get_no_relevance_and_the_model_is_not_asked(client):
    """Before, a BM25 score went through the cosine calibration: an unrelated chunk got relevance 0.9968."""
    before = client.service.batcher.stats.calls
    reply = client.post("/search", json={"query": "lava flows", "mode": "lexical", "k": 3}, headers=AUTH)
    assert reply.status_code == 200, reply.text
    hits = reply.json()["hits"]
    assert hits and all(hit["relevance"] is None and hit["dense_score"] is None for hit in hits)
    assert client.service.batcher.stats.calls == before  # lexical search never waits for the model


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_relevance_is_the_calibrated_cosine_of_the_dense_side(client, mode):
    calibration = client.service.calibration
    reply = client.post("/search", json={"query": "lava flows", "mode": mode, "k": 5}, headers=AUTH)
    assert reply.status_code == 200, reply.text
    for hit in reply.json()["hits"]:
        if hit["dense_score"] is None:  # found by the lexical side only: no cosine, no relevance
            assert hit["relevance"] is None
        else:
            assert hit["relevance"] == pytest.approx(calibration.relevance(hit["dense_score"]), abs=1e-4)
        if mode == "hybrid" and hit["dense_score"] is not None and hit["score"] != hit["dense_score"]:
            assert hit["relevance"] != pytest.approx(calibration.relevance(hit["score"]), abs=1e-4)


# -- 7. no docs page, schema behind the key -----------------------------------------------------------
@bad_input
@pytest.mark.parametrize("path, status", [("/docs", 404), ("/redoc", 404), ("/openapi.json", 401),
                                          ("/docs/oauth2-redirect", 404)])
def test_no_docs_page_and_no_schema_without_the_key(client, path, status):
    reply = client.get(path)
    assert reply.status_code == status, reply.text
    assert "cdn" not in reply.text.lower()


def test_the_schema_is_served_with_the_key(client):
    reply = client.get("/openapi.json", headers=AUTH)
    assert reply.status_code == 200 and "/search" in reply.json()["paths"]


# -- 16. a JSON body whatever its Content-Type ----------------------------------------------------------
@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", None])
def test_a_json_body_sent_as_form_or_text_is_read_as_json(client, content_type):
    headers = {**AUTH, **({"Content-Type": content_type} if content_type else {})}
    body = json.dumps({"query": "lava flows", "k": 1, "mode": "lexical"}).encode()
    reply = client.post("/search", content=body, headers=headers)
    assert reply.status_code == 200 and len(reply.json()["hits"]) == 1, reply.text


@bad_input
@pytest.mark.parametrize("body", [b"query=lava&k=3", b"", b"{'query': 'lava'}"])
def test_a_form_body_that_is_not_json_is_one_clear_400(client, body):
    reply = client.post("/search", content=body, headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["message"].startswith("invalid request:")


# -- 7. limits enforced before the body is read; 12. the port ----------------------------------------
@pytest.fixture(scope="module")
def live(built, tmp_path_factory):
    server = ServerProcess(["--index", str(built / "ix"), "--device", "cpu", "--max-body-mb", "0.01"],
                           tmp_path_factory.mktemp("live-home"))
    yield server
    server.stop()


def raw_request(port: int, head: bytes, body: bytes, timeout: float = 10.0) -> tuple[bytes, float]:
    """Send a request as raw bytes; (what came back until the server closed or ``timeout``, seconds taken)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head + body)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
                if b"\r\n\r\n" in data and b'"code":413' in data:
                    break
        except socket.timeout:
            pass
    return data, time.monotonic() - started


@bad_input
@pytest.mark.slow
@pytest.mark.parametrize("declared", ["5000000000", "10486", "99999999999999999999"])  # limit: 10,485 bytes
def test_a_declared_length_over_the_limit_is_413_at_once(live, declared):
    head = (f"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n\r\n").encode()
    data, seconds = raw_request(live.port, head, b'{"input": "a short one"}')
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    assert b"--max-body-mb" in data and seconds < 5


@bad_input
@pytest.mark.slow
def test_serve_on_a_busy_port_is_one_line_before_the_model_loads(work):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        started = time.monotonic()
        line = refused(["serve", "--index", "ix", "--port", str(port), "--device", "cpu"], 1,
                       f"cannot listen on 127.0.0.1:{port}", work)
        assert "--port" in line and time.monotonic() - started < 20


@bad_input
@pytest.mark.parametrize("host", ["no.such.host.invalid", "256.1.1.1"])
def test_serve_on_an_address_that_does_not_resolve_is_one_line(work, host):
    refused(["serve", "--index", "ix", "--host", host, "--port", "0", "--device", "cpu"], 1,
            f"cannot listen on {host}:0", work)


@pytest.mark.slow
def test_port_zero_announces_the_port_it_got(built, tmp_path):
    env = {"GRACE_RAG_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([GRACE_RAG, "serve", "--index", str(built / "ix"), "--port", "0", "--device", "cpu"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        banner = proc.stderr.readline()
        assert "grace-rag serve:" in banner and ":0" not in banner.rsplit(" ", 1)[-1], banner
        port = int(banner.strip().rsplit(":", 1)[-1])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()["status"] == "ok"
                break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("the announced port never answered")
    finally:
        proc.terminate()
        proc.wait(30)


# -- 7. one client cannot stall the others ------------------------------------------------------------------
def test_plan_call_takes_one_text_per_request_in_turn_within_the_budgets():
    from grace_rag.server.batching import plan_call

    assert plan_call([[1] * 10, [1]], max_texts=4, max_tokens=None) == [3, 1]
    assert plan_call([[500] * 10, [20]], max_texts=64, max_tokens=1024) == [2, 1]  # 500 + 20 + 500; a third 500 is over
    assert plan_call([[5000], [7]], max_texts=64, max_tokens=1024) == [1, 0]  # the first text goes, however long
    assert plan_call([[3, 3], [3, 3], [3, 3]], max_texts=5, max_tokens=None) == [2, 2, 1]
    assert plan_call([], max_texts=4, max_tokens=10) == []


class Recording:
    """A real encoder whose calls are recorded (role, number of texts) in order."""

    def __init__(self, encoder) -> None:
        self.encoder, self.calls = encoder, []

    def __getattr__(self, name):
        return getattr(self.encoder, name)

    def encode(self, texts, role="document"):
        self.calls.append((str(getattr(role, "value", role)), len(texts)))
        return self.encoder.encode(texts, role=role)


@bad_input
def test_a_request_of_many_long_texts_does_not_hold_back_a_query(model_dir):
    """The issue's case: 100 texts of 20,000 characters in one request; a search's query rides in the next call."""
    import numpy as np

    from grace_rag.config import EncoderConfig
    from grace_rag.indexes.service import load_encoder
    from grace_rag.server.batching import MicroBatcher

    encoder = Recording(load_encoder(str(model_dir), EncoderConfig(cache=False, max_rationale_tokens=2,
                                                                   max_input_tokens=64), "cpu"))
    tokenizer = encoder.backbone.tokenizer
    batcher = MicroBatcher(encoder, max_texts=64, max_tokens=256,
                           count_tokens=lambda texts: [len(tokenizer(t)["input_ids"]) for t in texts])
    finished: list[str] = []
    big_texts = [f"document {i} " + "lava flows down the mountain " * 700 for i in range(100)]
    big = batcher.submit(big_texts, "document")
    big.add_done_callback(lambda _: finished.append("big"))
    while not encoder.calls:  # the big request is being encoded
        time.sleep(0.001)
    query = batcher.submit(["where does lava flow?"], "query")
    query.add_done_callback(lambda _: finished.append("query"))
    vectors = big.result(timeout=300).vectors
    batcher.close()
    assert finished == ["query", "big"]
    assert query.result().vectors.shape == (1, encoder.dimension) and vectors.shape == (100, encoder.dimension)
    query_call = encoder.calls.index(("query", 1))
    assert query_call <= 2 and len(encoder.calls) > 20  # split into calls of at most 256 tokens (64 each)
    assert max(n for _, n in encoder.calls) <= 4
    np.testing.assert_allclose(vectors[:3], encoder.encoder.encode(big_texts[:3]).vectors, atol=1e-5)
