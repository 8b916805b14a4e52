"""Stopping `grace-rag serve` while a request is in flight: the request is answered, then the process exits."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import numpy as np
from conftest import DOCS
from serve_support import ServerProcess, stopped_cleanly


def test_sigterm_lets_the_request_in_flight_finish(served_index, index_encoder, tmp_path):
    # a long batching wait keeps the request in flight (queued for its model call) when the signal arrives
    server = ServerProcess(["--index", str(served_index), "--batch-wait-ms", "3000", "--device", "cpu"], tmp_path)
    replies: list[httpx.Response] = []
    client = threading.Thread(target=lambda: replies.append(
        httpx.post(f"{server.url}/v1/embeddings", json={"input": DOCS["bees"]}, timeout=60)))
    client.start()
    deadline = time.monotonic() + 30
    while httpx.get(f"{server.url}/health").json()["in_flight"] < 1:
        assert time.monotonic() < deadline, "the request never reached the server"
        time.sleep(0.05)
    server.proc.send_signal(signal.SIGTERM)
    client.join(60)
    assert replies and replies[0].status_code == 200, server.output()
    np.testing.assert_allclose(replies[0].json()["data"][0]["embedding"], index_encoder.encode([DOCS["bees"]]).vectors[0], atol=1e-5)
    assert stopped_cleanly(server), server.output()
    try:
        httpx.get(f"{server.url}/health", timeout=2)
        raise AssertionError("the server still answers after shutdown")
    except httpx.TransportError:
        pass


def test_a_missing_index_is_one_clear_line(tmp_path):
    from typer.testing import CliRunner

    from grace_rag.cli.app import app

    result = CliRunner().invoke(app, ["serve", "--index", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "no index at" in result.output and "Traceback" not in result.output
