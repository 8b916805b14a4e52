"""GraceEncoder: texts -> rationales -> L2-normalised vectors, with a SQLite cache.

text → prompt (PromptBuilder) → rationale + pooled, normalised vector (Representer) → cache

Settings: the model's own (``grace_encoder.json`` or the built-in table) fill every
``EncoderConfig`` field the caller did not pass explicitly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from grace_rag.acceleration import convert, resolve_quantization
from grace_rag.cache import RationaleCache, text_key
from grace_rag.config import EncoderConfig, Quantization, Role, Writer, check_device, parse_choice
from grace_rag.errors import choice_error
from grace_rag.generation import GenerationSettings, RationaleGenerator
from grace_rag.models import DEFAULT_MODEL, Backbone, grace_home, load_backbone
from grace_rag.prompts import PromptBuilder, PromptIds
from grace_rag.representation import PoolSpec, Representer
from grace_rag.textio import check_text
from grace_rag.errors import ConfigError

logger = logging.getLogger(__name__)

FINGERPRINT_VERSION = 1


@dataclass
class Encoding:
    """Vectors (n, d) float32, L2-normalised, and the rationale behind each."""

    vectors: np.ndarray
    rationales: list[str]


def resolve_device(device: str) -> str:
    """'auto' -> cuda if available, else mps, else cpu; others validated and kept."""
    import torch

    device = check_device(device)
    if device != "auto":
        return check_available(device)
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def check_available(device: str) -> str:
    """``device`` if this PyTorch build and machine have it; else a ConfigError saying what to pass."""
    import torch

    if device.startswith("cuda"):
        if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
            raise ConfigError(f"device {device!r}: this PyTorch is a CPU-only build (no CUDA support); "
                              "use --device cpu, or install a CUDA build of PyTorch")
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            raise ConfigError(f"device {device!r}: {count} CUDA GPU(s) visible; use --device cpu or auto")
    if device == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps': Apple's Metal (MPS) is not available in this PyTorch or on this machine; "
                          "use --device cpu or auto")
    return device


def check_texts(texts: Any) -> list[str]:
    """A list of strings, or TypeError naming the first bad position."""
    if isinstance(texts, str):
        raise TypeError("expected a list of strings, got a single str; wrap it in a list: [text]")
    items = list(texts)
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
        check_text(text, f"texts[{i}]")
    return items


def make_generator(backend: str, model: str, backbone: Backbone, batch_size: int,
                   max_batch_tokens: int | None = None) -> RationaleGenerator:
    """The rationale generator for ``backend``: 'hf' (fused generation + pooling) or 'vllm'."""
    if backend == "hf":
        from grace_rag.hf_generation import HFGenerator

        return HFGenerator(backbone.model, backbone.tokenizer, batch_size, max_batch_tokens=max_batch_tokens)
    if backend == "vllm":
        from grace_rag.models import resolve
        from grace_rag.vllm_backend import VLLMGenerator

        return VLLMGenerator(str(resolve(model)), backbone.tokenizer)
    raise choice_error("backend", backend, ["hf", "vllm"])


class GraceEncoder:
    """A GRACE encoder over a causal LM: rationale first, then masked mean pooling."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        config: EncoderConfig | None = None,
        device: str = "auto",
        *,
        backbone: Backbone | None = None,
        generator: RationaleGenerator | None = None,
        cache: RationaleCache | None = None,
        backend: str = "hf",
    ) -> None:
        self.device = resolve_device(device)
        self.backbone = backbone or load_backbone(model, device=self.device)
        self.config = (config or EncoderConfig()).resolve(self.backbone.settings)
        quantization = resolve_quantization(self.config.quantization, self.backbone.model.device.type)
        if quantization is not self.config.quantization:  # "auto", decided for this machine
            self.config = self.config.with_changes(quantization=quantization)
        if quantization is not Quantization.NONE:
            self.backbone = dataclasses.replace(self.backbone, model=convert(self.backbone.model, self.config.quantization))
        self.model_name = self.backbone.name
        self.writer = self._writer_backbone(quantization)
        self.generator = generator or make_generator(backend, self.writer.name, self.writer, self.config.batch_size,
                                                     self.config.max_batch_tokens)
        tokenizer = self.backbone.tokenizer
        self.builders = {role: PromptBuilder(tokenizer, self.config.instruction(role), self.config.max_input_tokens) for role in Role}
        # with writer_input_tokens below max_input_tokens the writer reads a shorter prompt of the same text
        self.writer_builders = {role: PromptBuilder(tokenizer, self.config.instruction(role), self.config.writer_reads)
                                for role in Role} if self.config.writer_truncates else None
        self.pool_spec = PoolSpec(self.config.pooling, self.config.layer)
        self.representer = Representer(self.backbone.model, tokenizer, self.pool_spec, self.generator,
                                       self.config.batch_size, self.config.max_batch_tokens)
        self.settings = {role: GenerationSettings(
            max_new_tokens=self.config.rationale_tokens(role),
            temperature=self.config.temperature,
            top_p=self.config.top_p,
            seed=self.config.seed,
        ) for role in Role}
        self.fingerprint = self._fingerprint()
        self._cache = cache if cache is not None else (RationaleCache(grace_home() / "cache.sqlite") if self.config.cache else None)

    def _writer_backbone(self, quantization: Quantization) -> Backbone:
        """The model that writes rationales: this one, or with ``writer="base"`` the untrained model it
        derives from (loaded once more, in the same number format; the same model when there is none)."""
        base = self.backbone.base_model
        if self.config.writer is not Writer.BASE or base is None or base == self.backbone.name:
            return self.backbone
        writer = load_backbone(base, device=self.device)
        if writer.tokenizer.get_vocab() != self.backbone.tokenizer.get_vocab():
            raise ConfigError(f"writer='base': the base model {base!r} has another tokenizer than "
                              f"{self.backbone.name!r}; use writer='model'")
        if quantization is not Quantization.NONE:
            writer = dataclasses.replace(writer, model=convert(writer.model, quantization))
        return writer

    @classmethod
    def from_backbone(cls, backbone: Backbone, config: EncoderConfig | None = None, **kwargs: Any) -> GraceEncoder:
        """Wrap an already loaded model + tokenizer (tests, the trainer)."""
        return cls(model=backbone.name, config=config, device=str(backbone.model.device), backbone=backbone, **kwargs)

    @property
    def untrained_base(self) -> str:
        """The untrained model these weights derive from (the model itself when it is not trained)."""
        return self.backbone.base_model or self.backbone.name

    def without_rationales(self) -> GraceEncoder:
        """This encoder with no rationale for either role (same weights, no reload): the text alone."""
        config = self.config.with_changes(max_rationale_tokens=0, query_rationale_tokens=0)
        return GraceEncoder.from_backbone(self.backbone, config, cache=self._cache)

    @property
    def dimension(self) -> int:
        return int(self.backbone.model.config.hidden_size)

    def _fingerprint(self) -> str:
        tokenizer = self.backbone.tokenizer
        template = getattr(tokenizer, "chat_template", None) or ""
        payload = {
            "version": FINGERPRINT_VERSION,
            "weights": self.backbone.weights_id,
            "dtype": str(self.backbone.model.dtype),
            "template": hashlib.sha256(str(template).encode()).hexdigest(),
            "settings": self.config.identity(),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]

    # -- public API -------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], role: Role | str = Role.DOCUMENT) -> Encoding:
        """Rationales and unit vectors for ``texts`` (empty/blank texts: zero vector, "" rationale)."""
        role = parse_choice(Role, role, "role")
        items = check_texts(texts)
        vectors = np.zeros((len(items), self.dimension), dtype=np.float32)
        rationales = [""] * len(items)
        keys = {i: text_key(t) for i, t in enumerate(items) if t.strip()}
        known = self._cache.get_many(self.fingerprint, role.value, list(set(keys.values()))) if self._cache else {}
        todo = {}  # key -> text, deduplicated
        for i, key in keys.items():
            if key not in known:
                todo[key] = items[i]
        if todo:
            known.update(self._compute(list(todo.items()), role))
        for i, key in keys.items():
            rationales[i], vectors[i] = known[key]
        return Encoding(vectors=vectors, rationales=rationales)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts, Role.QUERY).vectors

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts, Role.DOCUMENT).vectors

    def explain(self, texts: Sequence[str], role: Role | str = Role.DOCUMENT) -> list[str]:
        """The rationale the model writes for each text (what its vector is built from)."""
        return self.encode(texts, role).rationales

    # -- internals --------------------------------------------------------------------------
    def prompts(self, texts: Sequence[str], role: Role) -> tuple[list[PromptIds], list[PromptIds] | None]:
        """The prompts whose states are pooled, and what the writer reads when it reads less of each text
        (``writer_input_tokens``; else None: the writer reads the same prompts)."""
        prompts = [self.builders[role].build(text) for text in texts]
        if self.writer_builders is None or self.settings[role].max_new_tokens == 0:
            return prompts, None
        return prompts, [self.writer_builders[role].build(text) for text in texts]

    def _compute(self, todo: list[tuple[str, str]], role: Role) -> dict[str, tuple[str, np.ndarray]]:
        prompts, writer_prompts = self.prompts([text for _, text in todo], role)
        with self._progress(len(prompts)) as bar:
            rationales, vectors = self.representer.represent(prompts, self.settings[role], progress=bar.update,
                                                             writer_prompts=writer_prompts)
        array = vectors.numpy().astype(np.float32, copy=False)  # (n, D)
        result = {key: (r.text, array[i]) for i, ((key, _), r) in enumerate(zip(todo, rationales))}
        if self._cache is not None:
            self._cache.put_many(self.fingerprint, role.value, [(k, rat, vec) for k, (rat, vec) in result.items()])
        return result

    def _progress(self, total: int) -> Any:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc="encoding", unit="text", disable=not self.config.show_progress)

    def __repr__(self) -> str:
        return f"GraceEncoder(model={self.model_name!r}, dimension={self.dimension}, fingerprint={self.fingerprint[:12]!r})"
