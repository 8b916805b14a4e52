"""Checkpoints (trainable weights, optimiser, RNG, step) and atomic directory publishing.

A checkpoint directory ``step-00000050/`` holds ``trainable.safetensors`` (every trainable
tensor: the LoRA adapter or all weights), ``optimizer.pt`` (``torch.save`` of the optimiser
state dict, tensors only), ``rng.safetensors`` (torch CPU/CUDA generator states) and
``state.json`` (step and the training config) and ``extra.json`` (JSON state of the run, such as
the memoised greedy rationales of the contrastive objective). Directories are written under a temporary
name and renamed into place, so a crash never leaves a half-written checkpoint or model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from grace_rag.errors import ConfigError

log = logging.getLogger(__name__)

PREFIX = "step-"
SUMMARY_FILE = "grace_train.json"  # written into every published model: marks a folder as a train output


def check_output_dir(out: Path, data: Sequence[Path], overwrite: bool = False) -> None:
    """ConfigError unless publishing a model at ``out`` replaces nothing but an earlier model the user
    agreed to replace: ``out`` may be new, an empty folder, or (with ``overwrite``) the output of an
    earlier ``grace-rag train``; never a file, a folder of other files, or data (or a folder holding it)."""
    out = Path(out)
    target = out.resolve()
    for path in data:
        source = Path(path).resolve()
        if source == target or target in source.parents:
            raise ConfigError(f"--out {out} is the training data {path}{'' if source == target else ' or holds it'}; "
                              "pass a new folder for the trained model")
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; pass a new folder for the trained model")
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    if not (out / SUMMARY_FILE).is_file():
        listed = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
        raise ConfigError(f"--out {out} holds other files ({listed}) and is not the output of grace-rag train; "
                          "pass a new or empty folder for the trained model")
    if not overwrite:
        raise ConfigError(f"--out {out} holds a model from an earlier grace-rag train run; pass --overwrite to "
                          "replace it with the new one, or another --out to keep it")


def _umask_mode(directory: bool) -> int:
    """The mode a new file (or folder) gets under the process's umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def publish_dir(target: Path, write: Callable[[Path], None]) -> Path:
    """Let ``write`` fill a fresh temporary sibling of ``target``, then swap it into place.

    If ``write`` fails, ``target`` (if it existed) is untouched and the temporary is removed.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        write(tmp)
        # mkdtemp makes 0700 and safetensors writes 0600: the folder and what is in it follow the umask
        os.chmod(tmp, _umask_mode(directory=True))
        for path in tmp.rglob("*"):
            if not path.is_symlink():
                os.chmod(path, _umask_mode(directory=path.is_dir()))
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            os.rename(target, old)
        os.rename(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every trainable parameter, by name, detached on the CPU (contiguous, as safetensors needs)."""
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy saved trainable tensors into ``model``; the set of names must match exactly."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if set(params) != set(state):
        missing, extra = sorted(set(params) - set(state)), sorted(set(state) - set(params))
        raise ConfigError(f"checkpoint does not match the model (missing {missing[:3]}, unexpected {extra[:3]}); "
                          "resume with the same model and LoRA settings")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(state[name].to(p.device, p.dtype))


def _rng_state() -> dict[str, torch.Tensor]:
    out = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"cuda_{i}"] = s
    return out


def _set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch_cpu"])
    cuda = [state[k] for k in sorted(state) if k.startswith("cuda_")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(root: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    config: dict[str, Any], keep: int = 1, extra: dict[str, Any] | None = None) -> Path:
    """Write ``root/step-N`` atomically, then delete all but the newest ``keep`` checkpoints."""
    def write(tmp: Path) -> None:
        save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        save_file(_rng_state(), str(tmp / "rng.safetensors"))
        (tmp / "extra.json").write_text(json.dumps(extra or {}))
        (tmp / "state.json").write_text(json.dumps({"step": step, "config": config}, indent=2))

    path = publish_dir(Path(root) / f"{PREFIX}{step:08d}", write)
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    log.info("checkpoint saved: %s", path)
    return path


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / "state.json").is_file())


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore weights, optimiser and RNG from ``path``; returns its state.json (step, config)."""
    path = Path(path)
    try:
        state = json.loads((path / "state.json").read_text())
        extra = path / "extra.json"
        state["extra"] = json.loads(extra.read_text()) if extra.is_file() else {}
        load_trainable_state(model, load_file(str(path / "trainable.safetensors")))
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
        _set_rng_state(load_file(str(path / "rng.safetensors")))
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"checkpoint {path} is unreadable ({exc}); delete it to fall back to an older one") from None
    log.info("resumed from %s (step %d)", path, state["step"])
    return state
