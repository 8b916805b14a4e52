"""Retrieval for RAG with LangChain: GraceEmbeddings in langchain_community's FAISS store.

Run from the repository root:  python examples/langchain_rag.py
Uses the embedded SmolLM2 model on the CPU (no download). The store is kept in memory:
LangChain's FAISS.save_local pickles its docstore, which grace-rag avoids (use
`grace-rag index` for a durable, pickle-free index).
"""

from pathlib import Path

from langchain_community.vectorstores import FAISS
from langchain_core.documents import Document

from grace_rag import GraceEmbeddings
from grace_rag.indexes.readers import SUPPORTED_EXTENSIONS, read_document

DOCS = Path(__file__).parent / "docs"
QUESTIONS = ["What happens to corals when the sea gets too warm?", "How does a server confirm a new TCP connection?"]


def load_documents(folder: Path) -> list[Document]:
    return [
        Document(page_content=read_document(path), metadata={"source": path.name})
        for path in sorted(folder.iterdir()) if path.suffix in SUPPORTED_EXTENSIONS
    ]


def main() -> None:
    embeddings = GraceEmbeddings(max_rationale_tokens=16)
    store = FAISS.from_documents(load_documents(DOCS), embeddings)
    retriever = store.as_retriever(search_kwargs={"k": 2})
    for question in QUESTIONS:
        print(f"\nQ: {question}")
        for doc in retriever.invoke(question):
            print(f"   {doc.metadata['source']}: {' '.join(doc.page_content.split())[:90]}...")


if __name__ == "__main__":
    main()
