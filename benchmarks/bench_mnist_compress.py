"""Headline: LeNet-300-100 and LeNet-5 compressed end to end on MNIST, beside Deep Compression.

Run (after bench_baselines.py has written the checkpoints):
    PYTHONPATH=. python benchmarks/bench_mnist_compress.py [--only lenet300|lenet5] [--recipe-dir recipes]

Ratio = dense float32 parameter bytes / .dcz file bytes (everything included).
Error = `deepcompress eval model.dcz` on the 10,000 MNIST test images.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import REPO, TODAY, require_mnist, run_cli

PAPER = {
    # model: (ratio, error %, per-layer (name, kept %, weight bits P+Q+H, index bits P+Q+H))
    "lenet300": (40, 1.58, [("ip1", 8, 4.4, 3.7), ("ip2", 9, 4.4, 4.3), ("ip3", 26, 4.3, 3.2)]),
    "lenet5": (39, 0.74, [("conv1", 66, 7.2, 1.5), ("conv2", 12, 7.2, 3.9), ("ip1", 8, 4.5, 4.5), ("ip2", 19, 5.2, 3.7)]),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out"))
    parser.add_argument("--only", choices=sorted(PAPER))
    parser.add_argument("--recipe-dir", default=str(REPO / "recipes"))
    parser.add_argument("--tag", default="paper", help="recipe suffix: recipes/<model>_<tag>.toml")
    args = parser.parse_args()
    out = Path(args.out)
    mnist = require_mnist()
    data = f"mnist:{mnist}"
    report = [f"Run {TODAY}. Ratio = dense float32 bytes / .dcz bytes (header, codebooks, biases included).", ""]
    for model, (paper_ratio, paper_err, paper_layers) in PAPER.items():
        if args.only and model != args.only:
            continue
        ckpt = out / f"{model}_mnist.pt"
        if not ckpt.is_file():
            raise SystemExit(f"{ckpt} missing: run benchmarks/bench_baselines.py first")
        recipe = Path(args.recipe_dir) / f"{model}_{args.tag}.toml"
        dcz = out / f"{model}_{args.tag}.dcz"
        summary, seconds, cmd = run_cli("compress", str(ckpt), "--recipe", str(recipe), "--data", data,
                                        "-o", str(dcz), "--no-cache", "--json", log=out / f"{model}_compress.log")
        ev, _, eval_cmd = run_cli("eval", str(dcz), "--data", data, "--json")
        info, _, inspect_cmd = run_cli("inspect", str(dcz), "--json")
        base = summary["baseline"]["error_pct"]
        ratio = info["compression_ratio"]
        print(f"{model}: {ratio:.1f}x (paper {paper_ratio}x), error {ev['error_pct']:.2f}% "
              f"(baseline {base:.2f}%, paper {paper_err:.2f}%), {info['file_bytes']} bytes, {seconds:.0f} s")
        short = lambda c: c.replace(str(mnist), "../shared/data/mnist").replace(str(out), "benchmarks/out")  # noqa: E731
        report += [
            f"### {model}",
            "",
            f"- compress: `{short(cmd)}` ({seconds:.0f} s wall on a shared 2-core machine)",
            f"- eval: `{short(eval_cmd)}`; inspect: `{short(inspect_cmd)}`",
            "",
            "| | ours | paper |",
            "| --- | --- | --- |",
            f"| top-1 error | {ev['error_pct']:.2f}% | {paper_err:.2f}% |",
            f"| baseline error | {base:.2f}% | {'1.64' if model == 'lenet300' else '0.80'}% |",
            f"| file bytes | {info['file_bytes']:,} | {'27 KB' if model == 'lenet300' else '44 KB'} |",
            f"| compression ratio | {ratio:.1f}x | {paper_ratio}x |",
            "",
            "| layer | weights | kept (ours) | kept (paper) | W bits P+Q+H (ours / paper) | idx bits P+Q+H (ours / paper) | bytes |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for layer, (pname, pkept, pw, pi) in zip(info["layers"], paper_layers):
            report.append(
                f"| {layer['name']} ({pname}) | {layer['n_weights']:,} | {100 * layer['density']:.1f}% | {pkept}% | "
                f"{layer['weight_bits_pqh'] or 0:.2f} / {pw} | {layer['index_bits_pqh'] or 0:.2f} / {pi} | {layer['bytes']:,} |"
            )
        report.append("")
    text = "\n".join(report)
    print(text)
    (out / f"mnist_compress_{args.tag}.md").write_text(text)


if __name__ == "__main__":
    main()
