"""Run any MTEB task on grace-rag: a GraceEncoder behind mteb's encoder interface (mteb 2.x).

```python
import mteb
from grace_rag import GraceEncoder
from grace_rag.evaluation.mteb_adapter import GraceMTEBEncoder

model = GraceMTEBEncoder(GraceEncoder())
results = mteb.evaluate(model, mteb.get_tasks(tasks=["SciFact"]))
```

mteb calls ``encode(inputs, task_metadata=..., hf_split=..., hf_subset=..., prompt_type=...)``
with a DataLoader of batches whose ``"text"`` field holds the texts; queries
(``prompt_type == "query"``) go through ``encode_queries``, everything else (documents,
STS sentences, classification inputs) through ``encode_documents``. Similarity is cosine.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np

try:
    from mteb.models.abs_encoder import AbsEncoder
    from mteb.models.model_meta import ModelMeta, ScoringFunction
    from mteb.types import PromptType
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("grace_rag.evaluation.mteb_adapter needs mteb; install it with: "
                      "pip install 'grace-rag[mteb]'") from exc

from grace_rag.errors import ConfigError

logger = logging.getLogger(__name__)


def batch_texts(inputs: Iterable[dict[str, Any]]) -> list[str]:
    """Flatten mteb's batches (``{"text": [...], ...}``) into one list of texts."""
    texts: list[str] = []
    for batch in inputs:
        if "text" not in batch:
            raise ConfigError(f"GraceMTEBEncoder encodes text only; this task gave batches "
                              f"with fields {sorted(batch)}")
        texts.extend(str(text) for text in batch["text"])
    return texts


def build_model_meta(encoder: Any, name: str | None = None) -> ModelMeta:
    """mteb metadata for a GraceEncoder: name, fingerprint as revision, dimension, cosine."""
    model_name = name or f"grace-rag/{encoder.model_name.replace('/', '__')}"
    return ModelMeta(
        loader=None, name=model_name, revision=str(encoder.fingerprint)[:40],
        release_date=None, languages=None, n_parameters=None, memory_usage_mb=None,
        max_tokens=None, embed_dim=int(encoder.dimension), license=None, open_weights=True,
        public_training_code=None, public_training_data=None, framework=["PyTorch"],
        reference=None, similarity_fn_name=ScoringFunction.COSINE, use_instructions=True,
        training_datasets=None,
    )


class GraceMTEBEncoder(AbsEncoder):
    """An mteb encoder over a :class:`~grace_rag.GraceEncoder` (or any object with its API)."""

    def __init__(self, encoder: Any, name: str | None = None) -> None:
        self.model = encoder
        self.mteb_model_meta = build_model_meta(encoder, name)

    def encode(
        self,
        inputs: Iterable[dict[str, Any]],
        *,
        task_metadata: Any,
        hf_split: str,
        hf_subset: str,
        prompt_type: PromptType | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        texts = batch_texts(inputs)
        task = getattr(task_metadata, "name", "?")
        logger.info("mteb %s/%s/%s: encoding %d texts as %s", task, hf_subset, hf_split,
                    len(texts), prompt_type or "document")
        if not texts:
            return np.zeros((0, int(self.model.dimension)), dtype=np.float32)
        if prompt_type == PromptType.query:
            vectors = self.model.encode_queries(texts)
        else:
            vectors = self.model.encode_documents(texts)
        return np.asarray(vectors, dtype=np.float32)  # (n, D)


def local_retrieval_task(dataset: Any, name: str | None = None) -> Any:
    """An mteb retrieval task over a local :class:`BeirDataset`, for offline runs and checks.

    The task's single split is named after ``dataset.split``; nothing is downloaded.
    """
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
    from mteb.abstasks.task_metadata import TaskMetadata

    split = dataset.split
    split_data = RetrievalSplitData(
        queries=Dataset.from_list([{"id": q, "text": t} for q, t in dataset.queries.items()]),
        corpus=Dataset.from_list([{"id": d, "text": t, "title": ""}
                                  for d, t in dataset.corpus.items()]),
        relevant_docs=dataset.qrels, top_ranked=None,
    )
    metadata = TaskMetadata(
        type="Retrieval", name=name or f"GraceLocal{dataset.name.title()}",
        main_score="ndcg_at_10", description=f"Local BEIR folder {dataset.name} ({split}).",
        reference=None, dataset={"path": "local", "revision": "local"}, category="t2t",
        eval_splits=[split], eval_langs=["eng-Latn"], date=None, dialect=[], domains=[],
        task_subtypes=[], license="not specified", annotations_creators="derived",
        modalities=["text"], sample_creation="found", bibtex_citation="",
    )

    class LocalRetrievalTask(AbsTaskRetrieval):
        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            self.dataset = {"default": {split: split_data}}
            self.data_loaded = True

    LocalRetrievalTask.metadata = metadata
    return LocalRetrievalTask()
