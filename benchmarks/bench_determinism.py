"""What thread-count-independent training costs: epoch time of retraining and fine-tuning on MNIST.

Each variant trains the same pruned zoo model (random init, ``conv=0.7,fc=0.92``
element sparsity; masks enforced after every step as in the retrain stage) on the
real MNIST training set, batch 128, for ``--batches`` steps (default: one full
epoch, 469), after 20 untimed warm-up steps. Fine-tuning first shares the
weights (``conv=8,fc=5``, k-means) and trains the centroids with Adam, as the
finetune stage does. Variants:

* ``before``: the old code with ``--threads`` threads (MKL's default mode,
  ``table[index]`` gather): not thread-invariant, the reference for speed;
* ``strict-mkl``: MKL's strict CNR mode only (``MKL_CBWR=AUTO,STRICT``), nothing pinned;
* ``pin-ops``: what ``deepcompress.determinism.thread_invariant`` does when strict
  MKL is on: the thread-dependent ops (conv weight gradient, ...) on one thread,
  the rest on ``--threads``; fine-tuning with ``shared_gather``;
* ``1-thread``: everything on one thread (also what ``thread_invariant`` falls
  back to when strict MKL could not be chosen).

Every variant runs in its own process (MKL's mode is fixed at its first use), in
rotating order, ``--repeats`` times. Printed: median seconds per epoch with the
min-max range, the ratio of medians to ``before``, and whether the trained
weights are bit-identical to the 1-thread run (the project's standard).

Run::

    cd /work/main && PYTHONPATH=. .venv/bin/python benchmarks/bench_determinism.py --repeats 5
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MNIST = REPO.parent / "shared" / "data" / "mnist"
VARIANTS = ("before", "strict-mkl", "pin-ops", "1-thread")
WARMUP = 20


class _Limited:
    """The first ``n`` batches of a loader (from ``start``)."""

    def __init__(self, loader, n: int, start: int = 0) -> None:
        self.loader, self.n, self.start = loader, n, start

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if i >= self.start + self.n:
                return
            if i >= self.start:
                yield batch


def worker(variant: str, stage: str, arch: str, threads: int, batches: int, data: str) -> dict:
    """One timed epoch in this process; returns seconds, steps and the weights' digest."""
    import time

    import torch

    from deepcompress import determinism as det
    from deepcompress.data import load_dataset
    from deepcompress.models import build_model
    from deepcompress.pruning.masks import layerwise_masks
    from deepcompress.training import train_one_epoch

    torch.set_num_threads(1 if variant == "1-thread" else threads)
    train, _, _ = load_dataset(data, batch_size=128, seed=0)
    torch.manual_seed(0)
    model = build_model(arch)
    masks = layerwise_masks(model, "conv=0.7,fc=0.92")
    masks.apply(model)
    if stage == "retrain":
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        masks.attach(model, opt)
    else:
        from deepcompress.layers import compressible_layers
        from deepcompress.quantize import finetune
        from deepcompress.quantize.sharing import share_weights

        names = {r.tensor_name for r in compressible_layers(model)}
        books = share_weights(model, "conv=8,fc=5", masks={n: m for n, m in masks.masks.items() if n in names})
        if variant in ("before", "strict-mkl"):
            finetune.shared_gather = lambda table, index: table[index]  # the old gather and its index_put_ backward
        finetune.SharedWeights.attach(model, books)
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    epoch = train_one_epoch if variant == "pin-ops" else train_one_epoch.__wrapped__  # undecorated: no pinning
    n = min(batches, len(train) - WARMUP)
    train.set_epoch(0)
    epoch(model, _Limited(train, WARMUP), opt, progress=False)
    t0 = time.perf_counter()
    epoch(model, _Limited(train, n, start=WARMUP), opt, progress=False)
    seconds = time.perf_counter() - t0
    if variant == "pin-ops":
        with det.thread_invariant() as how:
            assert how == "pin-ops", f"thread_invariant runs in mode {how!r}, not pin-ops"
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return {"variant": variant, "seconds": seconds, "steps": n, "digest": digest.hexdigest()[:12],
            "threads": torch.get_num_threads(), "strict_mkl": det.blas_thread_invariant()}


def run_worker(variant: str, stage: str, arch: str, threads: int, batches: int, data: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    env.update(OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(REPO))
    if variant in ("strict-mkl", "pin-ops"):
        env["MKL_CBWR"] = "AUTO,STRICT"  # what determinism.request_reproducible_blas() sets at CLI start
    cmd = [sys.executable, __file__, "--worker", variant, "--stage", stage, "--arch", arch, "--threads", str(threads),
           "--batches", str(batches), "--data", data]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"worker {variant} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["lenet5"])
    parser.add_argument("--stage", nargs="+", default=["retrain", "finetune"], choices=["retrain", "finetune"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=469, help="timed steps per run (469 = one MNIST epoch)")
    parser.add_argument("--data", default=f"mnist:{MNIST}")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.stage[0], args.arch[0], args.threads, args.batches, args.data)))
        return

    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{_dt.date.today().isoformat()}: torch {torch.__version__}, {args.threads} threads, batch 128, "
          f"{args.batches} timed steps after {WARMUP} warm-up, {args.repeats} repeats in rotating order, "
          f"one process per run; load average at start {load:.1f}\n", flush=True)
    print("| model | stage | variant | s/epoch median | min-max | vs before | weights = 1-thread bits | strict MKL |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    variants = list(args.variants)
    for arch in args.arch:
        for stage in args.stage:
            runs: dict[str, list[dict]] = {v: [] for v in variants}
            for r in range(args.repeats):
                order = variants[r % len(variants):] + variants[: r % len(variants)]
                for v in order:
                    runs[v].append(run_worker(v, stage, arch, args.threads, args.batches, args.data))
            scale = 469 / runs[variants[0]][0]["steps"]  # report seconds per full epoch
            med = {v: statistics.median(x["seconds"] for x in rs) * scale for v, rs in runs.items()}
            ref = {x["digest"] for x in runs.get("1-thread", [])}
            for v, rs in runs.items():
                secs = [x["seconds"] * scale for x in rs]
                digests = {x["digest"] for x in rs}
                same = "n/a" if not ref else ("yes" if digests == ref else
                                              f"no ({len(digests)} distinct)" if len(digests) > 1 else "no")
                base = f"{med[v] / med['before']:.2f}x" if "before" in med else "-"
                print(f"| {arch} | {stage} | {v} | {med[v]:.2f} | {min(secs):.2f}-{max(secs):.2f} | {base} | {same} "
                      f"| {'yes' if rs[0]['strict_mkl'] else 'no'} |", flush=True)


if __name__ == "__main__":
    main()
