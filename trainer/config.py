"""The one configuration object of the GRACE trainer, its choices, and TOML/YAML loading."""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from grace_rag.config import EncoderConfig, Writer, parse_choice
from grace_rag.errors import ConfigError, choice_error
from grace_rag.fieldtypes import check_field_types
from grace_rag.textio import read_text

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from .estimators import ESTIMATORS, Estimator
from .mix import DataSource, check_weights

log = logging.getLogger(__name__)

#: settings of the encoder that TrainConfig once declared at its top level (before the ``encoder`` table)
FLAT_ENCODER_KEYS = ("max_rationale_tokens", "query_rationale_tokens", "max_input_tokens", "layer", "pooling")


class Mode(str, enum.Enum):
    """What the training data is: triplets (q, d+, d-) or a plain corpus."""

    SUPERVISED = "supervised"
    UNSUPERVISED = "unsupervised"


class Objective(str, enum.Enum):
    """What is optimised: GRACE policy loss, the InfoNCE baseline, or their sum."""

    GRACE = "grace"
    CONTRASTIVE = "contrastive"
    BOTH = "both"


class RewardVariant(str, enum.Enum):
    """Supervised rewards (``grace_rag.trainer.rewards.VARIANTS``).

    ``paper``: as in GRACE (its negative and hard terms are constant inside a group and cancel);
    ``per_rollout``: negative and hard terms compare each rollout (vary inside a group);
    ``soft_rank``: InfoNCE as a reward, log-softmax of sim(q, d+_k) against the batch's other
    documents and negatives; ``margin``: sim(q, d+_k) - max sim(neg, d+_k).
    """

    PAPER = "paper"
    PER_ROLLOUT = "per_rollout"
    SOFT_RANK = "soft_rank"
    MARGIN = "margin"


def _f(default: Any, help: str, **cli: Any) -> Any:
    """A dataclass field with a default and a one-line help; ``cli``: how its generated option is spelled
    (``aliases``, ``off``, ``metavar``, ``parse``, ``flag``; ``cli=False``: config files only; see
    :mod:`grace_rag.cli.settings`)."""
    metadata = {"help": help, **cli}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def train_encoder() -> EncoderConfig:
    """The encoder a run trains by default: the paper's 256-token rationales and 512-token inputs;
    pooling and layer follow the model being trained."""
    return EncoderConfig(max_rationale_tokens=256, query_rationale_tokens=None, max_input_tokens=512)


def parse_length_penalty(value: str) -> float | None:
    """``--length-penalty``: a number, or "off" (None)."""
    if value.strip().lower() == "off":
        return None
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"expected a number or 'off', got {value!r}") from None


