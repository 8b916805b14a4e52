"""One process of ``accelerate launch``: many all-reduces through ``grace_rag.trainer.collectives``.

Usage: ``reduce_probe.py OUT_DIR``. Writes ``OUT_DIR/rank{r}.json``: the reduced values seen and
how many calls returned while a process-group thread still referenced the reduced tensor. Then
the process exits without tearing the process group down, as a training script does.
"""

import json
import sys
from pathlib import Path

import torch
from accelerate import Accelerator

from grace_rag.trainer.collectives import all_reduce

CALLS = 300


def main() -> None:
    acc = Accelerator(cpu=True)
    rank = acc.process_index
    held, values = 0, {}
    for i in range(CALLS):
        mine = torch.full((4096,), float(rank + 1))
        for reduction in ("sum", "mean", "max"):
            out = all_reduce(acc, mine, reduction)
            held += out._use_count() > 1
            values[reduction] = float(out[0])
        del out  # as the trainer does: the reduced tensor is dropped right away
    result = {"rank": rank, "world": acc.num_processes, "backend": str(acc.state.backend), "calls": CALLS,
              "returned_while_held": held, "values": values, "input_untouched": float(mine[0]) == rank + 1}
    (Path(sys.argv[1]) / f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
