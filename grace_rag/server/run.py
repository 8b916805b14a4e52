"""Serve a GraceService with uvicorn until SIGINT/SIGTERM, letting requests in flight finish."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from grace_rag.config import EncoderConfig
from grace_rag.errors import ConfigError
from grace_rag.server.service import GraceService, ServeLimits

logger = logging.getLogger(__name__)


def build_service(index_dir: Path | None, model: str | None, device: str, limits: ServeLimits,
                  settings: EncoderConfig | None = None) -> GraceService:
    """The service for an index (its model and settings; explicit ``settings`` must match them), or,
    without one, embeddings from ``model`` with ``settings``."""
    if index_dir is not None:
        return GraceService.for_index(index_dir, device, limits, settings)
    from grace_rag.encoder import GraceEncoder
    from grace_rag.models import DEFAULT_MODEL

    return GraceService(GraceEncoder(model or DEFAULT_MODEL, config=settings, device=device), None, limits)


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (port 0: any free one), made before the model loads, so a busy
    port or a bad address is one line at once rather than an error after the load."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn chooses ("localhost": IPv4)
    try:
        infos = socket.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); pass another --host") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pass another --port "
                          "(--port 0 takes any free one)") from None
    sock.set_inheritable(True)
    return sock


def serve(service: GraceService, sock: socket.socket, api_key: str | None = None,
          shutdown_timeout: float = 30.0, log_level: str = "info") -> None:
    """Run the HTTP server in this process on ``sock`` (see :func:`listen`; blocks). On a stop signal, new
    connections are refused, requests in flight get up to ``shutdown_timeout`` seconds to finish, then
    the model is released."""
    try:
        import uvicorn
    except ImportError:  # pragma: no cover - fastapi is checked first, by create_app
        raise ImportError("grace-rag serve needs FastAPI and uvicorn: pip install 'grace-rag[serve]'") from None
    from grace_rag.server.app import create_app

    app = create_app(service, api_key)
    config = uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=shutdown_timeout,
                            access_log=log_level == "debug")
    uvicorn.Server(config).run(sockets=[sock])
