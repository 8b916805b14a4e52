"""Evaluation harness: datasets, subsets, pytrec_eval metrics, model adapters and the runner.

```python
from grace_rag.evaluation import load_beir, build_subset, SubsetSpec, evaluate_retrieval
dataset = build_subset(load_beir("data/scifact", "dev"), SubsetSpec(n_queries=50))
evaluate_retrieval(encoder, dataset)   # {"ndcg@10": ..., "recall@10": ..., ...}
```

The MTEB adapter lives in :mod:`grace_rag.evaluation.mteb_adapter` (needs ``grace-rag[mteb]``).
"""

from grace_rag.evaluation.adapters import (
    BM25Retriever,
    DenseRetriever,
    Embedder,
    LoadedModel,
    MiniLMEmbedder,
    Retriever,
    load_model,
)
from grace_rag.evaluation.datasets import BeirDataset, StsDataset, load_beir, load_dataset, load_sts
from grace_rag.evaluation.hybrid import HybridRetriever
from grace_rag.evaluation.metrics import retrieval_metrics, spearman
from grace_rag.evaluation.runner import EvalRequest, evaluate_retrieval, evaluate_sts, run_eval
from grace_rag.evaluation.subset import SubsetSpec, build_subset, subset_sts

__all__ = [
    "BM25Retriever",
    "BeirDataset",
    "DenseRetriever",
    "Embedder",
    "EvalRequest",
    "HybridRetriever",
    "LoadedModel",
    "MiniLMEmbedder",
    "Retriever",
    "StsDataset",
    "SubsetSpec",
    "build_subset",
    "evaluate_retrieval",
    "evaluate_sts",
    "load_beir",
    "load_dataset",
    "load_model",
    "load_sts",
    "retrieval_metrics",
    "run_eval",
    "spearman",
    "subset_sts",
]
