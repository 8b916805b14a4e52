"""The MTEB adapter satisfies mteb's encoder protocol and runs mteb tasks offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

mteb = pytest.importorskip("mteb")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from mteb.models.models_protocols import EncoderProtocol  # noqa: E402
from mteb.types import PromptType  # noqa: E402

from grace_rag.evaluation.datasets import load_beir  # noqa: E402
from grace_rag.evaluation.mteb_adapter import GraceMTEBEncoder, local_retrieval_task  # noqa: E402
from grace_rag.evaluation.runner import evaluate_retrieval  # noqa: E402
from grace_rag.evaluation.subset import SubsetSpec, build_subset  # noqa: E402


def test_implements_the_encoder_protocol(bow):
    model = GraceMTEBEncoder(bow)
    assert isinstance(model, EncoderProtocol)
    assert model.mteb_model_meta.name == "grace-rag/bag-of-words"
    assert model.mteb_model_meta.embed_dim == 64


def test_prompt_type_selects_the_role(bow):
    model = GraceMTEBEncoder(bow)
    batches = [{"text": ["a b", "c"]}, {"text": ["d"]}]
    out = model.encode(batches, task_metadata=None, hf_split="test", hf_subset="default",
                       prompt_type=PromptType.query)
    assert out.shape == (3, 64)
    model.encode(batches, task_metadata=None, hf_split="test", hf_subset="default")
    assert bow.calls == [("query", 3), ("document", 3)]


def test_mock_tasks_run_with_tiny_encoder():
    from grace_rag.testing import tiny_encoder
    from mteb.mocks.mock_tasks.retrieval import MockRetrievalTask
    from mteb.mocks.mock_tasks.sts import MockSTSTask

    model = GraceMTEBEncoder(tiny_encoder())
    results = mteb.evaluate(model, [MockRetrievalTask(), MockSTSTask()], cache=None,
                            show_progress_bar=False)
    assert {r.task_name for r in results.task_results} == {"MockRetrievalTask", "MockSTSTask"}
    assert not results.exceptions


def test_local_task_scores_equal_our_harness(beir_dir: Path, bow):
    dataset = build_subset(load_beir(beir_dir), SubsetSpec(n_queries=6, corpus_size=40))
    ours = evaluate_retrieval(bow, dataset)
    assert 0.0 < ours["ndcg@10"] < 1.0  # a ranking with errors, so the comparison means something
    results = mteb.evaluate(GraceMTEBEncoder(bow), [local_retrieval_task(dataset)], cache=None,
                            show_progress_bar=False)
    theirs = results.task_results[0].scores["test"][0]
    for ours_key, mteb_key in [("ndcg@10", "ndcg_at_10"), ("recall@10", "recall_at_10"),
                               ("recall@100", "recall_at_100"), ("mrr@10", "mrr_at_10")]:
        assert theirs[mteb_key] == pytest.approx(ours[ours_key], abs=1e-5), ours_key
