"""Rationale quality: is what a model writes readable, free of loops, about its own text, and useful?

Four figures per rationale, each a pure function of text (or of one forward pass):

- **repetition**: distinct word 3-grams / all word 3-grams (1.0 = no 3-gram repeats; a loop such as
  "estrogen estrogen estrogen" drives it towards 0). ``None`` for fewer than three words.
- **fluency**: perplexity of the rationale's tokens under the *untrained base model*, given the
  same prompt the rationale was written from. The base model's own greedy output scores ~1.5;
  gibberish scores in the hundreds. ``None`` for an empty rationale.
- **grounding**: the rationale alone as a BM25 query over the evaluated corpus; the reciprocal rank
  of the text it was written about (1.0 = its own text comes first; an empty rationale scores 0).
- **cut**: the rationale reached the length limit (no end-of-turn token before it; counted from
  the re-tokenised text, which has one token fewer than the budget when the model ended it).

``summarize`` turns the per-text figures into the columns ``grace-rag eval`` reports: mean
distinct-3-gram ratio, median perplexity, mean reciprocal rank, share cut, share empty.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from grace_rag.prompts import PromptIds

_WORD = re.compile(r"\w+", re.UNICODE)

#: reciprocal ranks below 1/GROUNDING_DEPTH count as 0 (the own text is not among the top hits)
GROUNDING_DEPTH = 1000


@dataclass(frozen=True)
class RationaleFigures:
    """The quality figures of one rationale (``None`` where a figure is undefined for it)."""

    distinct_3grams: float | None
    perplexity: float | None
    grounding_rr: float | None
    cut: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def words(text: str) -> list[str]:
    """Lower-cased word tokens (``\\w+``)."""
    return _WORD.findall(text.lower())


def distinct_ngram_ratio(text: str, n: int = 3) -> float | None:
    """Distinct word n-grams / all word n-grams of ``text``; ``None`` with fewer than ``n`` words."""
    tokens = words(text)
    grams = list(zip(*(tokens[i:] for i in range(n))))
    return len(set(grams)) / len(grams) if grams else None


def is_cut(token_count: int, limit: int) -> bool:
    """Whether a rationale of ``token_count`` text tokens used the whole budget of ``limit`` new tokens.

    A rationale that ends writes an end-of-turn token, which is part of the budget but not of its
    text: a finished rationale has at most ``limit - 1`` text tokens.
    """
    return limit > 0 and token_count >= limit


def grounding_ranks(rationales: Sequence[str], corpus: Sequence[str], own: Sequence[int]) -> list[float]:
    """Reciprocal rank of ``corpus[own[i]]`` when ``rationales[i]`` alone is a BM25 query over ``corpus``.

    An empty rationale (or one of stop words only) retrieves nothing and scores 0; ranks past
    ``GROUNDING_DEPTH`` score 0.
    """
    from grace_rag.evaluation.adapters import BM25Retriever

    if len(rationales) != len(own):
        raise ValueError("one own-document position per rationale is needed")
    retriever = BM25Retriever()
    retriever.index(list(corpus))
    out = [0.0] * len(rationales)
    asked = [i for i, r in enumerate(rationales) if words(r)]
    if not asked:
        return out
    positions, scores = retriever.search([rationales[i] for i in asked], min(GROUNDING_DEPTH, len(corpus)))
    for row, i in enumerate(asked):
        hits = [int(p) for p, s in zip(positions[row], scores[row]) if s > 0]
        out[i] = 1.0 / (hits.index(own[i]) + 1) if own[i] in hits else 0.0
    return out


@torch.inference_mode()
def perplexities(model: Any, tokenizer: Any, prompts: Sequence[PromptIds], rationales: Sequence[str],
                 batch_size: int = 8) -> list[float | None]:
    """Perplexity of each rationale's tokens under ``model``, given its prompt (``None`` when empty).

    The rationale text is tokenised again (without special tokens); its end-of-turn token is not
    scored, so a rationale cut at the limit and one that ended are scored alike.
    """
    from grace_rag.likelihood import forward_sequences
    from grace_rag.representation import pad_token_id

    ids = [tokenizer(r, add_special_tokens=False)["input_ids"] if r.strip() else [] for r in rationales]
    out: list[float | None] = [None] * len(rationales)
    rows = [i for i, seq in enumerate(ids) if seq]
    pad = pad_token_id(model, tokenizer)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        scored = forward_sequences(model, [prompts[i] for i in chunk], [ids[i] for i in chunk], pad)
        nll = -(scored.logp * scored.mask).sum(dim=1) / scored.mask.sum(dim=1)  # (n,)
        for i, value in zip(chunk, nll.tolist()):
            out[i] = math.exp(min(value, 50.0))
    return out


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(sum(kept) / len(kept)) if kept else None


def summarize(figures: Sequence[RationaleFigures], empty: int = 0) -> dict[str, float | None]:
    """The columns ``grace-rag eval`` reports for a model's document rationales.

    ``empty`` counts rationales that are empty strings (their figures are mostly ``None``).
    """
    ppl = [f.perplexity for f in figures if f.perplexity is not None]
    n = len(figures)
    return {
        "rationale_distinct3": _mean([f.distinct_3grams for f in figures]),
        "rationale_ppl": float(statistics.median(ppl)) if ppl else None,
        "rationale_grounding": _mean([f.grounding_rr for f in figures]),
        "rationale_cut": float(sum(f.cut for f in figures) / n) if n else None,
        "rationale_empty": float(empty / n) if n else None,
    }


def rationale_figures(texts: Sequence[str], rationales: Sequence[str], *, tokenizer: Any, limit: int,
                      fluency: Any | None = None, corpus: Sequence[str] | None = None,
                      own: Sequence[int] | None = None) -> list[RationaleFigures]:
    """Figures of each ``rationales[i]`` written about ``texts[i]``.

    ``fluency`` is a :class:`FluencyScorer` (None: no perplexity); grounding ranks ``texts[i]``'s
    position ``own[i]`` in ``corpus`` (default: the texts themselves, each its own position).
    """
    corpus = list(texts) if corpus is None else list(corpus)
    own = list(range(len(texts))) if own is None else list(own)
    ppl = fluency.perplexities(texts, rationales) if fluency is not None else [None] * len(texts)
    ranks = grounding_ranks(rationales, corpus, own) if len(corpus) > 1 else [None] * len(texts)
    counts = [len(tokenizer(r, add_special_tokens=False)["input_ids"]) if r else 0 for r in rationales]
    return [RationaleFigures(distinct_3grams=distinct_ngram_ratio(r), perplexity=p, grounding_rr=g,
                             cut=is_cut(c, limit))
            for r, p, g, c in zip(rationales, ppl, ranks, counts)]


class FluencyScorer:
    """Perplexity of rationales under an untrained base model, prompted as the rationale was."""

    def __init__(self, backbone: Any, instruction: str, max_input_tokens: int, batch_size: int = 8) -> None:
        from grace_rag.prompts import PromptBuilder

        self.backbone = backbone
        self.builder = PromptBuilder(backbone.tokenizer, instruction, max_input_tokens)
        self.batch_size = batch_size

    def perplexities(self, texts: Sequence[str], rationales: Sequence[str]) -> list[float | None]:
        prompts = [self.builder.build(t) for t in texts]
        return perplexities(self.backbone.model, self.backbone.tokenizer, prompts, rationales, self.batch_size)


class FluencyScorers:
    """One FluencyScorer per (untrained base model, instruction), loaded on first use."""

    def __init__(self) -> None:
        self._scorers: dict[tuple[str, str, int], FluencyScorer] = {}
        self._backbones: dict[str, Any] = {}

    def for_encoder(self, encoder: Any, role: Any = None) -> FluencyScorer:
        """The scorer for ``encoder``'s rationales of ``role`` (default: documents)."""
        from grace_rag.config import Role
        from grace_rag.models import load_backbone

        base = encoder.untrained_base
        config = encoder.config
        instruction = config.instruction(role or Role.DOCUMENT)
        read = config.writer_reads  # the prompt the rationale was written from
        key = (base, instruction, read)
        if key not in self._scorers:
            if base not in self._backbones:
                self._backbones[base] = (encoder.backbone if base == encoder.backbone.name
                                         else load_backbone(base, device=encoder.device))
            self._scorers[key] = FluencyScorer(self._backbones[base], instruction, read)
        return self._scorers[key]


def explain_figures(encoder: Any, texts: Sequence[str], role: Any = "document",
                    scorers: FluencyScorers | None = None) -> list[dict[str, Any]]:
    """What ``grace-rag explain --json`` prints: each text, its rationale and the rationale's figures.

    Grounding ranks each text among the texts given (None for a single text).
    """
    from grace_rag.config import Role, parse_choice

    role = parse_choice(Role, role, "role")
    rationales = encoder.explain(list(texts), role=role)
    scorer = (scorers or FluencyScorers()).for_encoder(encoder, role) if any(rationales) else None
    figures = rationale_figures(texts, rationales, tokenizer=encoder.backbone.tokenizer,
                                limit=encoder.config.rationale_tokens(role), fluency=scorer)
    return [{"text": t, "rationale": r, **f.to_dict()} for t, r, f in zip(texts, rationales, figures)]
