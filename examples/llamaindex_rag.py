"""Retrieval for RAG with LlamaIndex: GRACE embeddings in a FAISS vector store.

Run from the repository root:  python examples/llamaindex_rag.py
Uses the embedded SmolLM2 model on the CPU (no download); the first run writes a rationale
for each of the 13 example documents (a minute or two on a laptop CPU), later runs hit the cache.
"""

from pathlib import Path

import faiss
from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
from llama_index.core.node_parser import SentenceSplitter
from llama_index.vector_stores.faiss import FaissVectorStore

from grace_rag import EncoderConfig, GraceEmbedding
from grace_rag.indexes.readers import FILE_READERS

DOCS = Path(__file__).parent / "docs"
QUESTIONS = ["How do bees tell each other where flowers are?", "Why did the French king call the Estates-General?"]


def main() -> None:
    embed_model = GraceEmbedding(config=EncoderConfig(max_rationale_tokens=16), embed_batch_size=8)
    documents = SimpleDirectoryReader(str(DOCS), file_extractor=FILE_READERS).load_data()
    store = FaissVectorStore(faiss_index=faiss.IndexFlatIP(embed_model.encoder.dimension))
    index = VectorStoreIndex.from_documents(
        documents,
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=embed_model,
        transformations=[SentenceSplitter(chunk_size=384, chunk_overlap=32)],
        show_progress=True,
    )
    retriever = index.as_retriever(similarity_top_k=2)
    for question in QUESTIONS:
        print(f"\nQ: {question}")
        print(f"   query rationale: {embed_model.encoder.explain([question], role='query')[0]}")
        for hit in retriever.retrieve(question):
            print(f"   {hit.score:.3f}  {hit.node.metadata['file_name']}: {' '.join(hit.node.text.split())[:90]}...")


if __name__ == "__main__":
    main()
