"""Framework adapters, imported on demand: ``llama_index`` (GraceEmbedding, GraceIndexRetriever) and ``langchain`` (GraceEmbeddings)."""
