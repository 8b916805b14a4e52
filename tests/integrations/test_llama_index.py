"""GraceEmbedding inside real LlamaIndex pipelines, and the retriever over a grace-rag index."""

import importlib
import sys

import faiss
import numpy as np
import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.vector_stores.faiss import FaissVectorStore

from grace_rag.integrations.llama_index import GraceEmbedding, GraceIndexRetriever
from frameworks_support import DOCS, QUESTIONS, Counting


def test_importable_lazily_from_the_package():
    import grace_rag

    assert grace_rag.GraceEmbedding is GraceEmbedding


def test_batches_follow_embed_batch_size_and_roles_are_right(tiny):
    counting = Counting(tiny)
    model = GraceEmbedding(encoder=counting, embed_batch_size=2)
    vectors = model.get_text_embedding_batch(["a cat", "a dog", "a bird", "a fish", "a frog"])
    assert [len(texts) for texts, _ in counting.calls] == [2, 2, 1]
    assert {role for _, role in counting.calls} == {"document"}
    assert len(vectors) == 5 and all(len(v) == tiny.dimension for v in vectors)
    model.get_query_embedding("which pet?")
    assert counting.calls[-1] == (["which pet?"], "query")
    assert model.model_name == tiny.model_name and model.encoder is counting


def test_vectors_match_the_encoder_and_are_unit_length(tiny):
    model = GraceEmbedding(encoder=tiny)
    vector = np.array(model.get_text_embedding("The river flooded the valley."))
    np.testing.assert_allclose(vector, tiny.encode(["The river flooded the valley."]).vectors[0], atol=1e-6)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


async def test_async_methods_give_the_sync_results(tiny):
    model = GraceEmbedding(encoder=tiny)
    texts = ["first text", "second text"]
    assert await model.aget_text_embedding_batch(texts) == model.get_text_embedding_batch(texts)
    assert await model.aget_query_embedding("a query") == model.get_query_embedding("a query")
    assert await model.aget_text_embedding("first text") == model.get_text_embedding("first text")


def test_progress_bar_option_is_accepted(tiny, capsys):
    vectors = GraceEmbedding(encoder=tiny).get_text_embedding_batch(["x", "y"], show_progress=True)
    assert len(vectors) == 2


def faiss_index(documents, embed_model):
    store = FaissVectorStore(faiss_index=faiss.IndexFlatIP(embed_model.encoder.dimension))
    context = StorageContext.from_defaults(vector_store=store)
    return VectorStoreIndex.from_documents(documents, storage_context=context, embed_model=embed_model)


def test_vector_store_index_with_faiss_finds_the_document_itself(tiny):
    documents = [Document(text=text, id_=key) for key, text in DOCS.items()]
    index = faiss_index(documents, GraceEmbedding(encoder=tiny))
    nodes = index.as_retriever(similarity_top_k=3).retrieve(DOCS["volcano"])
    assert nodes[0].node.ref_doc_id == "volcano" and nodes[0].score == pytest.approx(1.0, abs=1e-4)


def test_default_vector_store_index(tiny):
    index = VectorStoreIndex.from_documents([Document(text=t) for t in DOCS.values()], embed_model=GraceEmbedding(encoder=tiny))
    assert index.as_retriever(similarity_top_k=1).retrieve(DOCS["bees"])[0].node.text == DOCS["bees"]


def test_ingestion_pipeline_embeds_every_node(tiny):
    pipeline = IngestionPipeline(transformations=[SentenceSplitter(chunk_size=32, chunk_overlap=0), GraceEmbedding(encoder=tiny)])
    nodes = pipeline.run(documents=[Document(text=" ".join(DOCS.values()))])
    assert len(nodes) >= 2
    assert all(len(n.embedding) == tiny.dimension for n in nodes)


def test_retriever_over_a_grace_rag_index(tmp_path, tiny):
    from grace_rag.indexes import GraceIndex
    from grace_rag.indexes.ingest import Indexer

    (tmp_path / "docs").mkdir()
    for key, text in DOCS.items():
        (tmp_path / "docs" / f"{key}.txt").write_text(text)
    with GraceIndex.open_or_create(tmp_path / "ix", tiny) as index:
        Indexer(index, tiny).run(tmp_path / "docs")
    retriever = GraceIndexRetriever(tmp_path / "ix", encoder=GraceEmbedding(encoder=tiny), similarity_top_k=2)
    nodes = retriever.retrieve(DOCS["interest"])
    assert len(nodes) == 2 and nodes[0].node.text == DOCS["interest"]
    assert nodes[0].node.metadata["source"].endswith("interest.txt") and "rationale" in nodes[0].node.metadata
    only_bees = GraceIndexRetriever(tmp_path / "ix", encoder=tiny, filters={"file_name": "bees.txt"})
    assert [n.node.metadata["file_name"] for n in only_bees.retrieve(DOCS["interest"])] == ["bees.txt"]


def test_missing_llama_index_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_index.core.base.embeddings.base", None)
    monkeypatch.delitem(sys.modules, "grace_rag.integrations.llama_index")
    with pytest.raises(ImportError, match=r"pip install 'grace-rag\[frameworks\]'"):
        importlib.import_module("grace_rag.integrations.llama_index")


@pytest.mark.integration
def test_real_model_answers_questions_through_faiss(real_encoder):
    documents = [Document(text=text, id_=key) for key, text in DOCS.items()]
    index = faiss_index(documents, GraceEmbedding(encoder=real_encoder))
    assert index.as_retriever(similarity_top_k=3).retrieve(QUESTIONS["bees"])[0].node.ref_doc_id == "bees"
