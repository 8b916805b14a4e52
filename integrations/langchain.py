"""LangChain adapter: ``GraceEmbeddings``, an ``Embeddings`` whose vectors come from GRACE rationales."""

from __future__ import annotations

from typing import Any

try:
    from langchain_core.embeddings import Embeddings
    from langchain_core.runnables.config import run_in_executor
except ImportError:  # pragma: no cover - exercised by a test that hides the package
    raise ImportError(
        "grace_rag.integrations.langchain needs LangChain: pip install 'grace-rag[frameworks]'"
    ) from None
from pydantic import ConfigDict, Field, PrivateAttr, create_model

from grace_rag.config import EncoderConfig
from grace_rag.integrations._encoder import (
    CACHE_FOLDER_HELP, DEVICE_HELP, adopt, build_encoder, check_against, config_as_settings, config_fields,
    hf_settings, merge_settings, setting_names,
)
from grace_rag.models import DEFAULT_MODEL

#: GraceEmbeddings' declared settings: every EncoderConfig field (None = the encoder's default)
_GraceEmbeddingsSettings = create_model("_GraceEmbeddingsSettings", __module__=__name__, **config_fields())


class GraceEmbeddings(_GraceEmbeddingsSettings, Embeddings):  # type: ignore[misc,valid-type]
    """GRACE embeddings for LangChain.

    Takes ``HuggingFaceEmbeddings``' arguments: ``model_name`` (or ``model``): an alias, model
    directory or .gguf file; ``model_kwargs``: ``device`` or any EncoderConfig setting;
    ``encode_kwargs``: ``batch_size``, ``prompt`` (the document instruction),
    ``normalize_embeddings=True`` (vectors are always unit length); ``query_encode_kwargs``:
    ``prompt`` (the query instruction); ``show_progress``; ``cache_folder``. Every
    EncoderConfig setting is also a keyword argument of its own (``max_rationale_tokens=64``).
    ``config=`` takes a whole EncoderConfig and ``encoder=`` an already built GraceEncoder.
    A setting given twice with different values, or an unknown argument, is an error.
    Pickling keeps every setting; the model is loaded again in the process that unpickles it.
    """

    model_config = ConfigDict(
        extra="forbid", arbitrary_types_allowed=True, protected_namespaces=(), populate_by_name=True,
        use_enum_values=True,
    )

    model_name: str = Field(default=DEFAULT_MODEL, alias="model", description="Model alias, directory or .gguf file.")
    device: str = Field(default="auto", description=DEVICE_HELP)
    cache_folder: str | None = Field(default=None, description=CACHE_FOLDER_HELP)
    model_kwargs: dict[str, Any] = Field(default_factory=dict, description="device or EncoderConfig settings.")
    encode_kwargs: dict[str, Any] = Field(default_factory=dict, description="batch_size, prompt, normalize_embeddings.")
    query_encode_kwargs: dict[str, Any] = Field(default_factory=dict, description="prompt, normalize_embeddings.")
    _encoder: Any = PrivateAttr(default=None)

    def __init__(self, *, encoder: Any = None, config: EncoderConfig | None = None, **data: Any) -> None:
        if encoder is not None:
            if "model_name" not in data and "model" not in data:
                data["model_name"] = str(encoder.model_name)
            data.setdefault("device", str(encoder.device))
        super().__init__(**data)
        settings, device = self._settings(config)
        if device is not None:
            self.device = device
        if encoder is not None:
            check_against(encoder, settings)
        else:
            encoder = build_encoder(self.model_name, settings, self.device, self.cache_folder)
        self._adopt(encoder)

    def _settings(self, config: EncoderConfig | None) -> tuple[dict[str, Any], str | None]:
        """(encoder settings, device or None) merged from every place they may be given."""
        own = {name: getattr(self, name) for name in setting_names()}
        if "device" in self.model_fields_set:
            own["device"] = self.device
        merged = merge_settings([
            ("config", config_as_settings(config)), ("keyword arguments", own),
            *hf_settings(self.model_kwargs, self.encode_kwargs, self.query_encode_kwargs),
        ])
        return merged, merged.pop("device", None)

    def _adopt(self, encoder: Any) -> None:
        adopt(self, encoder)

    @property
    def encoder(self) -> Any:
        """The GraceEncoder (loaded again from the settings in a process that unpickled this object)."""
        if self._encoder is None:
            settings, _ = self._settings(None)
            self._adopt(build_encoder(self.model_name, settings, self.device, self.cache_folder))
        return self._encoder

    @property
    def fingerprint(self) -> str:
        """The encoder's fingerprint: equal fingerprints mean interchangeable vectors."""
        return str(self.encoder.fingerprint)

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state["__pydantic_private__"] = {**(state.get("__pydantic_private__") or {}), "_encoder": None}
        return state

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per document (document instruction)."""
        return self.encoder.encode(list(texts), role="document").vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        """The query's vector (query instruction)."""
        return self.encoder.encode([text], role="query").vectors[0].tolist()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await run_in_executor(None, self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        return await run_in_executor(None, self.embed_query, text)

    def explain(self, texts: list[str]) -> list[str]:
        """The rationales the model writes for ``texts`` (what their vectors are built from)."""
        return self.encoder.explain(list(texts))
