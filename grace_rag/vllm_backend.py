"""vLLM rationale generator (GPU): the same one-method interface as the HF backend.

vLLM only returns text and token ids, so the encoder pools with one extra forward pass of the
HF model over P(x) ⊕ r (``Representer.pool_sequences``). Install with
``pip install 'grace-rag[vllm]'``. Not exercised by CI (no GPU there); see README.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grace_rag.generation import GenerationSettings, Progress, Rationale, RationaleGenerator
from grace_rag.prompts import PromptIds


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise ImportError("the vLLM backend needs vllm: pip install 'grace-rag[vllm]' (GPU machines only)") from None
    return vllm


class VLLMGenerator(RationaleGenerator):
    """Generates rationales with a ``vllm.LLM`` built from a local model directory."""

    def __init__(self, model_dir: str, tokenizer: Any, **llm_kwargs: Any) -> None:
        vllm = _import_vllm()
        self._vllm = vllm
        self.llm = vllm.LLM(model=model_dir, **llm_kwargs)
        self.tokenizer = tokenizer

    def generate(self, prompts: Sequence[PromptIds], settings: GenerationSettings,
                 progress: Progress | None = None) -> list[Rationale]:
        if settings.max_new_tokens == 0:
            return [Rationale(text="", token_ids=[], finished=True) for _ in prompts]
        params = self._vllm.SamplingParams(
            temperature=settings.temperature, top_p=settings.top_p, max_tokens=settings.max_new_tokens,
            seed=settings.seed, logprobs=0 if settings.return_logprobs else None,
        )
        inputs = [self._vllm.TokensPrompt(prompt_token_ids=list(p.input_ids)) for p in prompts]
        outputs = self.llm.generate(inputs, params, use_tqdm=False)
        if progress is not None:
            progress(len(prompts))
        return [self._rationale(out.outputs[0], settings) for out in outputs]

    @staticmethod
    def _rationale(completion: Any, settings: GenerationSettings) -> Rationale:
        ids = list(completion.token_ids)
        logprobs = None
        if settings.return_logprobs and completion.logprobs is not None:
            logprobs = [step[token].logprob for step, token in zip(completion.logprobs, ids)]
        return Rationale(text=completion.text.strip(), token_ids=ids, finished=completion.finish_reason == "stop", logprobs=logprobs)
