"""A whole training run: validate data, (resume,) loop with metrics/checkpoints/eval, publish the model.

Layout: checkpoints and the live metrics log go to ``<out>.checkpoints/``; on success the
model directory ``<out>/`` is published atomically and the checkpoints are removed. It holds
the LoRA adapter (``adapter_config.json`` naming the base model, ``adapter_model.safetensors``)
or, for full fine-tuning or ``merge``, the merged weights and tokenizer; plus
``grace_encoder.json`` (the encoder settings it was trained for, read by ``GraceEncoder``),
``grace_train.json`` (config, evaluations) and ``metrics.jsonl``. The final evaluation loads
the published directory as a user would, so it scores exactly what is published.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from grace_rag.config import Writer
from grace_rag.errors import ConfigError, DataError
from grace_rag.models import Backbone, read_encoder_settings, write_encoder_settings

from .checkpoint import SUMMARY_FILE, check_output_dir, list_checkpoints, load_checkpoint, publish_dir, save_checkpoint
from .collectives import all_reduce
from .config import Mode, TrainConfig, nest_encoder_settings
from .data import load_supervised, load_texts
from .loop import GraceTrainer
from .mix import DataSource, MixSampler, SourceLosses, batch_for_step, check_weights, mine_negatives  # noqa: F401 (batch_for_step: its old home)

log = logging.getLogger(__name__)

#: settings that may change between a run and its resumption
RESUMABLE_CHANGES = {"steps", "epochs", "max_minutes", "save_every", "eval_every", "output_dir", "mixed_precision",
                     "eval_split", "eval_queries", "gradient_checkpointing"}

#: scores an encoder (the policy during training, the published model at the end)
Evaluator = Callable[[Any], dict[str, float]]


@dataclass
class TrainResult:
    output_dir: Path
    steps: int
    last_metrics: dict[str, float]
    evals: list[dict[str, Any]] = field(default_factory=list)


def checkpoint_dir(out: Path) -> Path:
    """Where a run keeps its checkpoints and live metrics: ``<out>.checkpoints`` beside ``out``."""
    return out.parent / f"{out.name}.checkpoints"


def sources(config: TrainConfig, data_path: str | Path | None) -> list[DataSource]:
    """The run's data sources: ``data_path`` (weight 1) and the config's ``data`` list."""
    found = ([DataSource(str(data_path))] if data_path is not None else []) + list(config.data)
    if not found:
        raise ConfigError("no training data; pass a data file or folder, or --data FILE[:WEIGHT]")
    check_weights(found)
    return found


def load_source(config: TrainConfig, source: DataSource) -> list[Any]:
    """Triplets/pairs (supervised) or passages (unsupervised) of one source, validated."""
    if config.mode == Mode.UNSUPERVISED:
        return load_texts(source.path)
    data = load_supervised(source.path, config.negatives_per_query)
    return mine_negatives(data, config.seed) if config.mine_negatives else data


def load_data(config: TrainConfig, data_path: str | Path | None) -> MixSampler:
    """Every source fully validated before any model is loaded, and the sampler of their batches."""
    found = sources(config, data_path)
    data = [load_source(config, s) for s in found]
    for source, examples in zip(found, data):
        if source.weight > 0 and len(examples) < config.batch_size:
            raise DataError(f"{source.path}: {len(examples)} examples but batch_size is {config.batch_size}; "
                            "lower --batch-size")
    return MixSampler(data, [s.weight for s in found], config.batch_size, config.seed,
                      names=[s.name for s in found])


def total_steps(config: TrainConfig, n_examples: int) -> int:
    """``steps``, or ``epochs`` passes over ``n_examples`` (all sources together) in batches."""
    return config.steps if config.steps is not None else config.epochs * (n_examples // config.batch_size)


def _check_resumable(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse to resume with other settings; a checkpoint of the old flat config shape is nested first."""
    defaults = _dotted(TrainConfig().to_dict())  # a setting added after the checkpoint was written had its default then
    saved, current = _dotted(nest_encoder_settings(saved)), _dotted(current)
    diff = sorted(k for k in current.keys() | saved.keys() if k.partition(".")[0] not in RESUMABLE_CHANGES
                  and saved.get(k, defaults.get(k)) != current.get(k, defaults.get(k)))
    if diff:
        raise ConfigError(f"cannot resume: settings differ from the checkpointed run ({', '.join(diff)}); "
                          "use the same settings or start a new output directory")


