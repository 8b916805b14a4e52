"""The HTTP API of `grace-rag serve` (FastAPI): OpenAI-compatible embeddings, search, health and info.

Errors use OpenAI's shape, ``{"error": {"message", "type", "code"}}``, so OpenAI clients show
the message: 400 for a request that breaks a rule or a limit, 401 for a missing or wrong
bearer token, 413 for a body over the size limit (answered from the declared length, before
any of the body is read), 503 while shutting down. A POST body is read as JSON whatever its
Content-Type (``curl -d`` sends form encoding). There is no interactive ``/docs`` page (it would
load JavaScript from a CDN); the OpenAPI schema is at ``/openapi.json``, behind the API key.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

try:
    from fastapi import Depends, FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, ConfigDict, Field
    from starlette.exceptions import HTTPException
except ImportError:  # pragma: no cover - exercised by a test that hides the package
    raise ImportError("grace-rag serve needs FastAPI and uvicorn: pip install 'grace-rag[serve]'") from None

from grace_rag.errors import GraceError
from grace_rag.textio import check_text
from grace_rag.server.batching import ShuttingDown
from grace_rag.server.openai_api import EmbeddingsRequest, RequestError, embeddings_response, input_texts
from grace_rag.indexes.fusion import DEFAULT_MODE
from grace_rag.server.service import GraceService


class SearchRequest(BaseModel):
    """``POST /search``: the arguments of ``grace-rag query``, with the same defaults and the same checks."""

    model_config = ConfigDict(extra="forbid")

    query: str
    k: int = Field(default=5, ge=1, description="Number of hits (grace-rag query -k).")
    mode: str = Field(default=DEFAULT_MODE.value, description="dense, lexical or hybrid (--mode).")
    fusion: str | None = Field(default=None, description="Hybrid fusion: rrf or weighted (--fusion; default weighted).")
    alpha: float | None = Field(default=None, description="Weight of the dense side in weighted fusion (--alpha).")
    where: list[str] | None = Field(default=None, description="Filters as --where takes them: [\"KEY=VALUE\", \"KEY>=N\", ...].")
    filters: dict[str, Any] | None = Field(default=None, description="Filters as a Mongo-style dict: {\"key\": {\"$gte\": 2}}.")
    explain: bool = Field(default=False, description="Include the query's and each hit's rationale (--explain).")

    def search_arguments(self) -> dict[str, Any]:
        """``where``, ``mode`` and ``fusion`` for ``Retriever.search``, parsed as `grace-rag query` parses them."""
        from grace_rag.indexes.filters import parse_filter
        from grace_rag.indexes.fusion import FusionConfig, parse_mode
        from grace_rag.indexes.service import parse_where

        if self.where is not None and self.filters is not None:
            raise RequestError("send filters either as where (a list of KEY=VALUE strings) or as filters "
                               "(a dict), not both")
        where = parse_where(self.where) if self.where is not None else parse_filter(self.filters)
        return {"where": where, "mode": parse_mode(self.mode), "fusion": FusionConfig.from_options(self.fusion, self.alpha)}


class AuthError(GraceError):
    """A missing or wrong bearer token."""


def error(status: int, message: str, kind: str = "invalid_request_error", headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status, headers=headers)


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is answered 413 before it reaches the app."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) <= self.max_bytes:
            return await self.app(scope, receive, send)
        if length is not None and length.isdigit():  # declared too large: answered before reading any of it
            response = self.too_large()
            return await response(scope, receive, send)
        body, more = b"", True  # no (or an unreadable) declared length: read at most max_bytes
        while more and len(body) <= self.max_bytes:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if len(body) > self.max_bytes:
            response = self.too_large()
            return await response(scope, receive, send)

        async def replay() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def too_large(self) -> JSONResponse:
        return error(413, f"the request body is over {self.max_bytes} bytes (--max-body-mb); send fewer or shorter texts",
                     headers={"Connection": "close"})


class JsonBody:
    """ASGI middleware: a POST body is JSON whatever Content-Type says (``curl -d`` sends form encoding)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST":
            headers = [(k, v) for k, v in scope.get("headers") or [] if k != b"content-type"]
            scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)


def validation_message(errors: list[dict[str, Any]]) -> str:
    """One line for pydantic's errors: each field once, the ``input`` union in words."""
    problems: dict[str, str] = {}
    for e in errors:
        if e["type"] == "json_invalid":
            return "the body is not valid JSON"
        field = str(e["loc"][1]) if len(e["loc"]) > 1 else "body"
        message = "must be a string, a list of strings, or token ids (a list of ints or of lists of ints)" if field == "input" else e["msg"]
        problems.setdefault(field, message)
    return "; ".join(f"{field}: {message}" for field, message in problems.items())


