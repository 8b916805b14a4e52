"""Rationale quality figures on hand-made rationales: a loop, gibberish, a copy of the text, an empty one."""

from __future__ import annotations

import math

import pytest
import torch

from grace_rag.config import EncoderConfig
from grace_rag.encoder import GraceEncoder
from grace_rag.evaluation.rationale_quality import (
    FluencyScorers,
    FluencyScorer,
    RationaleFigures,
    distinct_ngram_ratio,
    explain_figures,
    grounding_ranks,
    is_cut,
    perplexities,
    rationale_figures,
    summarize,
)
from grace_rag.prompts import PromptBuilder
from grace_rag.testing import tiny_backbone

CORPUS = [
    "Mitochondria produce ATP by oxidative phosphorylation in the inner membrane.",
    "The Treaty of Versailles ended the First World War in 1919.",
    "Coral reefs bleach when warm water makes the corals expel their algae.",
    "A transformer encoder attends to every token of its input sequence.",
]


def test_distinct_trigrams_of_a_loop_a_sentence_and_an_empty_text():
    assert distinct_ngram_ratio("estrogen estrogen estrogen estrogen estrogen") == pytest.approx(1 / 3)
    assert distinct_ngram_ratio("the cell makes energy from sugar") == 1.0
    # "a b a b a b": 3-grams (a,b,a) (b,a,b) (a,b,a) (b,a,b) -> 2 distinct of 4
    assert distinct_ngram_ratio("A b, a b. a B") == pytest.approx(0.5)
    assert distinct_ngram_ratio("") is None
    assert distinct_ngram_ratio("two words") is None


def test_grounding_copy_ranks_first_gibberish_and_empty_score_zero():
    ranks = grounding_ranks([CORPUS[2], "zxqv blorpt wugga", "", "treaty war 1919"], CORPUS, [2, 0, 1, 1])
    assert ranks[0] == 1.0  # a copy of the text finds its own text first
    assert ranks[1] == 0.0  # words found nowhere retrieve nothing
    assert ranks[2] == 0.0  # an empty rationale retrieves nothing
    assert ranks[3] == 1.0


def test_grounding_of_a_rationale_about_another_text_is_below_one():
    rank = grounding_ranks(["coral reefs bleach in warm water"], CORPUS, [0])[0]
    assert rank < 1.0


def test_cut_counts_a_rationale_that_used_the_whole_budget():
    assert is_cut(16, 16)
    assert not is_cut(15, 16)  # one token of the budget went to the end-of-turn token
    assert not is_cut(40, 0)  # no rationale asked: nothing is cut


def test_perplexity_is_exp_of_the_mean_token_nll_under_the_model():
    backbone = tiny_backbone(seed=3)
    builder = PromptBuilder(backbone.tokenizer, "Summarise.", 64)
    prompt = builder.build("The river flooded the valley.")
    rationale = "The valley flooded after rain."
    [ppl] = perplexities(backbone.model, backbone.tokenizer, [prompt], [rationale])
    ids = backbone.tokenizer(rationale, add_special_tokens=False)["input_ids"]
    full = torch.tensor([prompt.input_ids + ids])
    with torch.no_grad():
        logits = backbone.model(input_ids=full).logits[0].float()  # (T, V)
    logp = torch.log_softmax(logits[:-1], dim=-1)
    targets = full[0, 1:]
    token_logp = logp[torch.arange(len(targets)), targets][-len(ids):]
    assert ppl == pytest.approx(math.exp(-token_logp.mean().item()), rel=1e-4)


def test_perplexity_of_an_empty_rationale_is_undefined():
    backbone = tiny_backbone(seed=3)
    prompt = PromptBuilder(backbone.tokenizer, "Summarise.", 64).build("Some text.")
    assert perplexities(backbone.model, backbone.tokenizer, [prompt, prompt], ["", "  "]) == [None, None]


def test_figures_and_summary_of_hand_made_rationales():
    backbone = tiny_backbone(seed=1)
    scorer = FluencyScorer(backbone, "Summarise.", 64)
    rationales = ["estrogen estrogen estrogen estrogen", "zxqv blorpt wugga fnord", CORPUS[2], ""]
    figures = rationale_figures(CORPUS, rationales, tokenizer=backbone.tokenizer, limit=200, fluency=scorer)
    assert figures[0].distinct_3grams == pytest.approx(0.5)
    assert figures[1].grounding_rr == 0.0 and figures[3].grounding_rr == 0.0
    assert figures[2].grounding_rr == 1.0  # a copy of the text is perfectly grounded
    assert figures[3] == RationaleFigures(distinct_3grams=None, perplexity=None, grounding_rr=0.0, cut=False)
    assert all(f.perplexity is not None and f.perplexity > 1 for f in figures[:3])
    summary = summarize(figures, empty=1)
    assert summary["rationale_distinct3"] == pytest.approx((0.5 + 1.0 + 1.0) / 3)
    assert summary["rationale_grounding"] == pytest.approx(0.25)
    assert summary["rationale_ppl"] == pytest.approx(sorted(f.perplexity for f in figures[:3])[1])
    assert summary["rationale_cut"] == 0.0 and summary["rationale_empty"] == 0.25


def test_explain_figures_report_every_text_with_its_rationale():
    encoder = GraceEncoder.from_backbone(tiny_backbone(seed=2), EncoderConfig(max_rationale_tokens=6, cache=False))
    rows = explain_figures(encoder, CORPUS[:2])
    assert [r["text"] for r in rows] == CORPUS[:2]
    assert [r["rationale"] for r in rows] == encoder.explain(CORPUS[:2])
    assert set(rows[0]) == {"text", "rationale", "distinct_3grams", "perplexity", "grounding_rr", "cut"}


@pytest.mark.integration
def test_real_base_model_finds_gibberish_less_fluent_than_its_own_sentence(base_backbone):
    scorer = FluencyScorer(base_backbone, "Summarize the following text in one sentence.", 256)
    text = CORPUS[0]
    own, gibberish = scorer.perplexities([text, text], [
        "Mitochondria make ATP through oxidative phosphorylation.",
        "C RuBROS RuBO Anerbarse Arabitumphalan Distrait PBST bisestrogen",
    ])
    assert own < 10 < gibberish


def test_fluency_is_scored_under_the_prompt_the_writer_read():
    """With writer_input_tokens the writer read a cut text: the perplexity prompt is cut the same way."""
    backbone = tiny_backbone()
    cut = GraceEncoder.from_backbone(backbone, EncoderConfig(max_rationale_tokens=4, max_input_tokens=64,
                                                             writer_input_tokens=3, cache=False))
    whole = GraceEncoder.from_backbone(backbone, EncoderConfig(max_rationale_tokens=4, max_input_tokens=64, cache=False))
    scorers = FluencyScorers()
    assert scorers.for_encoder(cut).builder.max_input_tokens == 3
    assert scorers.for_encoder(whole).builder.max_input_tokens == 64
