"""The system-prefix length comes from the chat template, on several template styles."""

import pytest

from grace_rag.config import DEFAULT_INSTRUCTION
from grace_rag.prompts import PLAIN_FORMAT, PromptBuilder, TemplateStyle
from grace_rag.testing import tiny_tokenizer

TEXT = "Proteins fold into shapes."


@pytest.mark.parametrize(
    ("template", "style", "prefix_ends", "pool_begins"),
    [
        ("chatml", TemplateStyle.SYSTEM, "<|im_start|>user\n", TEXT + "<|im_end|>\n<|im_start|>assistant\n"),
        ("llama3", TemplateStyle.SYSTEM, "<|start_header_id|>user<|end_header_id|>\n\n", TEXT + "<|eot_id|>"),
        ("no_system", TemplateStyle.USER, DEFAULT_INSTRUCTION + "\n\n", TEXT + "<end_of_turn>\n<start_of_turn>model\n"),
        ("none", TemplateStyle.PLAIN, "Text:\n", TEXT + "\n\nAnalysis:\n"),
    ],
)
def test_pool_starts_exactly_at_user_content(template, style, prefix_ends, pool_begins):
    tok = tiny_tokenizer(template)
    builder = PromptBuilder(tok, DEFAULT_INSTRUCTION, max_input_tokens=512)
    prompt = builder.build(TEXT)
    assert builder.style == style
    prefix = tok.decode(prompt.input_ids[: prompt.pool_start])
    pooled = tok.decode(prompt.input_ids[prompt.pool_start :])
    assert prefix.endswith(prefix_ends)
    assert DEFAULT_INSTRUCTION in prefix  # the instruction is never pooled
    assert pooled.startswith(pool_begins)  # all of the user text is pooled


def test_prefix_length_is_the_same_for_every_text():
    tok = tiny_tokenizer("chatml")
    builder = PromptBuilder(tok, DEFAULT_INSTRUCTION, 512)
    a, b = builder.build("short"), builder.build("a much longer text about rivers and rain " * 5)
    assert a.pool_start == b.pool_start
    assert a.input_ids[: a.pool_start] == b.input_ids[: b.pool_start]


def test_plain_format_is_documented_shape():
    assert PLAIN_FORMAT.format(instruction="I", text="T") == "I\n\nText:\nT\n\nAnalysis:\n"


def test_truncation_warns_once(caplog):
    tok = tiny_tokenizer("chatml")
    builder = PromptBuilder(tok, DEFAULT_INSTRUCTION, max_input_tokens=5)
    with caplog.at_level("WARNING"):
        p1 = builder.build("the river flooded the valley after three days of heavy rain")
        builder.build("the quick brown fox jumps over the lazy dog again and again")
    assert sum("truncated" in r.message for r in caplog.records) == 1
    assert len(p1.input_ids) - p1.pool_start <= 5 + 10  # 5 text tokens + the template's suffix


def test_empty_instruction_is_a_config_error():
    from grace_rag.errors import ConfigError

    with pytest.raises(ConfigError):
        PromptBuilder(tiny_tokenizer("chatml"), "  ", 512)