def _dotted(config: dict[str, Any]) -> dict[str, Any]:
    """``{"encoder": {"pooling": ...}}`` as ``{"encoder.pooling": ...}``."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update({f"{key}.{inner}": v for inner, v in value.items()})
        else:
            out[key] = value
    return out


def retrieval_evaluator(beir_dir: str | Path, config: TrainConfig) -> Evaluator:
    """nDCG@10 etc. of the current policy as a GraceEncoder (greedy rationales) on a BEIR subset."""
    from grace_rag.evaluation import SubsetSpec, build_subset, evaluate_retrieval, load_beir

    dataset = build_subset(load_beir(beir_dir, config.eval_split), SubsetSpec(n_queries=config.eval_queries))

    def evaluate(encoder: Any) -> dict[str, float]:
        result = evaluate_retrieval(encoder, dataset)
        return {k: v for k, v in result.items() if isinstance(v, (int, float))}

    return evaluate


def _step_of(line: str) -> int | None:
    """The step of a metrics line, or None for a line cut short by a crash."""
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return None


class _MetricsLog:
    """Append-only JSONL of per-step metrics; on resume, lines past the restored step are dropped."""

    def __init__(self, path: Path, keep_until: int) -> None:
        self.path = path
        lines = path.read_text().splitlines() if path.is_file() else []
        kept = [ln for ln in lines if _step_of(ln) is not None and _step_of(ln) <= keep_until]
        path.write_text("".join(ln + "\n" for ln in kept))

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


def train(config: TrainConfig, data_path: str | Path | None = None, *, backbone: Backbone | None = None,
          evaluator: Evaluator | None = None, resume: bool = False, progress: bool = True,
          overwrite: bool = False) -> TrainResult:
    """Run training as ``config`` says and publish the model to ``config.output_dir`` (an earlier
    model there is replaced only with ``overwrite``; other files never)."""
    if not config.output_dir:
        raise ConfigError("no output directory; pass --out DIR (or set output_dir in the config file)")
    out = Path(config.output_dir)
    check_output_dir(out, [Path(source.path) for source in sources(config, data_path)], overwrite)
    work = checkpoint_dir(out)
    existing = list_checkpoints(work)
    if existing and not resume:
        raise ConfigError(f"{work} holds checkpoints of an earlier run; pass --resume to continue it "
                          "or pass another --out to start over")
    if resume and not existing:
        raise ConfigError(f"nothing to resume: no checkpoint in {work}")
    if backbone is None:
        check_frozen_writer_start(config)
    data = load_data(config, data_path)
    n_steps = total_steps(config, data.size)
    if backbone is None:
        backbone = training_backbone(config)
    trainer = GraceTrainer(config, backbone)
    trainer.total_steps = n_steps
    start = 0
    if resume:
        state = load_checkpoint(existing[-1], trainer.policy, trainer.optimizer)
        _check_resumable(state["config"], config.to_dict())
        start = state["step"]
        trainer.memo.load(state["extra"].get("rationale_memo", {}))
    work.mkdir(parents=True, exist_ok=True)
    metrics_log = _MetricsLog(work / "metrics.jsonl", keep_until=start)
    result = TrainResult(out, n_steps, {})
    _evaluate(evaluator, trainer, start, result, metrics_log, when=not resume)
    result.steps = _loop(trainer, data, start, n_steps, work, metrics_log, evaluator, result, progress)
    acc = trainer.accelerator
    acc.wait_for_everyone()
    if acc.is_main_process:
        publish_model(trainer, out, work / "metrics.jsonl", result, evaluator)
        shutil.rmtree(work, ignore_errors=True)
    acc.wait_for_everyone()  # every process returns once the model is published
    return result


def _evaluate(evaluator: Evaluator | None, trainer: GraceTrainer, step: int, result: TrainResult,
              metrics_log: _MetricsLog, when: bool) -> None:
    if evaluator is None or not when or not trainer.accelerator.is_main_process:
        return
    scores = evaluator(trainer.as_encoder())
    log.info("eval at step %d: %s", step, scores)
    result.evals.append({"step": step, **scores})
    metrics_log.write({"step": step, "eval": scores})


def _loop(trainer: GraceTrainer, data: Sequence[Any], start: int, n_steps: int, work: Path,
          metrics_log: _MetricsLog, evaluator: Evaluator | None, result: TrainResult, progress: bool) -> int:
    """Run steps ``start..n_steps`` (or until ``max_minutes`` of this process have passed); return the last step."""
    from tqdm.auto import tqdm

    cfg = trainer.config
    acc = trainer.accelerator
    main = acc.is_main_process
    bar = tqdm(total=n_steps, initial=start, desc="training", unit="step", disable=not (progress and main))
    deadline = time.monotonic() + 60 * cfg.max_minutes if cfg.max_minutes else None
    done = start
    losses = SourceLosses(data.names)
    for step in range(start, n_steps):
        source, batch = data.batch(step)
        # several processes (accelerate launch): each takes its share of the global batch
        metrics = trainer.step(batch[acc.process_index::acc.num_processes], step)
        done = step + 1
        metrics.update(losses.record(source, metrics))
        if main:
            metrics_log.write({"step": done, **metrics})
        result.last_metrics = metrics
        bar.update(1)
        bar.set_postfix_str(losses.postfix(metrics))
        if cfg.save_every and done % cfg.save_every == 0 and done < n_steps and main:
            save_checkpoint(work, done, trainer.policy, trainer.optimizer, cfg.to_dict(),
                            extra={"rationale_memo": trainer.memo.state()})
        if cfg.eval_every and done % cfg.eval_every == 0 and done < n_steps:
            _evaluate(evaluator, trainer, done, result, metrics_log, when=True)
        if deadline is not None and done < n_steps and _all_agree_past(acc, deadline):
            log.info("max_minutes (%s) reached after step %d of %d", cfg.max_minutes, done, n_steps)
            break
    bar.close()
    return done


def _all_agree_past(acc: Any, deadline: float) -> bool:
    """Whether any process has passed ``deadline``; every process calls this each step, so all stop together."""
    flag = torch.tensor([float(time.monotonic() >= deadline)], device=acc.device)
    return bool(all_reduce(acc, flag, "max").item() > 0)


def starting_adapter(config: TrainConfig) -> Path | None:
    """The LoRA adapter directory a run starts from (``--model``, else the default model), or None."""
    from grace_rag.models import ADAPTER_FILE, DEFAULT_MODEL, resolve

    where = resolve(config.model or DEFAULT_MODEL)
    return where if not isinstance(where, str) and (where / ADAPTER_FILE).is_file() else None


def check_frozen_writer_start(config: TrainConfig) -> None:
    """``writer = base`` trains a reader of the untrained base model's rationales, and the trainer's
    writer is a frozen copy of the starting weights: they must be the base's, not an adapter's."""
    from grace_rag.models import DEFAULT_MODEL

    if config.encoder.writer is Writer.BASE and starting_adapter(config) is not None:
        raise ConfigError(f"writer = base starts from the untrained base model, and {config.model or DEFAULT_MODEL!r} "
                          "is a LoRA adapter; pass --model with its base (e.g. --model smollm2-135m-instruct, as "
                          "benchmarks/recipes/default.toml does) or use writer = model")


def training_backbone(config: TrainConfig) -> Backbone:
    """The model to train: a name or directory, or an adapter directory (trained further with --lora)."""
    from grace_rag.encoder import resolve_device
    from grace_rag.models import DEFAULT_MODEL, load_adapter, load_backbone

    device = resolve_device("auto")
    where = starting_adapter(config) if config.lora else None
    if where is None:
        return load_backbone(config.model or DEFAULT_MODEL, device=device)
    base, adapter = load_adapter(where, trainable=True)
    settings = {**base.settings, **read_encoder_settings(where)}
    return Backbone(model=adapter.to(device), tokenizer=base.tokenizer, name=base.name,
                    weights_id=base.weights_id, settings=settings)


def publish_model(trainer: GraceTrainer, out: Path, metrics_path: Path, result: TrainResult,
                  evaluator: Evaluator | None = None) -> Path:
    """Write the adapter (or merged model), settings and logs to ``out`` atomically, scoring what is written."""
    cfg = trainer.config

    def write(tmp: Path) -> None:
        if cfg.lora and not cfg.merge:
            save_adapter(trainer, tmp)
        else:
            trainer.merged_model().save_pretrained(str(tmp), safe_serialization=True)
            trainer.backbone.tokenizer.save_pretrained(str(tmp))
        # what the model was trained for; the number format is the user's machine's business
        encoder = trainer.encoder_config
        settings = {k: v for k, v in encoder.identity().items() if k not in ("max_input_tokens", "quantization")}
        if encoder.writer is Writer.BASE:  # the base writes from as much of a text as it did in training
            settings["writer_input_tokens"] = encoder.writer_reads
        write_encoder_settings(tmp, settings, base_model=trainer.backbone.name, trained_with=cfg.to_dict())
        if metrics_path.is_file():
            shutil.copyfile(metrics_path, tmp / "metrics.jsonl")
        if evaluator is not None:
            _evaluate_published(tmp, evaluator, result)
        summary = {"config": cfg.to_dict(), "base_model": trainer.backbone.name,
                   "encoder_config": trainer.encoder_config.to_dict(), "steps": result.steps,
                   "evals": result.evals, "last_metrics": result.last_metrics}
        (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")

    path = publish_dir(out, write)
    log.info("trained model written to %s", path)
    return path


def save_adapter(trainer: GraceTrainer, directory: Path) -> None:
    """The LoRA adapter alone (a few MB), its config naming the base model as grace-rag resolves it."""
    from grace_rag.models import ADAPTER_FILE

    trainer.policy.save_pretrained(str(directory), safe_serialization=True)
    (directory / "README.md").unlink(missing_ok=True)  # peft's model card template
    config_path = directory / ADAPTER_FILE
    adapter_config = json.loads(config_path.read_text())
    adapter_config["base_model_name_or_path"] = trainer.backbone.name
    config_path.write_text(json.dumps(adapter_config, indent=2) + "\n")


def _evaluate_published(directory: Path, evaluator: Evaluator, result: TrainResult) -> None:
    """Score the model as written in ``directory`` (loaded like any user would) and record it."""
    from grace_rag.config import EncoderConfig
    from grace_rag.encoder import GraceEncoder

    encoder = GraceEncoder(model=str(directory), config=EncoderConfig(cache=False), device="auto")
    scores = evaluator(encoder)
    log.info("eval of the published model after %d steps: %s", result.steps, scores)
    result.evals.append({"step": result.steps, "published": True, **scores})
    with (directory / "metrics.jsonl").open("a") as handle:
        handle.write(json.dumps({"step": result.steps, "eval": scores, "published": True}) + "\n")
