"""`grace-rag train`: options generated from TrainConfig (and its EncoderConfig), delegated to grace_rag.trainer.run.train."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from grace_rag.cli.settings import Given, config_options
from grace_rag.trainer.config import TrainConfig


@config_options(overrides=TrainConfig)
def train_command(
    overrides: Given,
    data: Annotated[Optional[Path], typer.Argument(exists=True, help="Triplet/pair JSONL, a BEIR folder, an STS .tsv, or (with --mode unsupervised) a text/JSONL file or folder. Optional with --data.")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", exists=True, dir_okay=False, help="TOML or YAML file of training settings (options given here override it).")] = None,
    eval_dir: Annotated[Optional[Path], typer.Option("--eval", exists=True, file_okay=False, help="BEIR folder: nDCG@10 on a subset before, every eval_every steps and after training.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint in OUT.checkpoints.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the model an earlier grace-rag train wrote to OUT (never other files).")] = False,
    unsupervised: Annotated[bool, typer.Option("--unsupervised", hidden=True, help="Deprecated spelling of --mode unsupervised.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Fine-tune the encoder's LLM with GRACE (policy optimisation on contrastive rewards).

    Every TrainConfig setting is an option (the encoder's settings too); a --config file gives
    the rest, and options given here override it.
    """
    from grace_rag.trainer.config import load_config
    from grace_rag.trainer.run import retrieval_evaluator, train

    if unsupervised:
        typer.secho("warning: --unsupervised is deprecated and goes in the next release; use --mode unsupervised",
                    fg=typer.colors.YELLOW, err=True)
        overrides.values.setdefault("mode", "unsupervised")
    cfg = overrides.onto(load_config(config) if config is not None else TrainConfig())
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


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to the grace-rag app."""
    app.command("train")(train_command)
