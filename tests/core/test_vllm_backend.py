"""The vLLM backend's pure parts, without vLLM: stop tokens and sampling settings as the HF path has them."""

from grace_rag.generation import GenerationSettings, stop_token_ids
from grace_rag.models import load_backbone
from grace_rag.vllm_backend import sampling_kwargs, stop_ids_of


def test_stop_ids_read_from_a_model_directory_are_the_hf_paths(model_dir):
    backbone = load_backbone(model_dir)
    assert stop_ids_of(model_dir, backbone.tokenizer) == stop_token_ids(backbone.model, backbone.tokenizer)


def test_stop_ids_without_a_generation_config_are_the_tokenizers(model_dir, tmp_path):
    backbone = load_backbone(model_dir)
    backbone.tokenizer.save_pretrained(tmp_path)  # no generation_config.json here
    assert stop_ids_of(tmp_path, backbone.tokenizer) == [backbone.tokenizer.eos_token_id]


def test_greedy_settings_map_to_greedy_sampling_without_logprobs():
    kwargs = sampling_kwargs(GenerationSettings(max_new_tokens=32), [5])
    assert kwargs["temperature"] == 0 and kwargs["max_tokens"] == 32 and kwargs["logprobs"] is None
    assert kwargs["stop_token_ids"] == [5]
    assert sampling_kwargs(GenerationSettings(return_logprobs=True), [5])["logprobs"] == 0
