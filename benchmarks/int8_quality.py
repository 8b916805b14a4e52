"""Would per-channel int8 keep the default model's quality? nDCG@10 on the SciFact dev subset, float32 beside it.

    python benchmarks/int8_quality.py --data ../shared/data/scifact --out benchmarks/out/eval/int8-per-channel.json

grace-rag once offered ``quantization="int8"`` (dynamic int8 linear layers, one scale per weight
matrix); it cost 0.095 nDCG@10. This script quantises the default model's decoder linear layers with
one scale per output channel (``per_channel_dynamic_qconfig``), inside this process only, and scores
it on the subset the results page uses (150 dev queries, 400 documents, 1 BM25 distractor each, seed
0), with float32 scored the same way in the same run. The cache is off, so every vector is computed
by the variant it is reported for. It measured -0.111, so int8 was removed rather than kept.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
import warnings
from pathlib import Path

import torch

from grace_rag.config import EncoderConfig
from grace_rag.encoder import GraceEncoder
from grace_rag.evaluation import SubsetSpec, build_subset, evaluate_retrieval, load_beir
from grace_rag.models import DEFAULT_MODEL, load_backbone


def quantize_int8_per_channel(model):
    """A copy of ``model`` whose decoder linear layers are dynamic int8 with one scale per output channel."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    prefix = next(name for name, module in model.named_modules() if module is decoder)
    quantised = copy.deepcopy(model).float()
    spec = {f"{prefix}.layers": torch.ao.quantization.per_channel_dynamic_qconfig}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        torch.ao.quantization.quantize_dynamic(quantised, spec, dtype=torch.qint8, inplace=True)
    return quantised.eval()


def score(dataset, label: str, backbone) -> dict:
    started = time.perf_counter()
    encoder = GraceEncoder.from_backbone(backbone, EncoderConfig(quantization="none", cache=False))
    metrics = evaluate_retrieval(encoder, dataset)
    return {"quantization": label, "ndcg@10": metrics["ndcg@10"], "recall@10": metrics["recall@10"],
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="BEIR SciFact folder")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/eval/int8-per-channel.json"))
    args = ap.parse_args()
    dataset = build_subset(load_beir(args.data, "dev"),
                           SubsetSpec(n_queries=150, corpus_size=400, distractors_per_query=1, seed=0))
    backbone = load_backbone(DEFAULT_MODEL, device="cpu")
    int8 = dataclasses.replace(backbone, model=quantize_int8_per_channel(backbone.model))
    rows = [score(dataset, "int8 per-channel", int8), score(dataset, "none", backbone)]
    result = {"subset": dataset.subset, "model": f"{DEFAULT_MODEL} (default settings)", "results": rows,
              "difference": rows[0]["ndcg@10"] - rows[1]["ndcg@10"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
