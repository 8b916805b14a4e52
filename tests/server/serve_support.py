"""A real `grace-rag serve` process for the server tests: start it on a free port, wait until healthy, stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

GRACE_RAG = str(Path(sys.executable).with_name("grace-rag"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``grace-rag serve ARGS`` in a subprocess; ``url`` once it answers /health."""

    def __init__(self, args: list[str], home: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "GRACE_RAG_HOME": str(home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
        self.log = home / f"serve-{self.port}.log"
        home.mkdir(parents=True, exist_ok=True)
        self._log = self.log.open("w")
        self.proc = subprocess.Popen([GRACE_RAG, "serve", "--port", str(self.port), *args], env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_healthy()

    def _wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"grace-rag serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"grace-rag serve did not become healthy in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send ``sig`` and wait for the process to exit; its exit code (uvicorn re-raises the signal
        after a clean shutdown, so a clean stop by SIGTERM exits with -SIGTERM)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def stopped_cleanly(server: ServerProcess) -> bool:
    """Stopped by SIGTERM after uvicorn's graceful shutdown (the model released in the app's shutdown)."""
    code = server.stop()
    return code in (0, -signal.SIGTERM) and "Application shutdown complete" in server.output()


def cl100k_offline(monkeypatch):
    """Point tiktoken at llama-index-core's copy of its files (this machine is offline); cl100k_base."""
    import tiktoken

    from grace_rag.server.openai_api import bundled_tiktoken_cache

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(bundled_tiktoken_cache()))
    return tiktoken.get_encoding("cl100k_base")
