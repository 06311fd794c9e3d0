"""Granularity sweep on MNIST (Mao et al. 2017) for LeNet-5 and vgg_small.

Run from the repository root:

    PYTHONPATH=. OPENBLAS_NUM_THREADS=1 /work/venv/bin/python benchmarks/bench_sweep.py

Environment knobs (defaults are what docs/benchmarks/sweep.md reports):

* ``SWEEP_MODELS``: comma-separated subset of ``lenet5,vgg_small``;
* ``SWEEP_OUT``: output folder (default ``benchmarks/out/sweep``; not committed).

Each model runs ``deepcompress sweep`` (one process, one shared stage cache,
so a re-run only computes missing points). Retraining uses the first
``SUBSET`` MNIST training images per "epoch" (``--data
benchmarks.bench_sweep:mnist_subset``) to fit the machine's time budget; the
test set is always the full 10,000 MNIST test images. Ratios are printed
against element granularity measured in the same run. Checkpoints are trained
if missing (``deepcompress train``) and never committed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

MNIST_DIR = os.environ.get("DEEPCOMPRESS_MNIST", "/work/shared/data/mnist")
SUBSET = 12_000  # training images per retraining epoch (the test set is always the full 10,000)
LOOSE_TOLERANCE = 0.5  # a second summary, in percentage points (the first uses the sweep's default 0.1)
DATA = "benchmarks.bench_sweep:mnist_subset"
REPO = Path(__file__).resolve().parents[1]

#: per model: checkpoint, how to train it if missing, and the sweep grid
CONFIGS = {
    "lenet5": {
        "checkpoint": "lenet5_mnist.pt",
        "train": ["lenet5", "--data", f"mnist:{MNIST_DIR}", "--epochs", "6"],
        "sweep": ["--granularity", "element,vector,kernel,filter", "--sparsity", "0.5,0.7,0.8,0.9",
                  "--fc-sparsity", "0.9", "--retrain-epochs", "1", "--finetune-epochs", "0"],
    },
    "vgg_small": {
        "checkpoint": "vgg_small_mnist.pt",
        "train": ["vgg_small", "--data", DATA, "--epochs", "3"],
        # one-shot (no retraining: a vgg_small epoch is too slow here), so the fc layers are left unpruned
        "sweep": ["--granularity", "element,vector,kernel,filter", "--sparsity", "0.3,0.5,0.7",
                  "--fc-sparsity", "0", "--retrain-epochs", "0", "--finetune-epochs", "0"],
    },
}


def mnist_subset():
    """``(train_loader, test_loader)``: the first SUBSET MNIST training images (shuffled), the full test set.

    Used as ``--data benchmarks.bench_sweep:mnist_subset`` so that one retraining
    "epoch" costs a fifth of a full MNIST epoch on this shared machine.
    """
    from deepcompress.data import TensorLoader, load_dataset

    train, test, _ = load_dataset(f"mnist:{MNIST_DIR}")
    sub = TensorLoader(train.inputs[:SUBSET], train.targets[:SUBSET], batch_size=128, shuffle=True, seed=0)
    return sub, test


def _cli(*args: str) -> list[str]:
    # the sweep command is called directly, so this works before it is registered in cli/main.py
    if args and args[0] == "sweep":
        code = "from deepcompress.cli.sweep_cmd import sweep_cmd; sweep_cmd(prog_name='deepcompress sweep')"
        return [sys.executable, "-c", code, *args[1:]]
    return [sys.executable, "-m", "deepcompress.cli", *args]


def main() -> None:
    out = Path(os.environ.get("SWEEP_OUT", REPO / "benchmarks" / "out" / "sweep"))
    out.mkdir(parents=True, exist_ok=True)
    models = [m for m in os.environ.get("SWEEP_MODELS", "lenet5,vgg_small").split(",") if m]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    for name in models:
        cfg = CONFIGS[name]
        ckpt = out / cfg["checkpoint"]
        if not ckpt.is_file():
            print(f"training {name} -> {ckpt}", flush=True)
            subprocess.run(_cli("train", *cfg["train"], "-o", str(ckpt)), check=True, env=env, cwd=REPO)
        folder = out / name
        cmd = _cli("sweep", str(ckpt), "--data", DATA, *cfg["sweep"], "-o", str(folder), "--json")
        print("$ deepcompress sweep " + " ".join(cmd[3:]), flush=True)
        t0 = time.perf_counter()
        done = subprocess.run(cmd, check=True, env=env, cwd=REPO, stdout=subprocess.PIPE, text=True)
        seconds = time.perf_counter() - t0
        result = json.loads(done.stdout)
        print(f"{name}: {len(result['points'])} points in {seconds:.0f} s; baseline top-1 "
              f"{100 * result['baseline_top1']:.2f}%")
        print((folder / "sweep.md").read_text())
        img = REPO / "docs" / "img"
        img.mkdir(parents=True, exist_ok=True)
        for png in ("accuracy_vs_sparsity", "conv_storage", "memory_refs"):
            shutil.copyfile(folder / f"{png}.png", img / f"sweep_{name}_{png}.png")
        # the same points summarized at a looser accuracy threshold: every stage comes from the shared cache
        loose = out / f"{name}_tol{LOOSE_TOLERANCE:g}"
        cmd = _cli("sweep", str(ckpt), "--data", DATA, *cfg["sweep"], "--tolerance", str(LOOSE_TOLERANCE),
                   "--work-dir", str(folder / "work"), "-o", str(loose), "--json")
        print("$ deepcompress sweep " + " ".join(cmd[3:]), flush=True)
        subprocess.run(cmd, check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
        print((loose / "sweep.md").read_text().split("## Per granularity", 1)[1])


if __name__ == "__main__":
    main()