@dataclass
class TrainConfig:
    """Every knob of the trainer. Defaults follow the authors' code (method.md §2)."""

    mode: Mode = _f(Mode.SUPERVISED, "supervised (triplets) or unsupervised (plain corpus)")
    data: list[DataSource] = _f([], "training data, repeatable: FILE[:WEIGHT] (a JSONL file, a BEIR folder, an STS .tsv, "
                                    "or a plain corpus when unsupervised); each batch comes from one source, "
                                    "drawn in proportion to the weights", metavar="FILE[:WEIGHT]",
                                parse=DataSource.parse, extend=True)
    mine_negatives: bool = _f(False, "give pairs without a negative the best BM25 match among their source's other "
                                     "positives (default: such pairs get in-batch negatives only)")
    objective: Objective = _f(Objective.GRACE, "grace (policy loss), contrastive (InfoNCE baseline) or both")
    model: str | None = _f(None, "model to start from: a name, a model directory, or a LoRA adapter directory "
                                 "(with --lora that adapter is trained further) (None: the encoder's default model)",
                           aliases=("-m", "--init-from"))
    rollouts: int = _f(8, "K: sampled rationales per positive (or per text, unsupervised)", aliases=("-k",))
    batch_size: int = _f(64, "B: triplets (or texts) per optimiser step", aliases=("-b",))
    tau: float = _f(0.1, "temperature dividing the total reward")
    lambda_consistency: float = _f(0.2, "lambda1: weight of the consistency reward")
    lambda_hard: float = _f(0.2, "lambda2: weight of the in-batch hard-negative reward")
    lambda_grounding: float = _f(0.0, "weight of the grounding reward (supervised): the reciprocal rank of a rollout's own "
                                      "text among the batch's texts when its rationale alone is a BM25 query")
    reward_variant: RewardVariant = _f(RewardVariant.PAPER, "supervised reward: paper, per_rollout, soft_rank (InfoNCE as a reward) or margin")
    rollout_temperature: float = _f(1.0, "sampling temperature of the K rollouts")
    single_temperature: float = _f(0.5, "sampling temperature of the single query/negative/anchor rationale")
    encoder: EncoderConfig = field(default_factory=train_encoder, metadata={"help": (
        "settings of the encoder being trained, recorded in the published model: an [encoder] table in TOML, "
        "encoder: in YAML, the encoder options on the command line (unset ones follow the model)")})
    length_penalty: float | None = _f(-1.0, "reward of a rollout cut at the length limit without EOS; \"off\" (or None): "
                                            "cut rollouts keep their reward", metavar="FLOAT|off", parse=parse_length_penalty)
    estimator: Estimator = _f(Estimator.GRPO, "RL estimator: grpo, dr_grpo, dapo, reinforce_pp, remax")
    advantage_std_floor: float | None = _f(None, "divide advantages by max(group reward std, this floor) (None: no std division, the paper)")
    dynamic_sampling: bool = _f(False, "leave groups whose K rewards are all equal out of the policy update (counted per step)")
    ppo_epochs: int = _f(1, "passes of PPO updates over each step's rollouts (the paper: 1); later passes see ratio != 1")
    ppo_minibatches: int = _f(1, "optimiser updates per PPO pass: the step's groups are split into this many mini-batches")
    clip_eps: float = _f(0.2, "PPO clip epsilon (lower; also upper unless clip_eps_high is set)")
    clip_eps_high: float | None = _f(None, "upper PPO clip epsilon (None: estimator default, 0.28 for dapo)")
    dual_clip: float = _f(3.0, "dual-clip constant c bounding the loss of negative advantages")
    kl_coef: float = _f(0.0, "coefficient of the KL penalty to the initial policy (paper: 0)")
    track_kl: bool = _f(True, "compute KL to the initial policy every step as a metric")
    reference_copy: bool = _f(True, "full fine-tuning: keep a frozen copy of the initial weights (the KL reference and "
                                    "the writer of the contrastive objective's rationales; twice the memory). With LoRA "
                                    "the initial weights are the adapter switched off and no copy is needed")
    infonce_tau: float = _f(0.05, "temperature of the InfoNCE contrastive loss")
    contrastive_weight: float = _f(1.0, "weight of the InfoNCE loss in the 'both' objective")
    lm_weight: float = _f(0.0, "weight of the language-model term (contrastive objective): NLL of the base model's own "
                               "greedy rationales, relative to the base; keeps the model writing as it did (0: off)")
    contrastive_weight_end: float | None = _f(None, "if set, the InfoNCE weight moves linearly from contrastive_weight to this by the last step")
    learning_rate: float = _f(1e-6, "AdamW learning rate, constant (paper 1e-6 full; ~1e-4 suits LoRA)",
                              aliases=("--lr",))
    weight_decay: float = _f(0.01, "AdamW weight decay")
    grad_clip: float = _f(1.0, "maximum global gradient norm (0: no clipping)")
    steps: int | None = _f(None, "optimiser steps (None: run `epochs` passes over the data)")
    epochs: int = _f(1, "passes over the data when `steps` is not set")
    max_minutes: float | None = _f(None, "wall-clock budget: stop after the step that passes it and save (None: no limit)")
    grad_accum: int = _f(1, "micro-batches per update; gradients accumulate. InfoNCE negatives come from the "
                            "micro-batch only, so grad_accum > 1 gives InfoNCE fewer in-batch negatives")
    lora: bool = _f(False, "train a LoRA adapter (peft) instead of all weights", off="--full")
    lora_rank: int = _f(16, "LoRA rank r")
    lora_alpha: int = _f(32, "LoRA alpha")
    lora_dropout: float = _f(0.0, "LoRA dropout")
    lora_target_modules: list[str] = _f(
        ["q_proj", "k_proj", "v_proj", "o_proj"], "module names LoRA adapts")
    merge: bool = _f(False, "with lora: publish merged full weights instead of the adapter (a few MB)",
                     off="--adapter")
    negatives_per_query: int = _f(1, "BM25 hard negatives per query when building triplets from BEIR")
    mixed_precision: str = _f("auto", "accelerate mixed precision: auto, no, bf16 or fp16")
    gradient_checkpointing: bool = _f(False, "recompute each layer's activations in the backward pass instead of keeping "
                                             "them: about a third more compute, a fraction of the memory (a batch of 16 "
                                             "at 128 input tokens: ~11 GB without)")
    seed: int = _f(0, "random seed (data order, sampling, initialisation)")
    output_dir: str | None = _f(None, "where the trained model directory is written", aliases=("--out", "-o"))
    save_every: int = _f(50, "checkpoint every N steps (0: only at the end)")
    eval_every: int = _f(0, "evaluate every N steps when an eval set is given (0: before and after only)")
    eval_split: str = _f("dev", "qrels split of the evaluation BEIR folder")
    eval_queries: int = _f(50, "queries in the evaluation subset (their positives, BM25 distractors, random fill)")

    def __post_init__(self) -> None:
        if isinstance(self.length_penalty, str):
            if self.length_penalty.strip().lower() != "off":
                raise ConfigError(f"length_penalty must be a number or \"off\", got {self.length_penalty!r}")
            self.length_penalty = None
        self.mode = parse_choice(Mode, self.mode, "mode")
        self.objective = parse_choice(Objective, self.objective, "objective")
        self.estimator = parse_choice(Estimator, self.estimator, "estimator")
        self.reward_variant = parse_choice(RewardVariant, self.reward_variant, "reward variant")
        if not isinstance(self.data, (list, tuple)):
            raise ConfigError(f"data must be a list of sources (FILE[:WEIGHT] or {{path, weight}}), got {self.data!r}")
        self.data = [DataSource.coerce(source) for source in self.data]
        check_weights(self.data)
        check_field_types(self)  # types first (one line per field), then the ranges below
        self._check()

    def _check(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(msg)

        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        uses_groups = self.objective != Objective.CONTRASTIVE
        baseline = ESTIMATORS[self.estimator]
        need(not uses_groups or self.rollouts >= 2 or not baseline.group_baseline,
             f"rollouts must be >= 2 for the {self.objective.value} objective with the {self.estimator.value} "
             f"estimator (a group of one has zero advantage against its own mean), got {self.rollouts}")
        need(not uses_groups or self.batch_size * self.rollouts >= 2,
             "batch_size x rollouts must be >= 2: a single rollout has nothing to be compared with")
        need(self.advantage_std_floor is None or self.advantage_std_floor > 0,
             f"advantage_std_floor must be > 0 (or unset), got {self.advantage_std_floor}")
        need(self.ppo_epochs >= 1 and self.ppo_minibatches >= 1, "ppo_epochs and ppo_minibatches must be >= 1")
        need(self.batch_size % (self.ppo_minibatches * self.grad_accum) == 0,
             f"batch_size ({self.batch_size}) must be divisible by ppo_minibatches x grad_accum "
             f"({self.ppo_minibatches} x {self.grad_accum})")
        need(self.tau > 0, f"tau must be > 0, got {self.tau}")
        need(self.infonce_tau > 0, f"infonce_tau must be > 0, got {self.infonce_tau}")
        need(self.rollout_temperature > 0,
             f"rollout_temperature must be > 0 (rollouts are sampled), got {self.rollout_temperature}")
        need(self.single_temperature >= 0, f"single_temperature must be >= 0, got {self.single_temperature}")
        need(self.encoder.max_rationale_tokens >= 1, "encoder.max_rationale_tokens must be >= 1 for training "
             f"(rollouts are rationales), got {self.encoder.max_rationale_tokens}")
        need(self.length_penalty is None or math.isfinite(self.length_penalty),
             f"length_penalty must be a finite number or \"off\", got {self.length_penalty}")
        need(0 < self.clip_eps < 1, f"clip_eps must be in (0, 1), got {self.clip_eps}")
        need(self.clip_eps_high is None or self.clip_eps_high > 0,
             f"clip_eps_high must be > 0, got {self.clip_eps_high}")
        need(self.dual_clip > 1, f"dual_clip must be > 1, got {self.dual_clip}")
        need(self.kl_coef >= 0, f"kl_coef must be >= 0, got {self.kl_coef}")
        need(not (self.estimator == Estimator.DAPO and self.kl_coef > 0),
             "the dapo estimator uses no KL penalty; set kl_coef = 0 or choose another estimator")
        need(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        need(self.weight_decay >= 0 and self.grad_clip >= 0, "weight_decay and grad_clip must be >= 0")
        need(self.steps is None or self.steps >= 1, f"steps must be >= 1, got {self.steps}")
        need(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        need(self.max_minutes is None or self.max_minutes > 0, f"max_minutes must be > 0, got {self.max_minutes}")
        need(self.grad_accum >= 1 and self.batch_size % self.grad_accum == 0,
             f"grad_accum ({self.grad_accum}) must be >= 1 and divide batch_size ({self.batch_size})")
        need(self.lora_rank >= 1, f"lora_rank must be >= 1, got {self.lora_rank}")
        need(not self.lora or bool(self.lora_target_modules), "lora_target_modules must not be empty")
        need(self.negatives_per_query >= 1, f"negatives_per_query must be >= 1, got {self.negatives_per_query}")
        valid_mp = ["auto", "no", "bf16", "fp16"]
        if self.mixed_precision not in valid_mp:
            raise choice_error("mixed precision", self.mixed_precision, valid_mp)
        need(self.save_every >= 0 and self.eval_every >= 0, "save_every and eval_every must be >= 0")
        need(self.eval_queries >= 1, f"eval_queries must be >= 1, got {self.eval_queries}")
        need(self.rollouts >= 1, f"rollouts must be >= 1, got {self.rollouts}")
        need(self.lora_alpha >= 1, f"lora_alpha must be >= 1, got {self.lora_alpha}")
        need(0 <= self.lora_dropout < 1, f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        need(0 <= self.seed < 2**32, f"seed must be in [0, 2**32), got {self.seed}")
        need(self.lm_weight >= 0 and math.isfinite(self.lm_weight), f"lm_weight must be >= 0, got {self.lm_weight}")
        no_copy = not self.lora and not self.reference_copy
        need(not (no_copy and (self.kl_coef > 0 or self.lm_weight > 0)),
             "kl_coef and lm_weight compare the policy with its initial weights; full fine-tuning with "
             "reference_copy = false keeps no copy of them: set reference_copy = true, use lora, or set both to 0")
        need(self.encoder.writer is not Writer.BASE or (self.lora and not self.merge),
             "writer = base serves the trained weights as a reader of the base model's rationales, so the base "
             "must stay known: train a LoRA adapter (lora = true, merge = false) or use writer = model")
        need(self.encoder.writer is not Writer.BASE or self.objective == Objective.CONTRASTIVE,
             "writer = base: the base model writes every rationale, so the grace/both objectives have nothing to "
             "train; use objective = contrastive or writer = model")
        need(not self.encoder.writer_truncates,
             "encoder.writer_input_tokens is an encoding setting: the trainer writes each rationale from the "
             "max_input_tokens it trains on; leave writer_input_tokens unset for training (set it when indexing)")
        need(self.lm_weight == 0 or self.objective == Objective.CONTRASTIVE,
             "lm_weight applies to the contrastive objective (it scores the base model's memoised rationales); "
             "for the grace/both objectives keep the policy near the base with kl_coef")
        need(self.lambda_grounding >= 0, f"lambda_grounding must be >= 0, got {self.lambda_grounding}")
        need(min(self.lambda_consistency, self.lambda_hard, self.contrastive_weight) >= 0
             and (self.contrastive_weight_end is None or self.contrastive_weight_end >= 0),
             "lambda_consistency, lambda_hard, contrastive_weight and contrastive_weight_end must be >= 0")
        need(bool(self.eval_split.strip()), "eval_split must name a qrels split, e.g. dev")

    @property
    def upper_clip(self) -> float:
        """The upper clip epsilon in force (estimator default when ``clip_eps_high`` is None)."""
        if self.clip_eps_high is not None:
            return self.clip_eps_high
        return ESTIMATORS[self.estimator].clip_high or self.clip_eps

    def to_dict(self) -> dict[str, Any]:
        """JSON-able settings (enums as their string values); ``encoder``: its explicit settings only,
        so ``from_dict(to_dict())`` gives the same config."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.value if isinstance(v, enum.Enum) else v
        out["encoder"] = self.encoder.to_dict(explicit_only=True)
        out["data"] = [{"path": s.path, "weight": s.weight} for s in self.data]
        return out

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed (``None`` values are ignored), checked again."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "TrainConfig":
        """Build from a mapping with an ``encoder`` mapping inside; unknown keys are refused with the
        list of valid ones. A flat mapping of the old shape (encoder settings at the top level) is
        moved into ``encoder`` with one deprecation warning."""
        data = nest_encoder_settings(data, source, warn=True)
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - valid)
        if unknown:
            raise ConfigError(f"{source}: unknown setting(s) {', '.join(unknown)}; "
                              f"valid settings are: {', '.join(sorted(valid))}")
        table = data.pop("encoder", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: encoder must be a table of encoder settings ([encoder] in TOML, "
                              f"encoder: in YAML), got {table!r}")
        checked = EncoderConfig.from_dict(table, f"{source}: [encoder]")
        encoder = train_encoder().with_changes(**checked.to_dict(explicit_only=True))
        try:
            return cls(encoder=encoder, **data)
        except TypeError as exc:
            raise ConfigError(f"{source}: {exc}") from None


def nest_encoder_settings(data: dict[str, Any], source: str = "config", warn: bool = False) -> dict[str, Any]:
    """A config mapping of the old flat shape with its encoder settings moved into ``encoder``.

    Old configs and checkpoints wrote ``max_rationale_tokens`` ... ``pooling`` at the top level
    (``layer``/``pooling`` None meant "the model's"); the shape is accepted for one release.
    """
    flat = [key for key in FLAT_ENCODER_KEYS if key in data]
    if not flat:
        return dict(data)
    table = data.get("encoder", {})
    if not isinstance(table, dict):
        return dict(data)  # from_dict names the problem
    both = sorted(set(flat) & set(table))
    if both:
        raise ConfigError(f"{source}: {', '.join(both)} given both at the top level and under encoder; "
                          "keep only the encoder one")
    if warn:
        log.warning("%s: %s at the top level is deprecated; move it into the [encoder] table (encoder: in YAML)",
                    source, ", ".join(flat))
    out = {k: v for k, v in data.items() if k not in flat}
    moved = {k: data[k] for k in flat if not (k in ("layer", "pooling") and data[k] is None)}
    out["encoder"] = {**moved, **table}
    return out


def load_config(path: str | Path) -> TrainConfig:
    """Read a TrainConfig from a TOML (``.toml``), YAML (``.yaml``/``.yml``) or JSON file.

    A ``[train]`` table (or ``train:`` mapping) is used when present, else the top level; encoder
    settings go in an ``[encoder]`` table (``[train.encoder]`` inside ``[train]``).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = read_text(path)  # bytes that are not UTF-8: one line with file:line:column
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ImportError("YAML config files need PyYAML: pip install 'grace-rag[train]'") from None
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = yaml.load(text, Loader=_loader_without_aliases(yaml)) or {}
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"config file {path}: unknown format {suffix!r}; use .toml, .yaml or .json")
    except ConfigError:
        raise
    except Exception as exc:  # parser errors carry line numbers in their message (YAML's over several lines)
        raise ConfigError(f"config file {path} cannot be parsed: {' '.join(str(exc).split())[:500]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of settings at the top level")
    if isinstance(data.get("train"), dict):
        if "encoder" in data and "encoder" in data["train"]:
            raise ConfigError(f"config file {path}: encoder settings given twice ([encoder] and [train.encoder]); "
                              "keep one")
        data = {**({"encoder": data["encoder"]} if "encoder" in data else {}), **data["train"]}
    return TrainConfig.from_dict(data, source=str(path))


def _loader_without_aliases(yaml: Any) -> Any:
    """PyYAML's safe loader, refusing aliases (``*name``): a config needs none, and nested aliases expand
    into values of gigabytes (a "billion laughs" file), which an error message would then print."""

    class Loader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.events.AliasEvent):
                event = self.peek_event()
                raise yaml.YAMLError(f"line {event.start_mark.line + 1}: aliases (*{event.anchor}) are not "
                                     "supported in config files; write the value out")
            return super().compose_node(parent, index)

    return Loader


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write the config as JSON (used beside checkpoints and the output model)."""
    Path(path).write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")
