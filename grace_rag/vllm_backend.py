"""vLLM rationale generator (CUDA GPUs): the same one-method interface as the HF backend.

vLLM's ``LLM.generate`` returns text and token ids, not hidden states, so the encoder pools with
one forward pass of the HF model over P(x) ⊕ r (``Representer.pool_sequences``, chosen
automatically for any generator that is not a ``FusedGenerator``): the same masks, layer and
pooling as the CPU path. Prompts go in as token ids (``TokensPrompt``), so vLLM sees exactly the
prompt the HF path builds; the stop tokens are the HF path's (generation config + tokenizer), and
rationales are decoded by the HF tokenizer with the HF path's rules (``decode_rationale``).

Written against vLLM 0.33.0 (the version pinned by the ``vllm`` extra);
``tests/core/test_vllm_contract.py`` checks these calls against the installed vLLM's signatures.
Install with ``pip install 'grace-rag[vllm]'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from grace_rag.errors import ConfigError
from grace_rag.generation import GenerationSettings, Progress, Rationale, RationaleGenerator, decode_rationale
from grace_rag.prompts import PromptIds

#: vLLM engine options set unless the caller passes them: room on the GPU for the HF pooling pass,
#: and log-probs of the distribution tokens are sampled from (after temperature/top-p), as Rationale documents
LLM_DEFAULTS: dict[str, Any] = {"gpu_memory_utilization": 0.6, "logprobs_mode": "processed_logprobs"}


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise ImportError("the vLLM backend needs vllm: pip install 'grace-rag[vllm]' (CUDA GPU machines)") from None
    return vllm


def require_gpu() -> None:
    """vLLM runs here on CUDA GPUs only: a ConfigError in one line when none is visible."""
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("the vLLM backend needs a CUDA GPU and none is visible; use the default 'hf' backend "
                          "on this machine")


def stop_ids_of(model_dir: str | Path, tokenizer: Any) -> list[int]:
    """The HF path's stop tokens (``generation.stop_token_ids``) read from the model directory's generation config."""
    from transformers import GenerationConfig

    from grace_rag.generation import stop_token_ids

    try:
        config = GenerationConfig.from_pretrained(str(model_dir))
    except OSError:  # no generation_config.json: the tokenizer's EOS alone
        config = None
    return stop_token_ids(SimpleNamespace(generation_config=config), tokenizer)


def sampling_kwargs(settings: GenerationSettings, stop_ids: Sequence[int]) -> dict[str, Any]:
    """``vllm.SamplingParams`` keyword arguments for ``settings`` (temperature 0 = greedy, as on the HF path)."""
    return {
        "temperature": settings.temperature, "top_p": settings.top_p, "max_tokens": settings.max_new_tokens,
        "seed": settings.seed, "stop_token_ids": list(stop_ids),
        "logprobs": 0 if settings.return_logprobs else None,  # 0: the sampled token's log-prob only
        "detokenize": False,  # rationales are decoded by the HF tokenizer (decode_rationale)
    }


def to_rationale(completion: Any, tokenizer: Any, stop_ids: set[int], settings: GenerationSettings) -> Rationale:
    """A Rationale from a ``vllm.CompletionOutput``: ids cut after the first stop token, as the HF path does."""
    ids = [int(t) for t in completion.token_ids]
    logprobs = None
    if settings.return_logprobs and completion.logprobs is not None:
        logprobs = [float(step[token].logprob) for step, token in zip(completion.logprobs, ids)]
    return decode_rationale(tokenizer, ids, stop_ids, logprobs)


class VLLMGenerator(RationaleGenerator):
    """Generates rationales with a ``vllm.LLM`` built from a local model directory.

    ``llm_kwargs`` go to ``vllm.LLM`` (e.g. ``tensor_parallel_size``, ``dtype``, ``max_model_len``)
    and override :data:`LLM_DEFAULTS`.
    """

    def __init__(self, model_dir: str, tokenizer: Any, **llm_kwargs: Any) -> None:
        vllm = _import_vllm()
        require_gpu()
        self._vllm = vllm
        self.tokenizer = tokenizer
        self.stop_ids = stop_ids_of(model_dir, tokenizer)
        self.llm = vllm.LLM(model=str(model_dir), **{**LLM_DEFAULTS, **llm_kwargs})

    def generate(self, prompts: Sequence[PromptIds], settings: GenerationSettings,
                 progress: Progress | None = None) -> list[Rationale]:
        if settings.max_new_tokens == 0:
            return [Rationale(text="", token_ids=[], finished=True) for _ in prompts]
        params = self._vllm.SamplingParams(**sampling_kwargs(settings, self.stop_ids))
        inputs = [self._vllm.TokensPrompt(prompt_token_ids=list(p.input_ids)) for p in prompts]
        outputs = self.llm.generate(inputs, params, use_tqdm=False)  # in input order
        if progress is not None:
            progress(len(prompts))
        stops = set(self.stop_ids)
        return [to_rationale(out.outputs[0], self.tokenizer, stops, settings) for out in outputs]
