"""Reference baselines: train LeNet-300-100 and LeNet-5 on MNIST and record test error.

Run: PYTHONPATH=. python benchmarks/bench_baselines.py [--out DIR]
The paper's baselines are 1.64% (LeNet-300-100) and 0.80% (LeNet-5) top-1 error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import TODAY, REPO, require_mnist, run_cli

PAPER = {"lenet300": 1.64, "lenet5": 0.80}
RUNS = {
    "lenet300": ["--epochs", "40", "--lr", "0.05", "--seed", "0"],
    "lenet5": ["--epochs", "20", "--lr", "0.05", "--seed", "0"],
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out"))
    parser.add_argument("--only", choices=sorted(RUNS))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mnist = require_mnist()
    rows = []
    for arch, extra in RUNS.items():
        if args.only and arch != args.only:
            continue
        ckpt = out / f"{arch}_mnist.pt"
        result, seconds, cmd = run_cli("train", arch, "--data", f"mnist:{mnist}", *extra, "-o", str(ckpt), "--json",
                                       log=out / "baselines.log")
        epochs = extra[extra.index("--epochs") + 1]
        rows.append((arch, result["error_pct"], PAPER[arch], epochs, seconds, cmd))
        print(f"{arch}: error {result['error_pct']:.2f}% (paper {PAPER[arch]:.2f}%), {epochs} epochs, {seconds:.0f} s")
    lines = [
        f"| model | test error | paper | epochs | wall time | command (run {TODAY}) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for arch, err, paper, epochs, seconds, cmd in rows:
        cmd = cmd.replace(str(mnist), "../shared/data/mnist").replace(str(out), "benchmarks/out")
        lines.append(f"| {arch} | {err:.2f}% | {paper:.2f}% | {epochs} | {seconds:.0f} s | `{cmd}` |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
