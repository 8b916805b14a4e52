"""Our vLLM calls against the installed vLLM's real signatures and data classes (skipped without vLLM).

Nothing here needs a GPU: vLLM's ``SamplingParams``, ``TokensPrompt``, ``CompletionOutput`` and
``Logprob`` are built for real, and ``LLM``'s methods are checked with ``inspect``. Run as in the
README ("vLLM backend"): a separate environment holding vllm==0.33.0 and this checkout.
"""

import dataclasses
import inspect
import typing

import pytest

from grace_rag.errors import ConfigError
from grace_rag.generation import GenerationSettings, stop_token_ids
from grace_rag.testing import tiny_backbone
from grace_rag.vllm_backend import LLM_DEFAULTS, VLLMGenerator, sampling_kwargs, to_rationale

vllm = pytest.importorskip("vllm")


def test_pinned_version_is_the_one_installed():
    from importlib.metadata import version

    assert version("vllm") == "0.33.0"  # the pin in pyproject's vllm extra; re-check this file when it moves


def test_llm_takes_the_model_and_our_engine_options():
    params = inspect.signature(vllm.LLM.__init__).parameters
    assert "model" in params and params["gpu_memory_utilization"].kind is inspect.Parameter.KEYWORD_ONLY
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())  # other options go to EngineArgs
    from vllm.engine.arg_utils import EngineArgs

    engine = {f.name: f for f in dataclasses.fields(EngineArgs)}
    for name, value in LLM_DEFAULTS.items():
        assert name in params or name in engine, name
    from vllm.config.model import LogprobsMode

    assert engine["logprobs_mode"].type in (LogprobsMode, "LogprobsMode")
    assert LLM_DEFAULTS["logprobs_mode"] in typing.get_args(LogprobsMode)


def test_generate_takes_token_prompts_and_sampling_params_and_returns_request_outputs():
    signature = inspect.signature(vllm.LLM.generate)
    signature.bind(object(), [vllm.TokensPrompt(prompt_token_ids=[1, 2])], vllm.SamplingParams(), use_tqdm=False)
    assert "TokensPrompt" in str(signature.parameters["prompts"].annotation)
    assert "RequestOutput" in str(signature.return_annotation)
    assert "outputs" in inspect.signature(vllm.RequestOutput.__init__).parameters
    assert "prompt_token_ids" in typing.get_type_hints(vllm.TokensPrompt)


@pytest.mark.parametrize("settings", [
    GenerationSettings(max_new_tokens=32),
    GenerationSettings(max_new_tokens=8, temperature=0.7, top_p=0.9, seed=3, return_logprobs=True),
])
def test_sampling_params_accept_our_settings(settings):
    params = vllm.SamplingParams(**sampling_kwargs(settings, [7, 9]))
    assert (params.temperature, params.top_p, params.max_tokens, params.seed) == (
        settings.temperature, settings.top_p, settings.max_new_tokens, settings.seed)
    assert set(params.stop_token_ids) >= {7, 9} and params.detokenize is False
    assert params.logprobs == (0 if settings.return_logprobs else None)
    if settings.temperature == 0:
        assert params.sampling_type == vllm.sampling_params.SamplingType.GREEDY


def test_completion_output_becomes_the_same_rationale_as_the_hf_path():
    """A CompletionOutput as vLLM returns it (stop token included in token_ids) -> our Rationale."""
    from vllm.logprobs import Logprob
    from vllm.outputs import CompletionOutput

    backbone = tiny_backbone()
    tokenizer = backbone.tokenizer
    stops = stop_token_ids(backbone.model, tokenizer)
    words = tokenizer.encode("Proteins fold into shapes", add_special_tokens=False)
    ids = [*words, stops[0]]
    logprobs = [{token: Logprob(logprob=-0.25 * (i + 1), rank=1)} for i, token in enumerate(ids)]
    done = CompletionOutput(index=0, text="", token_ids=ids, cumulative_logprob=None, logprobs=logprobs,
                            finish_reason="stop")
    rationale = to_rationale(done, tokenizer, set(stops), GenerationSettings(return_logprobs=True))
    assert rationale.text == "Proteins fold into shapes" and rationale.token_ids == ids and rationale.finished
    assert rationale.logprobs == [-0.25 * (i + 1) for i in range(len(ids))]

    cut = CompletionOutput(index=0, text="", token_ids=words, cumulative_logprob=None, logprobs=None,
                           finish_reason="length")
    rationale = to_rationale(cut, tokenizer, set(stops), GenerationSettings())
    assert not rationale.finished and rationale.logprobs is None


def test_without_a_gpu_the_backend_says_so_in_one_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    backbone = tiny_backbone()
    with pytest.raises(ConfigError, match="needs a CUDA GPU") as info:
        VLLMGenerator("unused", backbone.tokenizer)
    assert "\n" not in str(info.value)
