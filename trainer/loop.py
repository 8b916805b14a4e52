"""GraceTrainer: rollout → embeddings (no grad) → rewards → advantages → PPO updates.

Built from a TrainConfig and an already loaded Backbone (injected, so tests pass tiny ones).
Objectives: GRACE's policy loss, the InfoNCE baseline over pooled embeddings, or both.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from grace_rag.config import EncoderConfig, Role
from grace_rag.hf_generation import HFGenerator
from grace_rag.models import Backbone
from grace_rag.prompts import PromptBuilder
from grace_rag.representation import PoolSpec, Representer

from .collectives import all_reduce
from .config import Mode, Objective, TrainConfig
from .contrastive import info_nce
from .estimators import ESTIMATORS, Aggregation, aggregate, kl_k3, policy_loss
from .policy import ReferencePolicy, SequenceOutput, forward_sequences
from .rollout import RationaleMemo, Rollout, Sampler, memo_rollout, supervised_rollout, unsupervised_rollout
from .scoring import Scored, same_query_mask, score

log = logging.getLogger(__name__)


def _mixed_precision(choice: str, device_type: str) -> str:
    """``auto``: bf16 on a GPU that supports it and on a CPU that multiplies bfloat16 natively (AVX512-BF16
    or AMX: about 2x faster than float32 there; weights stay float32), else none."""
    if choice != "auto":
        return choice
    if device_type == "cpu":
        from grace_rag.acceleration import native_bf16_cpu

        return "bf16" if native_bf16_cpu() else "no"
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def _apply_lora(model: Any, config: TrainConfig) -> Any:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ImportError("LoRA training needs peft; install it with: pip install 'grace-rag[train]'") from None
    if hasattr(model, "peft_config"):  # an adapter loaded to be trained further (--model ADAPTER_DIR)
        return model
    lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.lora_target_modules), task_type="CAUSAL_LM")
    with warnings.catch_warnings():  # peft asks transformers a deprecated question (is_gradient_checkpointing)
        warnings.simplefilter("ignore", FutureWarning)
        return get_peft_model(model, lora)


def _frozen_copy(model: Any) -> Any:
    """A frozen copy of ``model`` that writes rationales as inference would on this device: bf16 linear
    layers where the CPU multiplies bf16 natively (``quantization="auto"``), else as it is."""
    import copy

    from grace_rag.acceleration import convert, resolve_quantization
    from grace_rag.config import Quantization

    quantization = resolve_quantization(Quantization.AUTO, model.device.type)
    frozen = convert(model, quantization) if quantization is not Quantization.NONE else copy.deepcopy(model)
    return frozen.eval().requires_grad_(False)


#: how the starting model is served, not what it is: a run decides who writes its rationales itself
SERVING_ONLY = ("writer", "writer_input_tokens")


def training_encoder_config(config: TrainConfig, model_settings: dict[str, Any]) -> EncoderConfig:
    """The encoder this run trains (and publishes): the run's settings, the model's for the rest (except
    who writes the rationales: ``writer`` is the run's own, ``model`` unless set)."""
    inherited = {k: v for k, v in model_settings.items() if k not in SERVING_ONLY}
    return config.encoder.with_changes(cache=False).resolve(inherited)


class GraceTrainer:
    """Holds the policy, optimiser and accelerator; ``step(batch)`` does one optimiser step."""

    def __init__(self, config: TrainConfig, backbone: Backbone, encoder_config: EncoderConfig | None = None) -> None:
        from accelerate import Accelerator

        self.config = config
        self.encoder_config = encoder_config or training_encoder_config(config, backbone.settings)
        device_type = backbone.model.device.type
        precision = _mixed_precision(config.mixed_precision, device_type)
        # bf16 autocasts the gradient passes only (self._autocast); rollouts decode in the weights' own
        # format (under an autocast, rotary keys come out float32 and values bf16, which a static KV
        # cache cannot hold). fp16 needs accelerate's gradient scaler, so accelerate autocasts it.
        self.accelerator = Accelerator(mixed_precision="no" if precision == "bf16" else precision,
                                       cpu=device_type == "cpu")
        self._autocast = (lambda: torch.autocast(device_type, dtype=torch.bfloat16)) if precision == "bf16" \
            else nullcontext
        torch.manual_seed(config.seed)
        self.backbone = backbone
        # fp32 master weights on every device (bf16 weights would swallow most small AdamW updates)
        model = backbone.model.float()
        memo = config.objective == Objective.CONTRASTIVE and config.mode == Mode.SUPERVISED
        keeps_initial = config.lora or config.reference_copy  # (config checks refuse what would need it otherwise)
        writer = _frozen_copy(model) if memo and keeps_initial else None  # before LoRA layers are injected
        model = _apply_lora(model, config) if config.lora else model.requires_grad_(True)
        if config.gradient_checkpointing:  # active in train() mode, i.e. in the gradient passes only
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.policy = self.accelerator.unwrap_model(self.model)
        tok = backbone.tokenizer
        self.spec = PoolSpec(self.encoder_config.pooling, self.encoder_config.layer)
        self.builders = {role: PromptBuilder(tok, self.encoder_config.instruction(role),
                                           self.encoder_config.max_input_tokens)
                         for role in Role}
        self.generator = HFGenerator(self.policy, tok, batch_size=max(1, config.batch_size * config.rollouts))
        self.representer = Representer(self.policy, tok, self.spec, self.generator)
        self.pad_id = self.representer.pad_id
        self.sampler = Sampler(self.representer, self.encoder_config.max_rationale_tokens)
        self.total_steps = 1
        track = (config.track_kl or config.kl_coef > 0) and keeps_initial
        self.reference = ReferencePolicy(self.policy, config.lora) if track else None
        self.memo = RationaleMemo(self._writer(writer, tok) if writer is not None else self.sampler)
        self.spec_rl = ESTIMATORS[config.estimator]
        self._version = 0

    def _writer(self, model: Any, tokenizer: Any) -> Sampler:
        """The memo's writer: a frozen copy of the initial weights, with its own generator."""
        generator = HFGenerator(model, tokenizer, batch_size=max(1, self.config.batch_size))
        return Sampler(Representer(model, tokenizer, self.spec, generator), self.encoder_config.max_rationale_tokens)

    def as_encoder(self) -> Any:
        """The current policy as a GraceEncoder (greedy rationales, no cache), for evaluation."""
        from grace_rag.encoder import GraceEncoder

        self.policy.eval()
        self._version += 1
        backbone = Backbone(model=self.policy, tokenizer=self.backbone.tokenizer, name=self.backbone.name,
                            weights_id=f"{self.backbone.weights_id}:training:{self._version}")
        return GraceEncoder.from_backbone(backbone, self.encoder_config)

    def merged_model(self) -> Any:
        """The trained causal LM with any LoRA adapter merged in, in fp32 (ends training: merges in place)."""
        self.policy.eval()
        return self.policy.merge_and_unload() if self.config.lora else self.policy

    def contrastive_weight(self, step: int) -> float:
        """The InfoNCE weight at ``step``: constant, or linear to ``contrastive_weight_end`` by the last step."""
        cfg = self.config
        if cfg.contrastive_weight_end is None:
            return cfg.contrastive_weight
        frac = min(1.0, step / max(1, self.total_steps - 1))
        return cfg.contrastive_weight + frac * (cfg.contrastive_weight_end - cfg.contrastive_weight)

    # -- one step -------------------------------------------------------------------------
    def step(self, batch: Sequence[Any], step: int) -> dict[str, float]:
        """Rollout, rewards, advantages, then ``ppo_epochs`` x ``ppo_minibatches`` optimiser updates."""
        started = time.perf_counter()
        cfg = self.config
        self.policy.eval()
        rollout = self.rollout(batch, step)
        same = same_query_mask(batch)
        metrics: dict[str, float] = {}
        scored = None
        if cfg.objective != Objective.CONTRASTIVE:
            documents = ([t.positive for t in batch] + [n for t in batch for n in t.negatives]
                         if cfg.mode == Mode.SUPERVISED else None)
            scored = score(cfg, rollout, same, documents)
            metrics.update(scored.metrics)
            if scored.warning:
                log.warning("step %d: %s", step + 1, scored.warning)
        self.policy.train()
        metrics.update(self._update(rollout, scored, same, self.contrastive_weight(step)))
        lengths = [len(t) for t in rollout.group.token_ids]
        metrics.update(rationale_len=sum(lengths) / len(lengths),
                       finished_frac=float(rollout.group.finished.float().mean()),
                       s_per_step=time.perf_counter() - started)
        return metrics

    def rollout(self, batch: Sequence[Any], step: int) -> Rollout:
        """Sample this step's rationales (no gradient) with their pooled embeddings and log-probs."""
        cfg = self.config
        doc = self.builders[Role.DOCUMENT].build
        if cfg.objective == Objective.CONTRASTIVE and cfg.mode == Mode.SUPERVISED:
            # InfoNCE trains the representation of the rationales the encoder writes (greedy):
            # each text's is decoded once and reused in later steps and epochs
            return memo_rollout(self.memo, self.builders[Role.QUERY].build, doc, batch,
                                self.encoder_config.rationale_tokens(Role.QUERY),
                                self.encoder_config.max_rationale_tokens, cfg.negatives_per_query)
        common = dict(rollout_temperature=cfg.rollout_temperature, single_temperature=cfg.single_temperature,
                      seed=cfg.seed, step=step, greedy=self.spec_rl.needs_greedy_baseline
                      and cfg.objective != Objective.CONTRASTIVE)
        if cfg.mode == Mode.UNSUPERVISED:
            k = 1 if cfg.objective == Objective.CONTRASTIVE else cfg.rollouts
            return unsupervised_rollout(self.sampler, doc, batch, k=k, **common)
        return supervised_rollout(self.sampler, self.builders[Role.QUERY].build, doc, batch, k=cfg.rollouts,
                                  negatives=cfg.negatives_per_query,
                                  query_tokens=self.encoder_config.rationale_tokens(Role.QUERY), group=cfg.objective != Objective.CONTRASTIVE, **common)

    # -- gradient pass ---------------------------------------------------------------------
    def _update(self, ro: Rollout, scored: Scored | None, same: Tensor | None, cl_weight: float) -> dict[str, float]:
        """PPO passes over the kept groups, each split into mini-batches (one optimiser update each)
        and micro-batches (accumulated). The first pass's ratio is 1; later ones are not, so clipping acts."""
        cfg = self.config
        groups = list(range(len(ro.context.prompts)))
        if scored is not None and cfg.objective == Objective.GRACE:
            groups = [g for g in groups if bool(scored.keep[g])]
        epochs = cfg.ppo_epochs if scored is not None else 1
        old = _old_logprobs(ro) if scored is not None else None
        sums: dict[str, float] = {}
        updates = 0
        for _ in range(epochs):
            for mini in _split(groups, cfg.ppo_minibatches):
                if not mini:  # every group left out by dynamic sampling
                    continue
                stats = self._minibatch(ro, mini, scored, old, same, cl_weight)
                stats["grad_norm"] = self._optimizer_step()
                for key, value in stats.items():
                    sums[key] = sums.get(key, 0.0) + value
                updates += 1
        out = {key: value / max(1, updates) for key, value in sums.items()}
        out["updates"] = float(updates)
        return out

    def _minibatch(self, ro: Rollout, groups: list[int], scored: Scored | None, old: list[Tensor] | None,
                   same: Tensor | None, cl_weight: float) -> dict[str, float]:
        """Accumulate the gradient of one mini-batch over its micro-batches; losses normalised over the mini-batch."""
        k = ro.k
        n_tokens = sum(len(ro.group.token_ids[g * k + j]) for g in groups for j in range(k))
        totals = {"num_tokens": float(max(1, n_tokens)), "num_seqs": float(len(groups) * k)}
        micro = [m for m in _split(groups, self.config.grad_accum) if m]
        sums: dict[str, float] = {}
        with self.accelerator.no_sync(self.model):  # gradients are averaged in _optimizer_step (average_gradients)
            for rows in micro:
                with self._autocast():
                    loss, stats = self._micro_loss(ro, rows, scored, old, same, totals, cl_weight, len(micro))
                self.accelerator.backward(loss)
                for key, value in stats.items():
                    sums[key] = sums.get(key, 0.0) + value / (1 if key in ("policy_loss", "kl") else len(micro))
        return sums

    def _micro_loss(self, ro: Rollout, rows: list[int], scored: Scored | None, old: list[Tensor] | None,
                    same: Tensor | None, totals: dict[str, float], cl_weight: float,
                    n_micro: int) -> tuple[Tensor, dict[str, float]]:
        cfg = self.config
        k = ro.k
        idx = [i * k + j for i in rows for j in range(k)]
        prompts = [ro.group.prompts[i] for i in idx]
        tokens = [ro.group.token_ids[i] for i in idx]
        use_cl = cfg.objective != Objective.GRACE
        use_pl = scored is not None and cfg.objective != Objective.CONTRASTIVE
        out = forward_sequences(self.model, prompts, tokens, self.pad_id,
                                cfg.rollout_temperature if use_pl else 1.0, self.spec if use_cl else None,
                                logprobs=use_pl or self._uses_lm())
        loss = out.logp.new_zeros(())
        stats: dict[str, float] = {}
        if use_pl and old is not None:
            adv = scored.advantages[rows].reshape(-1).to(out.logp.device)  # (n,)
            old_logp = _right_aligned([old[i] for i in idx], out.logp.shape[1]).to(out.logp.device)  # (n, T)
            pl, pstats = policy_loss(cfg.estimator, out.logp, old_logp, adv, out.mask,
                                     clip_eps=cfg.clip_eps, clip_eps_high=cfg.clip_eps_high,
                                     dual_clip=cfg.dual_clip, max_len=self.encoder_config.max_rationale_tokens, **totals)
            loss = loss + pl
            stats.update(policy_loss=float(pl.detach()), clip_frac=pstats["clip_frac"],
                         ratio_dev=float(((out.logp.detach() - old_logp).exp() - 1).abs()[out.mask.bool()].mean())
                         if out.mask.any() else 0.0)
            if self.reference is not None:
                kl = self._kl(prompts, tokens, out.logp, out.mask, totals)
                loss = loss + cfg.kl_coef * kl
                stats["kl"] = float(kl.detach())
        if use_cl:
            cl, lm = self._contrastive(ro, rows, out, same)
            loss = loss + cl_weight * cl / n_micro
            stats.update(contrastive_loss=float(cl.detach()), contrastive_weight=cl_weight)
            if lm is not None:
                loss = loss + cfg.lm_weight * lm / n_micro
                stats["lm_term"] = float(lm.detach())
        return loss, stats

    def _kl(self, prompts, tokens, logp: Tensor, mask: Tensor, totals: dict[str, float]) -> Tensor:
        """Token-mean k3 estimate of KL(policy || initial policy) over the rationale tokens."""
        ref = self.reference.logprobs(prompts, tokens, self.pad_id, self.config.rollout_temperature)
        return aggregate(kl_k3(logp, ref.to(logp.device)), mask, Aggregation.TOKEN_MEAN, max_len=1,
                         num_tokens=totals["num_tokens"])

    def _contrastive(self, ro: Rollout, rows: list[int], positives: SequenceOutput,
                     same: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """InfoNCE of the rows' queries (or anchors) against their positives and negatives, with gradient;
        and the language-model term over the same passes (None unless ``lm_weight`` > 0)."""
        cfg = self.config
        k = ro.k
        lm = self._uses_lm()
        ctx = [ro.context.prompts[i] for i in rows], [ro.context.token_ids[i] for i in rows]
        q_out = forward_sequences(self.model, *ctx, self.pad_id, 1.0, self.spec, logprobs=lm)
        pos = positives.pooled.view(len(rows), k, -1)[:, 0]  # (n, D)
        neg, blocked, parts = None, None, [(positives, ro.group, [i * k for i in rows]), (q_out, ro.context, rows)]
        if ro.negatives is not None and ro.negative_owner is not None:  # flat: each row's own negatives
            nidx = [j for j, owner in enumerate(ro.negative_owner) if owner in rows]
            if nidx:
                n_out = self._forward_sampled(ro.negatives, nidx, lm)
                neg = n_out.pooled  # (N, D)
                parts.append((n_out, ro.negatives, nidx))
                own = [{tuple(ro.group.prompts[j * k].input_ids) for j in rows if j == i or
                        (same is not None and bool(same[i, j]))} for i in rows]
                blocked = torch.tensor([[tuple(ro.negatives.prompts[j].input_ids) in own[r] for j in nidx]
                                        for r in range(len(rows))], dtype=torch.bool)  # (n, N)
        elif ro.negatives is not None:
            m = len(ro.negatives.prompts) // len(ro.context.prompts)
            nidx = [i * m + j for i in rows for j in range(m)]
            if nidx:
                neg = self._forward_sampled(ro.negatives, nidx, False).pooled.view(len(rows), m, -1)  # (n, M, D)
        sub = same[rows][:, rows] if same is not None else None
        loss = info_nce(q_out.pooled, pos, neg, cfg.infonce_tau, sub, blocked)
        return loss, (_lm_term(parts) if lm else None)

    def _forward_sampled(self, sampled: Any, idx: list[int], logprobs: bool) -> SequenceOutput:
        return forward_sequences(self.model, [sampled.prompts[i] for i in idx], [sampled.token_ids[i] for i in idx],
                                 self.pad_id, 1.0, self.spec, logprobs=logprobs)

    def _uses_lm(self) -> bool:
        return self.config.lm_weight > 0 and self.config.objective == Objective.CONTRASTIVE

    def _optimizer_step(self) -> float:
        params = [p for p in self.model.parameters() if p.requires_grad]
        average_gradients(self.accelerator, params)
        max_norm = self.config.grad_clip if self.config.grad_clip > 0 else float("inf")
        norm = self.accelerator.clip_grad_norm_(params, max_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.generator.forget_prefixes()  # the shared system-prefix KV was computed with the old weights
        return float(norm)


def average_gradients(accelerator: Any, params: list[Any], bucket: int = 1 << 24) -> None:
    """Average gradients over processes in place (nothing to do in one process).

    Done here rather than by DDP's hooks: a step makes several forward passes before one backward,
    and layers past the pooled one (``layer = penultimate``) or an untied LM head get no gradient
    from InfoNCE, which DDP's reducer cannot finish. A parameter without a gradient on every
    process keeps ``grad = None`` (AdamW then leaves it alone, as in one process).
    """
    if accelerator.num_processes == 1:
        return
    has = torch.tensor([float(p.grad is not None) for p in params], device=accelerator.device)
    live = [p for p, flag in zip(params, all_reduce(accelerator, has, "max").tolist()) if flag > 0]
    for group in _buckets(live, bucket):
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in group])
        flat = all_reduce(accelerator, flat, "mean")  # (sum of numel,)
        offset = 0
        for p in group:
            p.grad = flat[offset:offset + p.numel()].view_as(p).clone()
            offset += p.numel()


def _buckets(params: list[Any], limit: int) -> list[list[Any]]:
    """Consecutive groups of parameters of at most ``limit`` elements each (a bigger one alone)."""
    groups: list[list[Any]] = [[]]
    size = 0
    for p in params:
        if groups[-1] and size + p.numel() > limit:
            groups.append([])
            size = 0
        groups[-1].append(p)
        size += p.numel()
    return [g for g in groups if g]


def _split(items: list[int], parts: int) -> list[list[int]]:
    """``items`` in ``parts`` consecutive chunks as even as possible (some may be empty)."""
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for p in range(parts):
        end = start + size + (1 if p < extra else 0)
        out.append(items[start:end])
        start = end
    return out


def _old_logprobs(ro: Rollout) -> list[Tensor]:
    """Each group rollout's token log-probs under the policy that sampled it (stored at sampling time)."""
    return [torch.tensor(r.logprobs if r.logprobs is not None else [0.0] * len(r.token_ids), dtype=torch.float32)
            for r in ro.group.rationales]


def _lm_term(parts: list[tuple[SequenceOutput, Any, list[int]]]) -> Tensor:
    """The language-model term: token mean of ``log p_writer(t) - log p_policy(t)`` over every rationale
    token of the passes in ``parts`` (the writer's log-probs are stored with the memoised rationales).

    Its gradient is the NLL gradient of the writer's own rationales; it is 0 while the policy
    still equals the writer (an adapter that changes nothing).
    """
    total, count = None, 0
    for out, sampled, idx in parts:
        if not out.logp.numel():
            continue
        writer = _right_aligned([torch.tensor(sampled.rationales[i].logprobs or [], dtype=torch.float32)
                                 for i in idx], out.logp.shape[1]).to(out.logp.device)  # (n, T)
        term = ((writer - out.logp) * out.mask).sum()
        total = term if total is None else total + term
        count += int(out.mask.sum())
    if total is None:
        return torch.zeros(())
    return total / max(1, count)


def _right_aligned(rows: list[Tensor], width: int) -> Tensor:
    """(n, width): each row's values at its right edge (as forward_sequences lays out rationale tokens)."""
    out = torch.zeros(len(rows), width)
    for i, row in enumerate(rows):
        if len(row):
            out[i, width - len(row):] = row[-width:]
    return out
