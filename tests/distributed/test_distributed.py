"""Distributed retraining: 2 CPU processes under torchrun give the single-process result; loader sharding."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import deepcompress
from deepcompress import distributed as dist
from deepcompress.container import read_dcz
from deepcompress.data import TensorLoader
from deepcompress.errors import DataError

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FLAGS = ["--data", "dist_data:loaders", "--sparsity", "fc=0.8", "--bits", "fc=5", "--retrain-epochs", "2",
         "--finetune-epochs", "1", "--lr", "0.02", "--json"]
TIMEOUT = 300


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(HERE), str(REPO), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def _compress(model: Path, out: Path, *extra: str, nproc: int = 1) -> tuple[dict, str]:
    args = ["-m", "deepcompress.cli", "compress", str(model), "-o", str(out), *FLAGS, *extra]
    if nproc > 1:
        launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
        cmd = [sys.executable, *launcher, *args]
    else:
        cmd = [sys.executable, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=TIMEOUT, cwd=str(HERE))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert summaries, proc.stdout
    return summaries[0], proc.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory, digits_lenet300):
    folder = tmp_path_factory.mktemp("dist")
    single, single_log = _compress(digits_lenet300, folder / "single.dcz", "--no-cache")
    work = folder / "ddp.dcz.work"
    multi, log = _compress(digits_lenet300, folder / "ddp.dcz", "--work-dir", str(work), nproc=2)
    return folder, (single, single_log), multi, log, work, digits_lenet300


def _epoch_losses(log: str) -> list[str]:
    return [line.split("loss ")[1].split(",")[0] for line in log.splitlines() if " epoch " in line and "loss" in line]


@pytest.mark.slow
def test_two_ranks_match_single_process(runs):
    """Same masks exactly; weights and accuracy equal to float rounding (each batch's halves are equal)."""
    folder, (single, single_log), multi, log, _, _ = runs
    a, b = read_dcz(folder / "single.dcz"), read_dcz(folder / "ddp.dcz")
    assert a.tensor_names == b.tensor_names
    for name in ("layers.0.weight", "layers.1.weight", "classifier.weight"):
        assert np.array_equal(a.decode_mask(name), b.decode_mask(name)), name
    sa, sb = deepcompress.load_state_dict(folder / "single.dcz"), deepcompress.load_state_dict(folder / "ddp.dcz")
    for name in sa:
        torch.testing.assert_close(sb[name], sa[name], rtol=0, atol=1e-6, msg=name)
    assert multi["final"]["top1"] == pytest.approx(single["final"]["top1"], abs=0.01)
    assert [h["stage"] for h in multi["history"]] == [h["stage"] for h in single["history"]]
    # rank 0 alone logs: each stage is announced once, not once per rank
    assert log.count("stage 3/5: quantize") == 1
    assert "distributed: 2 ranks (gloo)" in log
    # rank 0 logs the loss of its half of each batch: not the single-process loss, so the data was sharded
    ours, theirs = _epoch_losses(log), _epoch_losses(single_log)
    assert len(ours) == len(theirs) == 3 and ours != theirs


@pytest.mark.slow
def test_only_rank0_writes_and_resume_reuses_its_cache(runs, tmp_path):
    """The stage cache holds one state per trained stage; a 2-rank --resume run reuses it, same bytes."""
    folder, _, _, _, work, model = runs
    states = sorted(p.relative_to(work) for p in work.rglob("*") if p.is_file())
    assert len(states) == 4 and all(p.name == "state.pt" for p in states), states
    assert not list(folder.glob("*.tmp*")) and not list(work.rglob("epoch.pt"))
    _, log = _compress(model, tmp_path / "again.dcz", "--work-dir", str(work), "--resume", nproc=2)
    assert "reusing cached result of stages 1-4" in log
    assert (tmp_path / "again.dcz").read_bytes() == (folder / "ddp.dcz").read_bytes()


@pytest.mark.slow
def test_two_ranks_killed_mid_stage_then_resumed_give_the_same_bytes(runs, tmp_path):
    """kill -9 of the whole 2-rank job during retraining: no output, and a 2-rank --resume writes the
    bytes of the uninterrupted 2-rank run."""
    folder, _, _, _, _, model = runs
    out, work = tmp_path / "killed.dcz", tmp_path / "killed.work"
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd = [sys.executable, *launcher, "-m", "deepcompress.cli", "compress", str(model), "-o", str(out), *FLAGS,
           "--work-dir", str(work)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=str(HERE),
                            env={**_env(), "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    killed = False
    try:
        for line in proc.stderr:
            if "retrain epoch 1/2" in line:
                os.killpg(proc.pid, signal.SIGKILL)  # every rank and the launcher at once
                killed = True
                break
    finally:
        if not killed:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=TIMEOUT)
    assert killed, "the run ended before its first retraining epoch"
    assert not out.exists()
    _, log = _compress(model, out, "--work-dir", str(work), "--resume", nproc=2)
    assert "resuming after epoch 1/2" in log or "reusing cached result" in log
    assert out.read_bytes() == (folder / "ddp.dcz").read_bytes()


def test_shards_partition_every_batch_and_single_process_is_unchanged():
    """Rank shares of a batch are disjoint and together are the single-process batch, in order."""
    x = torch.arange(203, dtype=torch.float32)[:, None]
    y = torch.arange(203) % 7
    whole = TensorLoader(x, y, batch_size=20, shuffle=True, seed=5)
    whole.set_epoch(3)
    plain = TensorLoader(x, y, batch_size=20, shuffle=True, seed=5)
    plain.set_epoch(3)
    plain.set_shard(0, 1)
    ranks = []
    for r in range(3):
        loader = TensorLoader(x, y, batch_size=20, shuffle=True, seed=5)
        loader.set_epoch(3)
        loader.set_shard(r, 3)
        ranks.append(list(loader))
    batches = list(whole)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, plain))
    assert all(len(r) == len(batches) for r in ranks)  # the last batch (3 samples) still splits 1/1/1
    for i, (bx, by) in enumerate(batches):
        joined = torch.cat([ranks[r][i][0] for r in range(3)])
        assert torch.equal(joined, bx) and torch.equal(torch.cat([ranks[r][i][1] for r in range(3)]), by)
        sizes = [len(ranks[r][i][0]) for r in range(3)]
        assert max(sizes) - min(sizes) <= 1
    small = TensorLoader(x[:22], y[:22], batch_size=20)  # last batch of 2 < 3 ranks: dropped
    small.set_shard(1, 3)
    assert [len(b[0]) for b in small] == [7]
    with pytest.raises(DataError, match="shard rank 3"):
        small.set_shard(3, 3)


def test_single_process_helpers_are_no_ops():
    model = torch.nn.Linear(3, 2)
    assert dist.info() == dist.DistInfo() and dist.is_main() and not dist.is_distributed()
    assert dist.wrap_ddp(model) is model and dist.broadcast_object({"a": 1}) == {"a": 1}
    dist.check_identical("anything", "test")
    dist.barrier()
    assert dist.choose_backend(torch.device("cpu")) == "gloo"
    d1 = dist.state_digest(model)
    with torch.no_grad():
        model.weight[0, 0] += 1e-7
    assert dist.state_digest(model) != d1
