"""OpenAI's embeddings API shapes: the request, its inputs (text or token ids) and the response.

What the clients send (openai 1.x+, LangChain ``OpenAIEmbeddings``, LlamaIndex
``OpenAIEmbedding``): ``input`` as a string, a list of strings, or token ids (LangChain by
default tokenises with tiktoken's ``cl100k_base`` and sends lists of ints); ``encoding_format``
``"base64"`` (the openai SDK asks for it unless told otherwise and decodes it itself) or
``"float"``; ``dimensions`` only when the user sets it; ``model`` is whatever name the client
was given (the server answers with its own model whatever it is called).
"""

from __future__ import annotations

import base64
import functools
import os
from collections.abc import Sequence
from typing import Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from grace_rag.errors import GraceError
from grace_rag.tiktoken_files import bundled_tiktoken_cache, seed_tiktoken_cache  # noqa: F401 (re-exported)

#: what ``input`` may hold: one text, texts, one token-id sequence, token-id sequences
EmbeddingInput = Union[str, list[str], list[int], list[list[int]]]  # noqa: UP007


class RequestError(GraceError):
    """A request the server cannot serve as sent (answered with HTTP 400)."""


class EmbeddingsRequest(BaseModel):
    """``POST /v1/embeddings``: OpenAI's fields plus ``input_type`` (which instruction to encode with)."""

    model_config = ConfigDict(extra="forbid")

    input: EmbeddingInput = Field(description="A text, a list of texts, or cl100k_base token ids.")
    model: str = Field(default="", description="Any name: the server always uses its own model.")
    encoding_format: Literal["float", "base64"] = Field(default="float")
    dimensions: int | None = Field(default=None, description="Must equal the model's dimension if given.")
    user: str | None = Field(default=None, description="Accepted and ignored.")
    input_type: Literal["query", "document"] = Field(
        default="document", description="grace-rag extension: encode with the query or the document instruction.")


@functools.lru_cache(maxsize=1)
def cl100k() -> object:
    """tiktoken's ``cl100k_base``, offline if need be: from tiktoken's cache, else the copy llama-index-core ships."""
    import tiktoken

    bundled = bundled_tiktoken_cache()
    if "TIKTOKEN_CACHE_DIR" not in os.environ and bundled is not None:
        os.environ["TIKTOKEN_CACHE_DIR"] = str(bundled)  # what llama-index does for its own tokenizer
    return tiktoken.get_encoding("cl100k_base")


def decode_tokens(sequences: Sequence[Sequence[int]]) -> list[str]:
    """Token-id inputs back to text (they are cl100k_base ids: what OpenAI embedding clients tokenise with)."""
    try:
        encoding = cl100k()
    except Exception as exc:  # no tiktoken, or no cl100k_base file offline
        raise RequestError(
            f"token-id input needs tiktoken's cl100k_base, which could not be loaded ({type(exc).__name__}); "
            "send text instead (LangChain: OpenAIEmbeddings(check_embedding_ctx_length=False))"
        ) from None
    try:
        return [encoding.decode(list(ids)) for ids in sequences]  # type: ignore[attr-defined]
    except (KeyError, ValueError, OverflowError) as exc:
        raise RequestError(f"input holds token ids that are not cl100k_base tokens ({exc})") from None


def input_texts(value: EmbeddingInput) -> list[str]:
    """The texts an ``input`` stands for (token ids decoded)."""
    if isinstance(value, str):
        return [value]
    if not value:
        return []
    if all(isinstance(item, str) for item in value):
        return list(value)  # type: ignore[arg-type]
    if all(isinstance(item, int) for item in value):
        return decode_tokens([value])  # type: ignore[list-item]
    return decode_tokens(value)  # type: ignore[arg-type]


def encode_vector(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    """A vector as JSON floats, or as base64 of little-endian float32 (how the openai SDK decodes it)."""
    if encoding_format == "base64":
        return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]


def embeddings_response(vectors: np.ndarray, tokens: Sequence[int], model: str, encoding_format: str) -> dict:
    """OpenAI's ``CreateEmbeddingResponse``."""
    data = [{"object": "embedding", "index": i, "embedding": encode_vector(v, encoding_format)} for i, v in enumerate(vectors)]
    used = int(sum(tokens))
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": used, "total_tokens": used}}
