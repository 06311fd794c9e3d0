"""1-D k-means: deepcompress.quantize.kmeans_1d against scikit-learn's KMeans.

Data: AlexNet-fc6-like pruned weights, i.e. normal(0, 0.01) float32 weights
with the middle 91% by magnitude removed (two humps), N values. Both start from
the same linear init (k points over [min, max]); sklearn runs with n_init=1 and
its default tol; kmeans_1d with its defaults (tol=0, max_iter=300, empty
clusters relocated, merge-and-split at fixed points). Times are the best of REPEATS runs; the ratio is
sklearn / ours, measured in this run. Also: Lloyd's inertia against the optimal
1-D k-means by dynamic programming (kmeans_1d_optimal), and plain Lloyd
(relocate_empty=False) against it.

Run: cd /work/main && PYTHONPATH=. OPENBLAS_NUM_THREADS=1 /work/venv/bin/python benchmarks/bench_kmeans.py
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def pruned_weights(n: int, seed: int = 0) -> np.ndarray:
    """``n`` float32 weights: normal(0, 0.01) with the 91% smallest magnitudes removed."""
    rng = np.random.default_rng(seed)
    dense = rng.normal(0.0, 0.01, size=int(n / 0.09) + 1000).astype(np.float32)
    cut = np.quantile(np.abs(dense), 0.91)
    kept = dense[np.abs(dense) > cut]
    return rng.permutation(kept)[:n]


def best_time(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of ours (best time kept)")
    parser.add_argument("--sk-repeats", type=int, default=1, help="runs of sklearn (best time kept)")
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    args = parser.parse_args()

    from sklearn.cluster import KMeans

    from deepcompress.quantize.inits import linear_init
    from deepcompress.quantize.kmeans import kmeans_1d
    from deepcompress.quantize.optimal import kmeans_1d_optimal

    cases = [(100_000, 32), (1_000_000, 32), (3_400_000, 32), (3_400_000, 256)]
    if args.quick:
        cases = [(100_000, 32), (300_000, 256)]
    print("## k-means speed and inertia against scikit-learn (linear init, n_init=1)\n")
    print("| N | k | sklearn s | sklearn iters | sklearn inertia | ours s | ours iters | ours inertia | speed-up | inertia ours/sklearn |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n, k in cases:
        w = pruned_weights(n)
        init = linear_init(w.astype(np.float64), k)

        def run_sklearn():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                km = KMeans(n_clusters=k, init=init.reshape(-1, 1).astype(np.float32), n_init=1)
                return km.fit(w.reshape(-1, 1))

        t_sk, km = best_time(run_sklearn, args.sk_repeats)
        labels = km.labels_
        centres = km.cluster_centers_.reshape(-1).astype(np.float64)
        sk_inertia = float(np.sum(np.square(w.astype(np.float64) - centres[labels])))
        t_ours, res = best_time(lambda: kmeans_1d(w, k), args.repeats)
        print(
            f"| {n:,} | {k} | {t_sk:.3f} | {km.n_iter_} | {sk_inertia:.6g} | {t_ours:.3f} | {res.n_iter} "
            f"| {res.inertia:.6g} | {t_sk / t_ours:.1f}x | {res.inertia / sk_inertia:.4f} |",
            flush=True,
        )

    print("\n## Sorting 3.4M float32 weights (the largest O(N) step)\n")
    from deepcompress.quantize.sorting import sort_values

    w = pruned_weights(3_400_000)
    sort_values(w[: 1 << 18])  # compile / load the numba kernel first
    t_np, _ = best_time(lambda: np.sort(w), args.repeats + 1)
    t_rx, _ = best_time(lambda: sort_values(w), args.repeats + 1)
    print(f"np.sort {t_np:.3f} s, radix sort (numba) {t_rx:.3f} s, ratio {t_np / t_rx:.1f}x")

    print("\n## Lloyd (linear init) against the optimal 1-D k-means (dynamic programming)\n")
    print("| N | k | Lloyd s | Lloyd inertia | optimal s | optimal inertia | Lloyd / optimal | plain Lloyd / optimal |")
    print("|---|---|---|---|---|---|---|---|")
    kmeans_1d_optimal(pruned_weights(1000), 4)  # compile / load the numba kernel first
    opt_cases = [(100_000, 16), (100_000, 32), (100_000, 256)] if not args.quick else [(20_000, 32)]
    for n, k in opt_cases:
        w = pruned_weights(n)
        t_l, lloyd = best_time(lambda: kmeans_1d(w, k), args.repeats)
        t_o, opt = best_time(lambda: kmeans_1d_optimal(w, k), 1)
        plain = kmeans_1d(w, k, relocate_empty=False)
        print(
            f"| {n:,} | {k} | {t_l:.3f} | {lloyd.inertia:.6g} | {t_o:.3f} | {opt.inertia:.6g} "
            f"| {lloyd.inertia / opt.inertia:.3f} | {plain.inertia / opt.inertia:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