def _check_texts(texts: list[str], service: GraceService, what: str) -> None:
    limits = service.limits
    if len(texts) > limits.max_inputs:
        raise RequestError(f"{what} has {len(texts)} texts; this server takes at most {limits.max_inputs} per request (--max-inputs)")
    for i, text in enumerate(texts):
        check_text(text, f"{what}[{i}]" if len(texts) > 1 or what == "input" else what)
        if len(text) > limits.max_text_chars:
            raise RequestError(f"{what}[{i}] has {len(text)} characters; the limit is {limits.max_text_chars} (--max-text-chars)")


def create_app(service: GraceService, api_key: str | None = None) -> FastAPI:
    """The FastAPI application over a started :class:`GraceService` (closed when the app shuts down)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(service.close)

    app = FastAPI(title="grace-rag", summary="GRACE embeddings and search", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(JsonBody)
    app.add_middleware(BodyLimit, max_bytes=service.limits.max_body_bytes)  # added last: runs first
    _add_error_handlers(app)
    authorised = Depends(_bearer_check(api_key))

    @app.get("/openapi.json", dependencies=[authorised], include_in_schema=False)
    async def schema() -> dict:
        return app.openapi()

    async def counted() -> AsyncIterator[None]:
        service.in_flight += 1
        try:
            yield
        finally:
            service.in_flight -= 1

    _add_work_routes(app, service, [authorised, Depends(counted)])
    _add_status_routes(app, service, [authorised])
    return app


def _bearer_check(api_key: str | None) -> Any:
    """A dependency refusing requests without ``Authorization: Bearer <api_key>`` (none when no key is set)."""

    def authorised(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise AuthError("missing or wrong API key; send the header 'Authorization: Bearer <key>'")

    return authorised


def _add_work_routes(app: FastAPI, service: GraceService, guards: list[Any]) -> None:
    @app.post("/v1/embeddings", dependencies=guards)
    async def embeddings(body: EmbeddingsRequest) -> dict:
        texts = input_texts(body.input)
        _check_texts(texts, service, "input")
        if body.dimensions is not None and body.dimensions != service.encoder.dimension:
            raise RequestError(f"this model makes {service.encoder.dimension}-dimensional vectors; "
                               f"dimensions={body.dimensions} is not supported (leave it out)")
        encoded = await service.embed(texts, body.input_type) if texts else None
        vectors = encoded.vectors if encoded else []
        return embeddings_response(vectors, encoded.tokens if encoded else [], service.encoder.model_name, body.encoding_format)

    @app.post("/search", dependencies=guards)
    async def search(body: SearchRequest) -> dict:
        if not body.query.strip():
            raise RequestError("query is empty; send the text to search for")
        _check_texts([body.query], service, "query")
        if body.k > service.limits.max_k:
            raise RequestError(f"k={body.k} is over this server's limit of {service.limits.max_k} (--max-k)")
        return await service.search(body.query, body.k, explain=body.explain, **body.search_arguments())


def _add_status_routes(app: FastAPI, service: GraceService, guards: list[Any]) -> None:
    @app.get("/v1/models", dependencies=guards)
    async def models() -> dict:
        return {"object": "list", "data": [{"id": service.encoder.model_name, "object": "model", "owned_by": "grace-rag"}]}

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "in_flight": service.in_flight}

    @app.get("/info", dependencies=guards)
    async def info() -> dict:
        return await asyncio.to_thread(service.info)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(400, f"invalid request: {validation_message(exc.errors())}")

    @app.exception_handler(AuthError)
    async def unauthorised(request: Request, exc: AuthError) -> JSONResponse:
        return error(401, str(exc), "authentication_error", {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(ShuttingDown)
    async def stopping(request: Request, exc: ShuttingDown) -> JSONResponse:
        return error(503, str(exc), "server_error")

    @app.exception_handler(GraceError)
    async def refused(request: Request, exc: GraceError) -> JSONResponse:
        return error(400, str(exc))

    @app.exception_handler(HTTPException)
    async def http(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":  # FastAPI's json.loads failed
            return error(400, "invalid request: the body could not be read as JSON (malformed, or nested too deeply)")
        return error(exc.status_code, str(exc.detail))
