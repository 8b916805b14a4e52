"""Does per-channel int8 keep the default model's quality? nDCG@10 on the SciFact dev subset, float32 beside it.

    python benchmarks/int8_quality.py --data ../shared/data/scifact --out benchmarks/out/eval/int8-per-channel.json

The product's ``quantization="int8"`` quantises each weight matrix with one scale
(``default_dynamic_qconfig``); this script patches the conversion, inside this process only, to
one scale per output channel (``per_channel_dynamic_qconfig``) and scores it on the subset the
README reports (150 dev queries, 400 documents, 1 BM25 distractor each, seed 0), with float32
(``quantization="none"``) scored the same way in the same run. The cache is off, so every vector
is computed by the variant it is reported for.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch

import grace_rag.acceleration as acceleration
from grace_rag.config import EncoderConfig
from grace_rag.encoder import GraceEncoder
from grace_rag.evaluation import SubsetSpec, build_subset, evaluate_retrieval, load_beir


def quantize_int8_per_channel(model):
    """``acceleration.quantize_int8`` with one scale per output channel of each weight."""
    if next(model.parameters()).device.type != "cpu":
        raise SystemExit("int8 runs on the CPU only")
    prefix = acceleration._decoder_prefix(model)
    quantised = acceleration.copy.deepcopy(model).float()
    spec = {f"{prefix}.layers": torch.ao.quantization.per_channel_dynamic_qconfig}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.ao.quantization.quantize_dynamic(quantised, spec, dtype=torch.qint8, inplace=True)
    return quantised.eval()


def score(dataset, quantization: str) -> dict:
    started = time.perf_counter()
    encoder = GraceEncoder(config=EncoderConfig(quantization=quantization, cache=False), device="cpu")
    metrics = evaluate_retrieval(encoder, dataset)
    return {"quantization": quantization, "ndcg@10": metrics["ndcg@10"], "recall@10": metrics["recall@10"],
            "fingerprint": encoder.fingerprint, "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="BEIR SciFact folder")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/eval/int8-per-channel.json"))
    args = ap.parse_args()
    dataset = build_subset(load_beir(args.data, "dev"),
                           SubsetSpec(n_queries=150, corpus_size=400, distractors_per_query=1, seed=0))
    acceleration.quantize_int8 = quantize_int8_per_channel  # this process only
    rows = [score(dataset, "int8"), score(dataset, "none")]
    rows[0]["quantization"] = "int8 per-channel"
    result = {"subset": dataset.subset, "model": "smollm2-135m-grace (default settings)", "results": rows,
              "difference": rows[0]["ndcg@10"] - rows[1]["ndcg@10"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
