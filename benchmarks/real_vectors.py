"""Real embeddings for index benchmarks: STS-B sentences (train + dev, unique) encoded by a grace-rag model.

    python benchmarks/real_vectors.py --out /tmp/stsb-vectors.npy
    python benchmarks/index_speed.py --vectors /tmp/stsb-vectors.npy --types hnsw32 pca-hnsw32-refine

Sentences are encoded as documents with ``--rationale-tokens`` (default 0: one forward pass per
sentence, minutes instead of hours on a CPU; the vectors keep the model's geometry) and saved as
a float32 (N, D) array. ``index_speed.py --vectors`` then measures approximate indexes on them.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

STSB = Path(__file__).resolve().parents[2] / "shared" / "data" / "stsbenchmark"


def sentences() -> list[str]:
    seen: dict[str, None] = {}
    for split in ("train", "dev"):
        with (STSB / f"sts-{split}.tsv").open(encoding="utf-8") as handle:
            for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
                if row[0] == "score":  # the header
                    continue
                for text in row[1:3]:
                    seen.setdefault(text.strip(), None)
    return [s for s in seen if s]


def main() -> None:
    from grace_rag import EncoderConfig, GraceEncoder

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-grace")
    ap.add_argument("--rationale-tokens", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    texts = sentences()[:args.limit]
    encoder = GraceEncoder(args.model, config=EncoderConfig(max_rationale_tokens=args.rationale_tokens, cache=False,
                                                            batch_size=32, show_progress=True))
    vectors = encoder.encode_documents(texts)
    np.save(args.out, vectors.astype(np.float32))
    print(f"{len(texts)} sentences, {vectors.shape[1]} dimensions -> {args.out} ({encoder.config.quantization.value})")


if __name__ == "__main__":
    main()
