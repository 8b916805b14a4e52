"""Integration: the embedded SmolLM2-135M-Instruct (loaded once per session)."""

import numpy as np
import pytest

from grace_rag.prompts import PromptBuilder

pytestmark = pytest.mark.integration

TEXTS = [
    "The mitochondria produce most of the cell's ATP through oxidative phosphorylation.",
    "Paris is the capital of France and is known for the Eiffel Tower.",
    "Regular aerobic exercise lowers the risk of heart disease.",
    "The Python programming language uses indentation to define code blocks.",
    "Volcanoes erupt when magma rises through cracks in the Earth's crust.",
    "Sourdough bread is leavened by wild yeast and lactic acid bacteria.",
    "The stock market fell sharply after the central bank raised interest rates.",
    "Honeybees communicate the location of flowers with a waggle dance.",
]
QUERIES = [
    "Which part of the cell makes energy in the form of ATP?",
    "What is France's capital city?",
    "Does cardio training help prevent heart problems?",
    "How does Python mark blocks of code?",
    "Why do volcanoes erupt?",
    "What makes sourdough rise?",
    "How did shares react to the rate hike?",
    "How do bees tell each other where flowers are?",
]


def test_pool_starts_after_the_smollm2_system_prompt(real_encoder):
    tok = real_encoder.backbone.tokenizer
    builder: PromptBuilder = real_encoder.builders[next(iter(real_encoder.builders))]
    prompt = builder.build("hello")
    assert tok.decode(prompt.input_ids[: prompt.pool_start]).endswith("<|im_end|>\n<|im_start|>user\n")
    assert tok.decode(prompt.input_ids[prompt.pool_start :]).startswith("hello<|im_end|>")


def test_rationales_are_non_empty_and_reproducible(real_encoder):
    first = real_encoder.explain(TEXTS[:3])
    second = real_encoder.explain(TEXTS[:3])
    assert all(r.strip() for r in first)
    assert first == second


def test_every_paraphrased_query_ranks_its_own_text_first(real_encoder):
    docs = real_encoder.encode_documents(TEXTS)
    queries = real_encoder.encode_queries(QUERIES)
    ranking = np.argmax(queries @ docs.T, axis=1)
    assert ranking.tolist() == list(range(len(TEXTS)))
