"""Training with two CPU processes under `accelerate launch` (gloo), against a single-process run.

Exact equivalence needs a loss whose per-example terms do not depend on how the global batch is
split: the contrastive objective on greedy (memoised) rationales, with one triplet per process.
InfoNCE takes its in-batch negatives from what one backward pass sees, so the single-process
run uses ``grad_accum = 2`` (one triplet per micro-batch): DDP's average of the two processes'
gradients then equals the accumulated gradient of the single process.

The data is one global batch (two triplets), so every text's greedy rationale is decoded at step 1
from identical weights. Decoding a new text after an update would compare argmaxes of a random
model's near-uniform logits under weights that differ by float rounding (a two-way average vs an
accumulation), which can pick a different token: a property of greedy decoding, not of training.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil

LAUNCH = Path(__file__).with_name("launch_train.py")
PROBE = Path(__file__).with_name("reduce_probe.py")
BASE = dict(objective="contrastive", batch_size=2, rollouts=2, encoder={"max_rationale_tokens": 3, "max_input_tokens": 16},
            length_penalty=None, learning_rate=1e-2, seed=0, save_every=0, mixed_precision="no")
TOLERANCE = 1e-5  # float32 rounding of a two-way average vs a two-micro-batch accumulation


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(tmp: Path, name: str, script: list[str], processes: int, timeout: float = 300) -> None:
    """Run ``script`` alone or as ``processes`` processes of ``accelerate launch``; fail, never hang, past ``timeout``.

    The output goes to a file, not a pipe: a process left behind cannot keep the test waiting on it.
    """
    if processes == 1:
        cmd = [sys.executable, *script]
    else:
        # accelerate's --multi_gpu launcher is torchrun; on a machine without CUDA the trainer's
        # Accelerator(cpu=True) then runs MULTI_CPU over gloo (--cpu with several processes needs MPI)
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), *script]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    output = tmp / f"{name}.log"
    with output.open("w") as sink:
        launcher = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            launcher.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_all(launcher)
            raise AssertionError(f"{name}: the processes did not finish within {timeout} s\n"
                                 f"{output.read_text()[-4000:]}") from None
    assert launcher.returncode == 0, output.read_text()[-4000:]


def kill_all(launcher: subprocess.Popen) -> None:
    """Kill the launcher and every process under it: torchrun starts each worker in a session of its own,
    out of reach of ``killpg``, so the tree is listed before anything is killed (orphans lose their parent)."""
    try:
        tree = psutil.Process(launcher.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    for proc in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(launcher.pid, signal.SIGKILL)
    launcher.wait(timeout=30)
    psutil.wait_procs(tree, timeout=30)


def run(tmp: Path, name: str, fields: dict, data: Path, processes: int, timeout: float = 300) -> Path:
    """One training run through launch_train.py; returns its record directory."""
    records = tmp / f"{name}-records"
    records.mkdir()
    config = tmp / f"{name}.json"
    config.write_text(json.dumps({**fields, "output_dir": str(tmp / name)}))
    launch(tmp, name, [str(LAUNCH), str(config), str(data), str(records)], processes, timeout)
    return records


def lines(records: Path, rank: int) -> list[dict]:
    return [json.loads(ln) for ln in (records / f"rank{rank}.jsonl").read_text().splitlines()]


def test_two_processes_stay_in_step_and_match_one_process(tmp_path, triplet_file, model_dir):
    """Pooling the penultimate layer leaves the last block without gradient: DDP must allow unused parameters."""
    one_batch = tmp_path / "one-batch.jsonl"
    one_batch.write_text("".join(triplet_file.read_text().splitlines(keepends=True)[:2]))
    triplet_file = one_batch
    fields = {**BASE, "model": str(model_dir), "steps": 3,
              "encoder": {**BASE["encoder"], "layer": "penultimate"}}
    two = run(tmp_path, "two", fields, triplet_file, processes=2)
    one = run(tmp_path, "one", {**fields, "grad_accum": 2}, triplet_file, processes=1)

    rank0, rank1 = lines(two, 0), lines(two, 1)
    assert [r["step"] for r in rank0] == [r["step"] for r in rank1] == [1, 2, 3]
    assert {r["backend"] for r in rank0 + rank1} == {"gloo"} and {r["world"] for r in rank0} == {2}
    assert {r["examples"] for r in rank0 + rank1} == {1}  # each process trains on its half of the global batch
    assert [r["sha256"] for r in rank0] == [r["sha256"] for r in rank1]  # identical parameters after every step

    start = np.load(two / "rank0-step1.npy")
    for step in (1, 2, 3):
        multi, single = np.load(two / f"rank0-step{step}.npy"), np.load(one / f"rank0-step{step}.npy")
        np.testing.assert_allclose(multi, single, atol=TOLERANCE, rtol=0)
    assert np.abs(np.load(two / "rank0-step3.npy") - start).max() > 100 * TOLERANCE  # training moved them
    published = json.loads((tmp_path / "two" / "grace_train.json").read_text())
    assert published["steps"] == 3


def test_max_minutes_stops_both_processes_after_the_same_step(tmp_path, triplet_file, model_dir):
    """Process 0's budget runs out after its first step, process 1's would last an hour: both stop together
    (had process 1 gone on alone, its next gradient all-reduce would wait for process 0 and the run time out:
    checked by making the stop decision local)."""
    fields = {**BASE, "objective": "both", "model": str(model_dir), "steps": 30,  # policy loss + InfoNCE
              "max_minutes_by_rank": [1e-4, 60.0]}
    records = run(tmp_path, "budget", fields, triplet_file, processes=2, timeout=180)
    rank0, rank1 = lines(records, 0), lines(records, 1)
    assert [r["step"] for r in rank0] == [r["step"] for r in rank1] == [1]
    assert rank0[0]["sha256"] == rank1[0]["sha256"]
    assert json.loads((tmp_path / "budget" / "grace_train.json").read_text())["steps"] == 1


def test_all_reduce_returns_after_the_process_group_lets_go_and_processes_exit_cleanly(tmp_path):
    """A gloo worker drops its reference to a reduced tensor a moment after the collective completes; if
    Python has dropped its own first, the worker needs the GIL, and at exit the process aborts ("terminate
    called without an active exception"). With accelerate's reduce, ~half of the calls returned while the
    worker still held the tensor, and most such runs aborted at exit."""
    out = tmp_path / "probe"
    out.mkdir()
    launch(tmp_path, "probe", [str(PROBE), str(out)], processes=2, timeout=120)
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank in ranks:
        assert rank["world"] == 2 and rank["backend"] == "gloo"
        assert rank["returned_while_held"] == 0, rank
        assert rank["values"] == {"sum": 3.0, "mean": 1.5, "max": 2.0}  # ranks contribute 1 and 2
        assert rank["input_untouched"]


def test_gradient_buckets_keep_order_and_bound_size():
    import torch

    from grace_rag.trainer.loop import _buckets

    params = [torch.zeros(n) for n in (3, 4, 10, 2, 2)]
    groups = _buckets(params, limit=7)
    assert [[p.numel() for p in g] for g in groups] == [[3, 4], [10], [2, 2]]  # a bigger one goes alone
    assert [id(p) for g in groups for p in g] == [id(p) for p in params]
