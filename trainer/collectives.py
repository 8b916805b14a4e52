"""All-reduce across training processes that leaves no tensor behind in the process group's threads.

A gloo process group runs each collective on one of its worker threads. The worker lets go of
the reduced tensor a moment *after* the collective completes (measured: in about half of all
calls the worker still held it when ``torch.distributed.all_reduce`` returned). If Python has
dropped its own reference by then, the worker frees a tensor that has a Python object and must
take the GIL to do so. Near the end of a run that goes wrong: at interpreter exit the thread is
killed while waiting for the GIL, and the process aborts ("terminate called without an active
exception") although training finished, which makes the launcher stop the other processes (the
main one may be publishing the model); a process-group teardown that holds the GIL while joining
the workers deadlocks. :func:`all_reduce` therefore returns only once the worker has let go.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

log = logging.getLogger(__name__)

#: how long to wait for a worker thread to release a reduced tensor (it takes microseconds)
RELEASE_TIMEOUT_S = 10.0


def all_reduce(accelerator: Any, tensor: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """``tensor`` reduced over the processes of ``accelerator`` ("sum", "mean" or "max"), as a new tensor.

    In one process this is a copy. The collective runs on a copy owned here, and the call returns
    once no thread of the process group still references it (see the module docstring).
    """
    if reduction not in ("sum", "mean", "max"):
        raise ValueError(f"reduction must be 'sum', 'mean' or 'max', not {reduction!r}")
    out = tensor.detach().clone()
    if accelerator.num_processes == 1:
        return out
    import torch.distributed as dist

    dist.all_reduce(out, dist.ReduceOp.MAX if reduction == "max" else dist.ReduceOp.SUM)
    _wait_until_released(out)
    if reduction == "mean":
        out /= accelerator.num_processes
    return out


def _wait_until_released(tensor: torch.Tensor) -> None:
    """Sleep (the GIL released) until ``tensor`` has no owner but the caller."""
    deadline = time.monotonic() + RELEASE_TIMEOUT_S
    while tensor._use_count() > 1:
        if time.monotonic() > deadline:
            log.warning("a process-group thread still holds a reduced tensor after %.0f s", RELEASE_TIMEOUT_S)
            return
        time.sleep(1e-4)
