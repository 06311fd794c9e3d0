"""Dense vs sparse (CSR, int32 indices) inference latency of pruned fully connected stacks.

Run: cd /work/main && PYTHONPATH=. OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_sparse.py

Models (random weights, random pruning pattern at the paper's densities, Deep
Compression Tables 1 and 4):
* lenet300: the zoo's LeNet-300-100 (784-300-100-10), densities 8% / 9% / 26%;
* alexnet_fc: AlexNet's fc6-fc8 stack (9216-4096-4096-1000, ReLU between), 9% / 9% / 25%.

For each torch thread count (1 and 2) and batch size (1 and 64) the dense and
the sparse model run alternately (so both see the same machine load), after a
warm-up; the medians are reported with their ratio. A density sweep of the
single fc6-sized layer at batch 1 and 64 shows where CSR stops paying off, and a
layer-size sweep at 9% density and batch 1 shows below which size it loses (the
``min_weights`` option of ``deepcompress.sparse.sparsify``).
Each model's outputs are checked against the dense model's before timing.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepcompress.models import build_model  # noqa: E402
from deepcompress.sparse import sparsify  # noqa: E402

COMMAND = "PYTHONPATH=. OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_sparse.py"


def prune_(model: nn.Module, densities: list[float], seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    linears = [m for m in model.modules() if type(m) is nn.Linear]
    assert len(linears) == len(densities)
    with torch.no_grad():
        for layer, d in zip(linears, densities):
            layer.weight.mul_(torch.rand(layer.weight.shape, generator=g) < d)
    return model.eval()


def alexnet_fc() -> nn.Module:
    return nn.Sequential(nn.Linear(9216, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000))


MODELS = {
    "lenet300": (lambda: build_model("lenet300"), [0.08, 0.09, 0.26], 784),
    "alexnet_fc": (alexnet_fc, [0.09, 0.09, 0.25], 9216),
}


def time_pair(dense: nn.Module, sparse: nn.Module, x: torch.Tensor, repeats: int, warmup: int) -> tuple[float, float]:
    """Median seconds of dense and sparse, run alternately."""
    td, ts = [], []
    with torch.inference_mode():
        for _ in range(warmup):
            dense(x)
            sparse(x)
        for _ in range(repeats):
            t0 = time.perf_counter()
            dense(x)
            t1 = time.perf_counter()
            sparse(x)
            t2 = time.perf_counter()
            td.append(t1 - t0)
            ts.append(t2 - t1)
    return statistics.median(td), statistics.median(ts)


def repeats_for(seconds_per_call: float, budget: float, lo: int = 15, hi: int = 400) -> int:
    return max(lo, min(hi, int(budget / max(seconds_per_call, 1e-6))))


def fmt_ms(s: float) -> str:
    return f"{1e3 * s:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2", help="torch thread counts to measure")
    ap.add_argument("--budget", type=float, default=4.0, help="seconds of timing per cell (about)")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    print(f"# sparse inference benchmark, torch {torch.__version__}, OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS')}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"# command: {COMMAND}")
    rows = []
    for name, (make, densities, n_in) in MODELS.items():
        torch.manual_seed(0)
        dense = prune_(make(), densities, seed=1)
        sparse = sparsify(copy.deepcopy(dense), threshold_density=1.0)
        dense_bytes = sum(4 * m.weight.numel() for m in dense.modules() if type(m) is nn.Linear)
        sparse_bytes = sum(8 * m.nnz + 4 * (m.out_features + 1) for m in sparse.modules() if hasattr(m, "nnz"))
        x = torch.randn(64, n_in)
        with torch.inference_mode():
            diff = float((dense(x) - sparse(x)).abs().max())
        print(f"{name}: densities {densities}, fc weights {dense_bytes / 1e6:.2f} MB dense, "
              f"{sparse_bytes / 1e6:.2f} MB CSR (values + int32 indices), max |dense - sparse| = {diff:.1e}")
        for nt in threads:
            torch.set_num_threads(nt)
            for batch in (1, 64):
                xb = torch.randn(batch, n_in)
                t0 = time.perf_counter()
                with torch.inference_mode():
                    dense(xb)
                one = time.perf_counter() - t0
                reps = repeats_for(2 * one, args.budget)
                td, ts = time_pair(dense, sparse, xb, reps, warmup=max(3, reps // 10))
                rows.append((name, nt, batch, td, ts, reps))
                print(f"  threads={nt} batch={batch:>2}: dense {fmt_ms(td)} ms, sparse {fmt_ms(ts)} ms, "
                      f"speed-up {td / ts:.2f}x  ({reps} runs each)", flush=True)

    print("\n# density sweep: one 4096x9216 layer (fc6), torch threads = 1")
    torch.set_num_threads(1)
    sweep = []
    for d in (0.05, 0.09, 0.15, 0.25, 0.35, 0.5):
        dense = prune_(nn.Sequential(nn.Linear(9216, 4096)), [d], seed=2)
        sparse = sparsify(copy.deepcopy(dense), threshold_density=1.0)
        for batch in (1, 64):
            xb = torch.randn(batch, 9216)
            reps = 15 if batch == 64 else 60
            td, ts = time_pair(dense, sparse, xb, reps, warmup=3)
            sweep.append((d, batch, td, ts))
            print(f"  density {d:.2f} batch={batch:>2}: dense {fmt_ms(td)} ms, sparse {fmt_ms(ts)} ms, "
                  f"speed-up {td / ts:.2f}x", flush=True)

    print("\n# layer-size sweep: one layer at 9% density, batch 1")
    sizes = []
    for nt in threads:
        torch.set_num_threads(nt)
        for out_f, in_f in ((100, 300), (300, 784), (512, 512), (1024, 1024), (1024, 2048), (2048, 2048),
                            (4096, 4096)):
            dense = prune_(nn.Sequential(nn.Linear(in_f, out_f)), [0.09], seed=3)
            sparse = sparsify(copy.deepcopy(dense), threshold_density=1.0)
            td, ts = time_pair(dense, sparse, torch.randn(1, in_f), 300, warmup=30)
            sizes.append((nt, out_f, in_f, td, ts))
            print(f"  threads={nt} {out_f}x{in_f} ({out_f * in_f} weights): dense {fmt_ms(td)} ms, "
                  f"sparse {fmt_ms(ts)} ms, speed-up {td / ts:.2f}x", flush=True)

    print("\n## Markdown\n")
    print("| model | torch threads | batch | dense (ms) | sparse CSR int32 (ms) | speed-up |")
    print("|---|---|---|---|---|---|")
    for name, nt, batch, td, ts, _ in rows:
        print(f"| {name} | {nt} | {batch} | {fmt_ms(td)} | {fmt_ms(ts)} | {td / ts:.2f}x |")
    print("\n| fc6 density | batch | dense (ms) | sparse (ms) | speed-up |")
    print("|---|---|---|---|---|")
    for d, batch, td, ts in sweep:
        print(f"| {d:.2f} | {batch} | {fmt_ms(td)} | {fmt_ms(ts)} | {td / ts:.2f}x |")
    print("\n| torch threads | layer | weights | dense (ms) | sparse (ms) | speed-up |")
    print("|---|---|---|---|---|---|")
    for nt, out_f, in_f, td, ts in sizes:
        print(f"| {nt} | {out_f} x {in_f} | {out_f * in_f:,} | {fmt_ms(td)} | {fmt_ms(ts)} | {td / ts:.2f}x |")


if __name__ == "__main__":
    main()
