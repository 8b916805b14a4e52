"""Prompts: text -> chat-formatted token ids, and where the system prefix ends.

The pooled region starts right after the system prefix (method.md §1): the prefix length is
computed from the chat template itself by templating a sentinel user message and locating
where the user content begins — never from a separator string inside the text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from grace_rag.errors import ConfigError

logger = logging.getLogger(__name__)

_SENTINEL = "\u2063GRACE_USER_CONTENT\u2063"

#: Format for tokenizers without a chat template (documented in the README).
PLAIN_FORMAT = "{instruction}\n\nText:\n{text}\n\nAnalysis:\n"


@dataclass(frozen=True)
class PromptIds:
    """One prompt as token ids; tokens at positions >= ``pool_start`` are pooled."""

    input_ids: list[int]
    pool_start: int


class TemplateStyle:
    """How the instruction is placed: as a system message, inside the user turn, or plain text."""

    SYSTEM = "system"
    USER = "user"  # template has no system role: instruction prepended to the user message
    PLAIN = "plain"  # tokenizer has no chat template


def render(tokenizer: Any, instruction: str, text: str, style: str) -> str:
    """The prompt string P(x) for ``text`` under ``style``."""
    if style == TemplateStyle.PLAIN:
        return PLAIN_FORMAT.format(instruction=instruction, text=text)
    if style == TemplateStyle.SYSTEM:
        messages = [{"role": "system", "content": instruction}, {"role": "user", "content": text}]
    else:
        messages = [{"role": "user", "content": f"{instruction}\n\n{text}"}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def detect_style(tokenizer: Any, instruction: str) -> str:
    """SYSTEM if the template renders a system message containing the instruction, else USER/PLAIN."""
    if not getattr(tokenizer, "chat_template", None):
        return TemplateStyle.PLAIN
    try:
        rendered = render(tokenizer, instruction, _SENTINEL, TemplateStyle.SYSTEM)
    except Exception:  # templates without a system role raise (e.g. Gemma's)
        return TemplateStyle.USER
    if instruction in rendered and _SENTINEL in rendered:
        return TemplateStyle.SYSTEM
    return TemplateStyle.USER


def _encode(tokenizer: Any, prompt: str) -> list[int]:
    return tokenizer(prompt, add_special_tokens=False)["input_ids"]


def prefix_length(tokenizer: Any, instruction: str, style: str) -> tuple[str, int]:
    """(prefix string, number of tokens before the user content) for this template.

    Templates a sentinel user message; the prefix is everything before the sentinel. Its token
    count is the number of tokens that end at or before the sentinel's first character (fast
    tokenizers' offset mapping; a token straddling the boundary is pooled, so no user text is
    ever dropped), else the length of the tokenised prefix string.
    """
    rendered = render(tokenizer, instruction, _SENTINEL, style)
    cut = rendered.index(_SENTINEL)
    prefix = rendered[:cut]
    try:
        offsets = tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    except (NotImplementedError, TypeError, KeyError):  # slow tokenizers have no offsets
        return prefix, len(_encode(tokenizer, prefix))
    return prefix, sum(1 for _, end in offsets if end <= cut)


class PromptBuilder:
    """Builds :class:`PromptIds` for texts of one role (one instruction)."""

    def __init__(self, tokenizer: Any, instruction: str, max_input_tokens: int) -> None:
        if not instruction.strip():
            raise ConfigError("the instruction (system prompt) must not be empty")
        self.tokenizer = tokenizer
        self.instruction = instruction
        self.max_input_tokens = max_input_tokens
        self.style = detect_style(tokenizer, instruction)
        self.prefix, self.pool_start = prefix_length(tokenizer, instruction, self.style)
        self._warned = False

    def truncate(self, text: str) -> str:
        """Cut ``text`` to ``max_input_tokens`` tokens (warning once per builder)."""
        ids = _encode(self.tokenizer, text)
        if len(ids) <= self.max_input_tokens:
            return text
        if not self._warned:
            logger.warning(
                "input text of %d tokens truncated to max_input_tokens=%d (further truncations not reported)",
                len(ids),
                self.max_input_tokens,
            )
            self._warned = True
        return self.tokenizer.decode(ids[: self.max_input_tokens])

    def build(self, text: str) -> PromptIds:
        prompt = render(self.tokenizer, self.instruction, self.truncate(text), self.style)
        ids = _encode(self.tokenizer, prompt)
        if not prompt.startswith(self.prefix):
            raise ConfigError("the chat template renders a different prefix per text; cannot locate the system prompt")
        return PromptIds(input_ids=ids, pool_start=self.pool_start)
