"""A small grace-rag index with numeric and text metadata, for the retriever tests of both frameworks."""

from pathlib import Path

from grace_rag.indexes import Chunk, GraceIndex

#: id -> (text, metadata); "n4" has no "topic" key
ROWS = {
    "n0": ("Honeybees dance to tell their sisters where the flowers are.", {"topic": "bees", "year": 2019}),
    "n1": ("A volcano erupts when magma and gas escape through the crust.", {"topic": "geology", "year": 2020}),
    "n2": ("Bees store honey in wax combs for the winter.", {"topic": "bees", "year": 2021}),
    "n3": ("Compound interest makes savings grow faster every year.", {"topic": "finance", "year": 2022}),
    "n4": ("Magma chambers feed eruptions for centuries.", {"year": 2023}),
}
ALL = set(ROWS)


def small_index(path: Path, encoder) -> Path:
    """Write the ROWS into a new index at ``path`` with ``encoder``'s vectors; return the path."""
    ids = list(ROWS)
    texts = [ROWS[i][0] for i in ids]
    chunks = [Chunk(id=i, text=t, source=f"/notes/{ROWS[i][1].get('topic', 'misc')}.txt", position=p, metadata=ROWS[i][1])
              for p, (i, t) in enumerate(zip(ids, texts))]
    with GraceIndex.open_or_create(path, encoder) as index:
        index.add(chunks, encoder.encode(texts).vectors)
        index.save()
    return path
