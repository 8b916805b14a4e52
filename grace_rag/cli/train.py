"""`grace-rag train`: parse options into a TrainConfig and delegate to grace_rag.trainer.run.train."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from grace_rag.config import Layer, Pooling
from grace_rag.trainer.config import Estimator, Objective, RewardVariant, TrainConfig

_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _help(name: str) -> str:
    """The one-line help of a TrainConfig field (shared by config files and the CLI)."""
    return _FIELDS[name].metadata["help"]


def train_command(
    data: Annotated[Optional[Path], typer.Argument(exists=True, help="Triplet/pair JSONL, a BEIR folder, an STS .tsv, or (with --unsupervised) a text/JSONL file or folder. Optional with --data.")] = None,
    sources: Annotated[Optional[list[str]], typer.Option("--data", metavar="FILE[:WEIGHT]", help=_help("data"))] = None,
    mine_negatives: Annotated[Optional[bool], typer.Option("--mine-negatives/--no-mine-negatives", help=_help("mine_negatives"))] = None,
    lm_weight: Annotated[Optional[float], typer.Option("--lm-weight", help=_help("lm_weight"))] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help=_help("output_dir"))] = None,
    unsupervised: Annotated[bool, typer.Option("--unsupervised", help="Train on a plain corpus (self-alignment rewards).")] = False,
    model: Annotated[Optional[str], typer.Option("--model", "--init-from", help=_help("model"))] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help=_help("steps"))] = None,
    max_minutes: Annotated[Optional[float], typer.Option("--max-minutes", help=_help("max_minutes"))] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", "-b", help=_help("batch_size"))] = None,
    rollouts: Annotated[Optional[int], typer.Option("--rollouts", "-k", help=_help("rollouts"))] = None,
    max_rationale_tokens: Annotated[Optional[int], typer.Option("--max-rationale-tokens", help=_help("max_rationale_tokens"))] = None,
    max_input_tokens: Annotated[Optional[int], typer.Option("--max-input-tokens", help=_help("max_input_tokens"))] = None,
    query_rationale_tokens: Annotated[Optional[int], typer.Option("--query-rationale-tokens", help=_help("query_rationale_tokens"))] = None,
    layer: Annotated[Optional[Layer], typer.Option("--layer", help=_help("layer"))] = None,
    pooling: Annotated[Optional[Pooling], typer.Option("--pooling", help=_help("pooling"))] = None,
    length_penalty: Annotated[Optional[str], typer.Option("--length-penalty", metavar="FLOAT|off", help=_help("length_penalty"))] = None,
    reward_variant: Annotated[Optional[RewardVariant], typer.Option("--reward-variant", help=_help("reward_variant"))] = None,
    estimator: Annotated[Optional[Estimator], typer.Option("--estimator", help=_help("estimator"))] = None,
    objective: Annotated[Optional[Objective], typer.Option("--objective", help=_help("objective"))] = None,
    lora: Annotated[Optional[bool], typer.Option("--lora/--full", help=_help("lora"))] = None,
    merge: Annotated[Optional[bool], typer.Option("--merge/--adapter", help=_help("merge"))] = None,
    learning_rate: Annotated[Optional[float], typer.Option("--lr", help=_help("learning_rate"))] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help=_help("seed"))] = None,
    config: Annotated[Optional[Path], typer.Option("--config", exists=True, dir_okay=False, help="TOML or YAML file of training settings (options given here override it).")] = None,
    eval_dir: Annotated[Optional[Path], typer.Option("--eval", exists=True, file_okay=False, help="BEIR folder: nDCG@10 on a subset before, every eval_every steps and after training.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint in OUT.checkpoints.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the model an earlier grace-rag train wrote to OUT (never other files).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Fine-tune the encoder's LLM with GRACE (policy optimisation on contrastive rewards)."""
    from grace_rag.trainer.config import load_config
    from grace_rag.trainer.run import retrieval_evaluator, train

    base = load_config(config) if config is not None else TrainConfig()
    cfg = base.replace(
        mode="unsupervised" if unsupervised else None, output_dir=str(out) if out else None, model=model,
        steps=steps, max_minutes=max_minutes, batch_size=batch_size, rollouts=rollouts, max_rationale_tokens=max_rationale_tokens,
        max_input_tokens=max_input_tokens, estimator=estimator, objective=objective, lora=lora,
        learning_rate=learning_rate, seed=seed, query_rationale_tokens=query_rationale_tokens,
        layer=layer.value if layer else None, pooling=pooling.value if pooling else None,
        length_penalty=_length_penalty(length_penalty), reward_variant=reward_variant, merge=merge,
        data=[*base.data, *sources] if sources else None, mine_negatives=mine_negatives, lm_weight=lm_weight,
    )
    evaluator = retrieval_evaluator(eval_dir, cfg) if eval_dir is not None else None
    result = train(cfg, data, evaluator=evaluator, resume=resume, progress=not quiet, overwrite=overwrite)
    payload = {"output_dir": str(result.output_dir), "steps": result.steps, "evals": result.evals,
               "last_metrics": result.last_metrics}
    if as_json:
        typer.echo(json.dumps(payload, indent=2))
        return
    from rich.console import Console

    console = Console()
    console.print(f"[green]trained model written to[/green] {result.output_dir} ({result.steps} steps)")
    for row in result.evals:
        console.print(f"  step {row['step']:>6}: nDCG@10 = {row.get('ndcg@10', float('nan')):.4f}")


def _length_penalty(value: str | None) -> float | str | None:
    """``--length-penalty``: a number, or "off"; None when not given."""
    if value is None or value.strip().lower() == "off":
        return value
    try:
        return float(value)
    except ValueError:
        raise typer.BadParameter(f"expected a number or 'off', got {value!r}", param_hint="--length-penalty") from None


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to the grace-rag app."""
    app.command("train")(train_command)
