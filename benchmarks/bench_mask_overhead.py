"""Time per training step, dense vs masked (MaskSet.attach) at ~90% sparsity.

Synthetic data of MNIST shape, batch 128, SGD momentum 0.9 + weight decay,
2 torch threads. Dense and masked runs alternate in rounds inside one process
and the lower quartiles and medians of the round times are compared, so the
ratio is measured in the same run.

    cd /work/main && PYTHONPATH=. OPENBLAS_NUM_THREADS=1 /work/venv/bin/python benchmarks/bench_mask_overhead.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn as nn

from deepcompress.models import build_model
from deepcompress.pruning.masks import layerwise_masks


def make_batches(n: int, batch: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, 1, 28, 28, generator=g), torch.randint(0, 10, (batch,), generator=g)) for _ in range(n)]


def setup(arch: str, variant: str, sparsity: float):
    torch.manual_seed(0)
    model = build_model(arch)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    if variant != "dense":
        masks = layerwise_masks(model, sparsity)
        masks.attach(model, opt, zero_grads=(variant == "masked+grad-hooks"))
    return model, opt


def step(model, opt, x, y) -> None:
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


def time_round(model, opt, batches, steps: int) -> float:
    start = time.perf_counter()
    for i in range(steps):
        x, y = batches[i % len(batches)]
        step(model, opt, x, y)
    return (time.perf_counter() - start) / steps


def bench(arch: str, variants: list[str], sparsity: float, rounds: int, steps: int) -> dict[str, list[float]]:
    batches = make_batches(16, 128)
    runs = {v: setup(arch, v, sparsity) for v in variants}
    for model, opt in runs.values():  # warm-up
        time_round(model, opt, batches, max(3, steps // 5))
    samples: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(rounds):
        order = variants if r % 2 == 0 else variants[::-1]
        for v in order:
            samples[v].append(time_round(*runs[v], batches, steps))
    return samples


def quartile(values: list[float]) -> float:
    """The lower quartile: other processes only ever add time, so it is the least disturbed figure."""
    return statistics.quantiles(values, n=4)[0] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["lenet300", "lenet5"])
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=0, help="steps per round (default: per model)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = ["dense", "masked", "masked+grad-hooks"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 128, SGD momentum 0.9 wd 5e-4, "
          f"sparsity {args.sparsity}, {args.rounds} alternating rounds; load average at start {load:.1f}", flush=True)
    print("| model | variant | ms/step (lower quartile) | vs dense | ms/step (median) | vs dense |")
    print("|---|---|---|---|---|---|", flush=True)
    for arch in args.arch:
        steps = args.steps or (100 if arch == "lenet300" else 10)
        samples = bench(arch, variants, args.sparsity, args.rounds, steps)
        q = {v: quartile(s) for v, s in samples.items()}
        m = {v: statistics.median(s) for v, s in samples.items()}
        for v in variants:
            print(f"| {arch} | {v} | {q[v] * 1e3:.3f} | {q[v] / q['dense']:.3f}x | {m[v] * 1e3:.3f} | "
                  f"{m[v] / m['dense']:.3f}x |", flush=True)


if __name__ == "__main__":
    main()
