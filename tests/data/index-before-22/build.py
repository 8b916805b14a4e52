"""Build the fixture index with grace-rag as it was before issue 22 (run with that checkout's Python)."""
import json, shutil, sys
from pathlib import Path

from grace_rag import EncoderConfig
from grace_rag.indexes import GraceIndex
from grace_rag.indexes.ingest import Indexer
from grace_rag.testing import tiny_encoder

out = Path(sys.argv[1])
shutil.rmtree(out, ignore_errors=True)
docs = out / "docs"
docs.mkdir(parents=True)
(docs / "bees.txt").write_text("Honeybees perform a waggle dance to tell their sisters where the flowers are.")
(docs / "volcano.md").write_text("A volcano erupts when molten rock, gases and ash escape through the crust.")
(docs / "interest.txt").write_text("Compound interest is earned on the principal and on the interest already added.")
encoder = tiny_encoder(EncoderConfig(max_rationale_tokens=4, query_instruction="Find the passage that answers this.", cache=False))
with GraceIndex.open_or_create(out / "index", encoder) as index:
    Indexer(index, encoder).run(docs)
    expected = {"fingerprint": encoder.fingerprint, "model_name": encoder.model_name, "queries": {}}
    for query in ["where do bees find flowers", "molten rock"]:
        for mode in ["dense", "lexical", "hybrid"]:
            hits, rationale = index.query(encoder if mode != "lexical" else None, query, k=3, mode=mode)
            expected["queries"][f"{mode}:{query}"] = {"query_rationale": rationale,
                                                      "hits": [h.to_dict() for h in hits]}
(out / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
print(encoder.fingerprint, encoder.model_name)
