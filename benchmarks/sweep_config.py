"""Sweep the encoder's settings on shared dev data: layer, rationale length (query and document
separately) and pooling, from one generation and one forward pass per text.

    python benchmarks/sweep_config.py --model smollm2-135m-instruct --out benchmarks/out/sweep/untrained

Why one pass is enough: greedy decoding truncated at L tokens is exactly what greedy decoding
with a limit of L produces, and in a causal LM the states of P(x) ⊕ r[:L] are a prefix of the
states of P(x) ⊕ r. So each text gets one greedy rationale of the longest length and one
forward pass that keeps every layer; every (layer, length, pooling) vector is pooled from it.

Data: the SciFact dev subset the project reports on (150 queries, 400 documents: positives,
one BM25 distractor per query, random fill) and a seeded sample of STS-B dev pairs.
Rationales are saved to ``<out>/rationales.jsonl`` as they are generated, so an interrupted
run resumes where it stopped. Results: ``<out>/results.json`` and a printed summary.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from grace_rag.config import EncoderConfig, Role
from grace_rag.evaluation import SubsetSpec, build_subset, load_beir, load_sts, retrieval_metrics, spearman, subset_sts
from grace_rag.evaluation.metrics import cosine_pairs
from grace_rag.generation import GenerationSettings
from grace_rag.hf_generation import HFGenerator
from grace_rag.models import load_backbone
from grace_rag.prompts import PromptBuilder
from grace_rag.representation import left_pad, positions_from_mask

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
POOLINGS = ("mean", "rationale", "balanced")


def load_texts(args: argparse.Namespace) -> tuple:
    scifact = build_subset(load_beir(SHARED / "scifact", "dev"),
                           SubsetSpec(n_queries=args.queries, corpus_size=args.corpus, distractors_per_query=1))
    sts = subset_sts(load_sts(SHARED / "stsbenchmark" / "sts-dev.tsv"), args.sts_pairs, seed=0)
    return scifact, sts


def generate(backbone, builders, items: list[tuple[str, str, str]], max_tokens: int, path: Path,
             batch: int) -> dict[str, list[int]]:
    """Greedy rationale token ids per item key, appended to ``path`` batch by batch (resumable)."""
    done: dict[str, list[int]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            done[row["key"]] = row["ids"]
    todo = [it for it in items if it[0] not in done]
    gen = HFGenerator(backbone.model, backbone.tokenizer, batch_size=batch)
    settings = GenerationSettings(max_new_tokens=max_tokens, temperature=0.0)
    started = time.perf_counter()
    with path.open("a") as fh:
        for start in range(0, len(todo), batch * 4):
            chunk = todo[start:start + batch * 4]
            prompts = [builders[role].build(text) for _, role, text in chunk]
            for (key, _, _), r in zip(chunk, gen.generate(prompts, settings)):
                done[key] = r.token_ids
                fh.write(json.dumps({"key": key, "ids": r.token_ids}) + "\n")
            fh.flush()
            rate = (start + len(chunk)) / (time.perf_counter() - started)
            print(f"generated {start + len(chunk)}/{len(todo)} ({rate:.2f} texts/s)", flush=True)
    return done


@torch.inference_mode()
def pooled_states(backbone, builders, items, rationales, lengths: list[int], batch: int) -> np.ndarray:
    """(n_items, n_layers, n_lengths, n_poolings, D) un-normalised pooled vectors."""
    model, pad = backbone.model, backbone.tokenizer.pad_token_id or 0
    out = []
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        prompts = [builders[role].build(text) for _, role, text in chunk]
        seqs = [p.input_ids + rationales[key] for p, (key, _, _) in zip(prompts, chunk)]
        ids, attn = left_pad(seqs, pad, model.device)
        hs = model(input_ids=ids, attention_mask=attn, position_ids=positions_from_mask(attn),
                   output_hidden_states=True, use_cache=False, logits_to_keep=1).hidden_states[1:]
        states = torch.stack(hs, dim=1).float()  # (B, L, T, D)
        width = ids.shape[1]
        for row, (p, seq) in enumerate(zip(prompts, seqs)):
            offset = width - len(seq)
            t0, t1 = offset + p.pool_start, offset + len(p.input_ids)  # text region [t0, t1)
            text_mean = states[row, :, t0:t1].mean(dim=1)  # (L, D)
            per_len = []
            for length in lengths:
                r1 = min(t1 + length, width)
                if r1 > t1:
                    rat_mean = states[row, :, t1:r1].mean(dim=1)
                    full = states[row, :, t0:r1].mean(dim=1)
                else:
                    rat_mean, full = text_mean, text_mean
                per_len.append(torch.stack([full, rat_mean, 0.5 * (text_mean + rat_mean)], dim=1))  # (L, P, D)
            out.append(torch.stack(per_len, dim=1).numpy())  # (L, n_len, P, D)
        print(f"pooled {start + len(chunk)}/{len(items)}", flush=True)
    return np.stack(out)


def normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def ndcg(q: np.ndarray, d: np.ndarray, qids: list[str], dids: list[str], qrels) -> dict[str, float]:
    scores = normalise(q) @ normalise(d).T  # (Q, N)
    top = np.argsort(-scores, axis=1)[:, :100]
    run = {qid: {dids[j]: float(scores[i, j]) for j in top[i]} for i, qid in enumerate(qids)}
    m = retrieval_metrics(qrels, run)
    return {"ndcg@10": m["ndcg@10"], "recall@10": m["recall@10"]}


def layer_views(n_layers: int) -> dict[str, list[int]]:
    """Single layers (1-based hidden_states index; n = last, post-norm) and a few mixes."""
    views = {str(i + 1): [i] for i in range(n_layers)}
    views.update({f"mix{a + 1}-{n_layers}": list(range(a, n_layers)) for a in (n_layers - 2, n_layers - 4, n_layers - 8)})
    return views


def evaluate(vecs: dict[str, np.ndarray], scifact, sts, lengths, n_layers) -> list[dict]:
    qids, dids = list(scifact.queries), list(scifact.corpus)
    rows = []
    for view, layers in layer_views(n_layers).items():
        for p, pooling in enumerate(POOLINGS):
            def pick(name):
                return vecs[name][:, layers][:, :, :, p].mean(axis=1)  # (n, n_len, D)
            q, d, s = pick("q"), pick("d"), pick("s")
            for di, dl in enumerate(lengths):
                sim = cosine_pairs(s[0::2, di], s[1::2, di])
                rho = spearman(sts.scores, sim.tolist())
                for qi, ql in enumerate(lengths):
                    if pooling != "mean" and (ql == 0 and dl == 0):
                        continue
                    m = ndcg(q[:, qi], d[:, di], qids, dids, scifact.qrels)
                    rows.append({"layer": view, "pooling": pooling, "query_tokens": ql, "doc_tokens": dl,
                                 **m, "sts_spearman": rho})
    return rows


def render(payload: dict) -> str:
    """Markdown tables of a results.json: mean pooling over chosen layers and lengths, then poolings."""
    rows = payload["results"]
    n = max(int(r["layer"]) for r in rows if r["layer"].isdigit())
    names = {str(n): f"last ({n})", str(n - 1): f"penultimate ({n - 1})", str(n - 2): str(n - 2),
             f"mix{n - 3}-{n}": f"mean of {n - 3}-{n}", "2": "2 (near the embeddings)"}
    find = {(r["layer"], r["pooling"], r["query_tokens"], r["doc_tokens"]): r for r in rows}
    lengths = payload["lengths"]
    out = [f"SciFact dev subset {payload['subset']['digest']} (150 queries / 400 documents), "
           f"STS-B dev sample {payload['sts_subset']['digest']} (500 pairs); cells: nDCG@10 / Spearman.", "",
           "| layer (mean pooling) | query rationale | " + " | ".join(f"doc {d} tokens" for d in lengths) + " |",
           "|---|---|" + "---|" * len(lengths)]
    for layer, label in names.items():
        for q in sorted({0, *lengths[1:]}):
            cells = [find.get((layer, "mean", q, d)) for d in lengths]
            if q and q not in lengths:
                continue
            out.append(f"| {label} | {q} | " + " | ".join(
                f"{c['ndcg@10']:.3f} / {c['sts_spearman']:.3f}" if c else "–" for c in cells) + " |")
    out += ["", "| layer | pooling | query rationale | " + " | ".join(f"doc {d}" for d in lengths[1:]) + " |",
            "|---|---|---|" + "---|" * (len(lengths) - 1)]
    for layer in (str(n), str(n - 1)):
        for pooling in POOLINGS:
            cells = [find.get((layer, pooling, 0, d)) for d in lengths[1:]]
            out.append(f"| {names[layer]} | {pooling} | 0 | " + " | ".join(
                f"{c['ndcg@10']:.3f} / {c['sts_spearman']:.3f}" if c else "–" for c in cells) + " |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--render", type=Path, help="print the tables of an existing results.json and stop")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--lengths", type=int, nargs="+", default=[0, 16, 32, 64])
    ap.add_argument("--queries", type=int, default=150)
    ap.add_argument("--corpus", type=int, default=400)
    ap.add_argument("--sts-pairs", type=int, default=500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.render:
        print(render(json.loads(args.render.read_text())), end="")
        return
    if args.out is None:
        ap.error("--out is required (or --render RESULTS_JSON)")
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    scifact, sts = load_texts(args)
    backbone = load_backbone(args.model, device="cpu")
    cfg = EncoderConfig()
    builders = {role: PromptBuilder(backbone.tokenizer, cfg.instruction(role), cfg.max_input_tokens) for role in Role}
    groups = {
        "q": [(f"q:{k}", Role.QUERY, t) for k, t in scifact.queries.items()],
        "d": [(f"d:{k}", Role.DOCUMENT, t) for k, t in scifact.corpus.items()],
        "s": [(f"s:{i}", Role.DOCUMENT, t) for i, pair in enumerate(sts.pairs) for t in pair],
    }
    items = [it for g in groups.values() for it in g]
    rationales = generate(backbone, builders, items, max(args.lengths), args.out / "rationales.jsonl", args.batch)
    n_layers = backbone.model.config.num_hidden_layers
    vecs = {name: pooled_states(backbone, builders, g, rationales, args.lengths, args.batch // 2)
            for name, g in groups.items()}
    rows = evaluate(vecs, scifact, sts, args.lengths, n_layers)
    payload = {"model": args.model, "subset": scifact.subset, "sts_subset": sts.subset, "lengths": args.lengths,
               "results": rows}
    (args.out / "results.json").write_text(json.dumps(payload, indent=1) + "\n")
    (args.out / "TABLE.md").write_text(render(payload))
    best = sorted(rows, key=lambda r: -r["ndcg@10"])[:15]
    for r in best:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
