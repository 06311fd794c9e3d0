"""One deepcompress recipe of bench_peers.py over several seeds, on the peers' own baseline model.

bench_peers.py runs each recipe once (seed 0). Near the lossless end a row's verdict against a peer
turns on one or two test images, so this re-runs a recipe with other seeds and prints, per seed, the
file's bytes, top-1 and the paired change against the same baseline (lost / gained images)::

    cd benchmarks && OMP_NUM_THREADS=1 python peers_recipe_seeds.py lenet300_gentle --seeds 0 1 2

Needs the baseline bench_peers.py wrote (benchmarks/out/peers/lenet300_mnist.pt) and MNIST.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import bench_peers as B


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("recipe", help="a recipe in recipes/ (name without .toml)")
    ap.add_argument("--model", default="lenet300")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    import deepcompress

    recipe = B.REPO / "recipes" / f"{args.recipe}.toml"
    if not recipe.is_file():
        sys.exit(f"error: no recipe {recipe}")
    B.ensure_baseline(args.model)
    base = B.evaluate_items(args.model, B.load_baseline(args.model))
    rows = []
    for seed in args.seeds:
        stem = B.OUT / f"seeds_{args.model}_{args.recipe}_{seed}"
        path = Path(f"{stem}.dcz")
        deepcompress.compress(B.load_baseline(args.model), path, recipe=str(recipe), data=B.data_spec(args.model),
                              seed=seed, progress=False, log=lambda line: None, work_dir=f"{stem}.work")
        items = B.evaluate_items(args.model, deepcompress.load(path, model=B.load_baseline(args.model)))
        change, lost, gained = B.paired_change(base, items)
        rows.append({"seed": seed, "bytes": path.stat().st_size, "metric": sum(items) / len(items),
                     "baseline_metric": sum(base) / len(base), "paired_change": change, "lost": lost,
                     "gained": gained})
        print(json.dumps(rows[-1]), flush=True)
    print(f"median over seeds {args.seeds}: {statistics.median(r['bytes'] for r in rows):,.0f} bytes, "
          f"top1 {statistics.median(r['metric'] for r in rows):.4f}, paired change "
          f"{statistics.median(r['paired_change'] for r in rows):+.2f} "
          f"({min(r['paired_change'] for r in rows):+.2f}..{max(r['paired_change'] for r in rows):+.2f})")


if __name__ == "__main__":
    main()
