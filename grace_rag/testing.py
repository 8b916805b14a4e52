"""Tiny randomly initialised models for tests: a real Llama architecture, no download.

``tiny_backbone`` trains a small byte-level BPE tokenizer in memory (milliseconds), gives it
one of several real chat-template styles, and builds a 2-layer Llama from a config.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

from grace_rag.config import DEFAULT_INSTRUCTION, EncoderConfig
from grace_rag.models import Backbone

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
NO_SYSTEM = (  # Gemma style: a system message is an error
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}"
    "{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim"
    " + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)
TEMPLATES = {"chatml": CHATML, "llama3": LLAMA3, "no_system": NO_SYSTEM, "none": None}
_EOS = {"chatml": "<|im_end|>", "llama3": "<|eot_id|>", "no_system": "<end_of_turn>", "none": "<|endoftext|>"}
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|start_header_id|>",
    "<|end_header_id|>", "<|eot_id|>", "<bos>", "<start_of_turn>", "<end_of_turn>",
]
_CORPUS = [
    DEFAULT_INSTRUCTION,
    "The quick brown fox jumps over the lazy dog. A cat sleeps on the warm mat.",
    "Proteins fold into shapes that determine their function in the cell.",
    "Interest rates rose again as the central bank fought inflation.",
    "The river flooded the valley after three days of heavy rain.",
    "system user assistant model think analysis text reasoning understanding",
]


@functools.lru_cache(maxsize=1)
def _tokenizer_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(_CORPUS * 4, trainer)
    return tok.to_str()


def tiny_tokenizer(template: str = "chatml") -> Any:
    """A fast tokenizer with the named chat template (chatml, llama3, no_system, none)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    bos = {"llama3": "<|begin_of_text|>", "no_system": "<bos>"}.get(template)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json()), eos_token=_EOS[template], pad_token="<|endoftext|>", bos_token=bos
    )
    tok.chat_template = TEMPLATES[template]
    return tok


def tiny_backbone(template: str = "chatml", seed: int = 0, hidden_size: int = 32, layers: int = 2) -> Backbone:
    """A randomly initialised 2-layer Llama with a real chat template, on the CPU, float32."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer(template)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.numpy().tobytes())
    return Backbone(model=model, tokenizer=tokenizer, name=f"tiny-llama-{template}-{seed}", weights_id=digest.hexdigest()[:32])


def tiny_encoder(config: EncoderConfig | None = None, template: str = "chatml", seed: int = 0, **kwargs: Any) -> Any:
    """A GraceEncoder over :func:`tiny_backbone` (default: 4 rationale tokens, no cache)."""
    from grace_rag.encoder import GraceEncoder

    config = config or EncoderConfig(max_rationale_tokens=4, cache=False)
    return GraceEncoder.from_backbone(tiny_backbone(template, seed), config, **kwargs)
