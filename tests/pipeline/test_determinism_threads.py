"""``compress`` writes the same bytes at 1 and 2 intra-op threads, and after kill -9 + ``--resume`` at 2.

Each run is a subprocess whose thread count is set with ``torch.set_num_threads``
(``OMP_NUM_THREADS`` alone is capped at the core count), so the tests mean the
same on a 1-core machine. Before the fix, two 2-thread runs already differed
(fine-tuning's centroid gradient) and a 1-thread run differed from a 2-thread
one (the weight gradients of conv and Linear layers): see deepcompress.determinism.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ARGS = ["--data", "digits", "--retrain-epochs", "2", "--finetune-epochs", "2", "--seed", "5", "--no-report"]


def _cli(threads: int, *args: object) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of ``deepcompress ARGS`` on ``threads`` intra-op threads."""
    code = (
        "import sys, torch\n"
        f"torch.set_num_threads({threads})\n"
        "from deepcompress.cli.main import main\n"
        "sys.argv[0] = 'deepcompress'\n"
        "main()\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    return [sys.executable, "-c", code, *[str(a) for a in args]], env


def _compress(threads: int, model: Path, out: Path, *extra: str) -> bytes:
    cmd, env = _cli(threads, "compress", model, "-o", out, "--no-cache", *ARGS, *extra)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out.read_bytes()


@pytest.fixture(scope="module")
def lenet5_runs(tmp_path_factory, digits_lenet5):
    """Compressed bytes of the digits LeNet-5, made on demand: runs[(threads, repeat)]."""
    folder = tmp_path_factory.mktemp("threads")
    cache: dict[tuple[int, int], bytes] = {}

    def get(threads: int, repeat: int = 0) -> bytes:
        if (threads, repeat) not in cache:
            cache[threads, repeat] = _compress(threads, digits_lenet5, folder / f"l5_t{threads}_{repeat}.dcz")
        return cache[threads, repeat]

    return get


def test_two_runs_with_two_threads_write_identical_bytes(lenet5_runs):
    assert lenet5_runs(2, 0) == lenet5_runs(2, 1)


def test_one_thread_and_two_threads_write_identical_bytes(lenet5_runs):
    assert lenet5_runs(1) == lenet5_runs(2)


def test_kill_mid_retraining_two_threads_then_resume_gives_the_one_thread_bytes(tmp_path, digits_lenet300):
    """kill -9 during a 2-thread retraining, ``--resume`` on 2 threads: the bytes of an uninterrupted 1-thread run.

    LeNet-300-100 has only Linear layers: this also checks MKL's GEMM across thread counts.
    """
    args = ["--data", "digits", "--retrain-epochs", "6", "--finetune-epochs", "1", "--seed", "3", "--no-report"]
    reference = tmp_path / "ref.dcz"
    cmd, env = _cli(1, "compress", digits_lenet300, "-o", reference, "--no-cache", *args)
    subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=300)
    out, work = tmp_path / "out.dcz", tmp_path / "work"
    cmd, env = _cli(2, "compress", digits_lenet300, "-o", out, "--work-dir", work, *args)
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    killed = False
    for line in proc.stderr:
        if "retrain epoch 2/6" in line:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            break
    proc.wait()
    assert killed and proc.returncode == -signal.SIGKILL
    assert not out.exists()
    cmd, env = _cli(2, "compress", digits_lenet300, "-o", out, "--work-dir", work, "--resume", *args)
    resumed = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming after epoch" in resumed.stderr
    assert out.read_bytes() == reference.read_bytes()


def test_resume_mid_stage_of_a_model_with_dropout_gives_the_uninterrupted_bytes(tmp_path):
    """Dropout draws from torch's generator every step: the epoch checkpoint carries the generators' state,
    so a run stopped after a retraining epoch and resumed draws what the uninterrupted run drew."""
    import torch
    from torch import nn

    import deepcompress

    def model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 96), nn.ReLU(), nn.Dropout(0.3), nn.Linear(96, 10))

    flags = dict(data="digits", sparsity=0.5, bits=5, retrain_epochs=4, finetune_epochs=1, seed=2, progress=False)
    reference = tmp_path / "ref.dcz"
    deepcompress.compress(model(), reference, log=lambda line: None, **flags)

    class Stop(Exception):
        pass

    def stop(line: str) -> None:
        if "retrain epoch 2/4" in line:
            raise Stop

    out, work = tmp_path / "out.dcz", tmp_path / "work"
    with pytest.raises(Stop):
        deepcompress.compress(model(), out, work_dir=work, log=stop, **flags)
    assert not out.exists()
    lines: list[str] = []
    deepcompress.compress(model(), out, work_dir=work, resume=True, log=lines.append, **flags)
    assert any("retrain: resuming after epoch" in line for line in lines), lines
    assert out.read_bytes() == reference.read_bytes()
