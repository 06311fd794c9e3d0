"""MNIST headline over three baselines: ratio and PAIRED error change of each recipe, per seed and as mean/spread.

Run (a run whose results exist in --out is reused, so lanes can run side by side and be resumed):
    cd benchmarks && PYTHONPATH=. OMP_NUM_THREADS=1 python bench_mnist_robust.py --models lenet300 --tags best paper_lloyd
    cd benchmarks && PYTHONPATH=. python bench_mnist_robust.py --collect     # only tabulate finished runs

For each model and seed S: the baseline is `deepcompress train MODEL` with bench_baselines.py's settings and
`--seed S` (benchmarks/out/mnist_robust/MODEL_sS.pt); each recipe TAG is
`deepcompress compress MODEL_sS.pt --recipe recipes/MODEL_TAG.toml --data mnist:DIR --seed S --no-cache`.
Both the checkpoint and the file (decoded by `deepcompress.load`) are evaluated image by image on the 10,000
MNIST test images; the paired change is compressed minus baseline error on the same images, with the images
lost (right before, wrong after) and gained. `deepcompress inspect --json` gives the ratio and per-layer bits.
Writes benchmarks/out/mnist_robust/report.md (pasted into docs/benchmarks/mnist.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from _common import REPO, TODAY, require_mnist, run_cli
from bench_baselines import RUNS
from bench_cifar import paired
from bench_mnist_compress import PAPER

OUT = REPO / "benchmarks" / "out" / "mnist_robust"
BAR = {"lenet300": 40, "lenet5": 39}  # issue #16 item 6: ratio at a mean paired error change <= 0


def short(text: str, mnist: Path) -> str:
    return text.replace(str(mnist), "../shared/data/mnist").replace(str(REPO) + "/", "")


def baseline(model: str, seed: int, data: str, out: Path) -> Path:
    ckpt = out / f"{model}_s{seed}.pt"
    if not ckpt.is_file():
        args = [a if prev != "--seed" else str(seed) for prev, a in zip(["", *RUNS[model]], RUNS[model])]
        run_cli("train", model, "--data", data, *args, "-o", str(ckpt), "--json", log=out / "train.log")
    return ckpt


def correct(path: Path, data: str):
    """Per-image correctness (bool numpy array) of a checkpoint or .dcz file on the MNIST test images."""
    import numpy as np
    import torch

    import deepcompress
    from deepcompress.data import load_dataset
    from deepcompress.model_input import load_model

    net = deepcompress.load(path) if path.suffix == ".dcz" else load_model(path)[0]
    net.eval()
    _, test, _ = load_dataset(data)
    with torch.no_grad():
        return np.concatenate([(net(x).argmax(1) == y).numpy() for x, y in test])


def clusters_used(dcz: Path) -> dict[str, int]:
    """Distinct non-zero values per tensor of the decoded file: the shared weights in use."""
    import deepcompress

    return {name: int(t.unique().ne(0).sum()) for name, t in deepcompress.load_state_dict(dcz).items()}


def run_one(model: str, tag: str, seed: int, data: str, out: Path) -> dict:
    stem = out / f"{model}_{tag}_s{seed}"
    result = stem.with_suffix(".result.json")
    if result.is_file():
        return json.loads(result.read_text())
    ckpt = baseline(model, seed, data, out)
    dcz = stem.with_suffix(".dcz")
    recipe = REPO / "recipes" / f"{model}_{tag}.toml"
    summary, seconds, cmd = run_cli("compress", str(ckpt), "--recipe", str(recipe), "--data", data, "--seed",
                                    str(seed), "-o", str(dcz), "--no-cache", "--json", log=stem.with_suffix(".log"))
    info, _, _ = run_cli("inspect", str(dcz), "--json")
    pair = paired(correct(ckpt, data), correct(dcz, data))
    used = clusters_used(dcz)
    record = {"model": model, "tag": tag, "seed": seed, "command": cmd, "seconds": seconds, "date": TODAY,
              "ratio": info["compression_ratio"], "file_bytes": info["file_bytes"],
              "base_err": 100 - pair["base_top1"], "err": 100 - pair["top1"], "delta_err": -pair["delta"],
              "lost": pair["lost"], "gained": pair["gained"], "se": pair["se"],
              "history": summary.get("history") or summary.get("metrics", {}).get("history"),
              "layers": [{**{k: layer.get(k) for k in ("name", "n_weights", "density", "weight_bits_pqh",
                                                       "index_bits_pqh", "bytes", "codecs")}, "k": used[layer["name"]]}
                         for layer in info["layers"]]}
    result.write_text(json.dumps(record, indent=1))
    print(f"{model} {tag} s{seed}: {record['ratio']:.1f}x, error {record['base_err']:.2f}% -> {record['err']:.2f}% "
          f"(paired {record['delta_err']:+.2f}: lost {record['lost']}, gained {record['gained']}), {seconds:.0f} s",
          flush=True)
    return record


def stats(values: list[float], fmt: str) -> str:
    """Mean ± sample standard deviation, then the range; of every seed run."""
    if len(values) == 1:
        return fmt.format(values[0]) + " (1 run)"
    return (f"{fmt.format(statistics.mean(values))} ± {statistics.stdev(values):.2f} "
            f"(range {fmt.format(min(values))} .. {fmt.format(max(values))}, {len(values)} runs)")


def verdict(model: str, runs: list[dict]) -> str:
    """Issue #16 item 6: every run at least the bar's ratio, and a mean paired change of at most 0."""
    ok = statistics.mean(r["delta_err"] for r in runs) <= 0 and min(r["ratio"] for r in runs) >= BAR[model]
    return f"{'met' if ok else 'missed'} ({BAR[model]}x, mean change <= 0)"


def report(out: Path, mnist: Path) -> str:
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*.result.json"))]
    lines = [f"Collected {TODAY} from {len(records)} runs in benchmarks/out/mnist_robust/.", "",
             "| model | recipe | ratio | baseline error | compressed error | paired change, points | bar |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for model in BAR:
        for tag in sorted({r["tag"] for r in records if r["model"] == model}):
            runs = [r for r in records if r["model"] == model and r["tag"] == tag]
            lines.append(f"| {model} | `{tag}` | {stats([r['ratio'] for r in runs], '{:.1f}x')} | "
                         f"{stats([r['base_err'] for r in runs], '{:.2f}%')} | "
                         f"{stats([r['err'] for r in runs], '{:.2f}%')} | "
                         f"{stats([r['delta_err'] for r in runs], '{:+.2f}')} | {verdict(model, runs)} |")
    lines.append("")
    for model in BAR:
        for tag in sorted({r["tag"] for r in records if r["model"] == model}):
            runs = sorted((r for r in records if r["model"] == model and r["tag"] == tag), key=lambda r: r["seed"])
            lines += [f"#### {model}, `recipes/{model}_{tag}.toml`", "",
                      "| seed | ratio | file bytes | baseline error | compressed error | paired change (lost / gained) |",
                      "| --- | --- | --- | --- | --- | --- |"]
            lines += [f"| {r['seed']} | {r['ratio']:.1f}x | {r['file_bytes']:,} | {r['base_err']:.2f}% | "
                      f"{r['err']:.2f}% | {r['delta_err']:+.2f} ± {r['se']:.2f} ({r['lost']} / {r['gained']}) |"
                      for r in runs]
            lines += ["", f"Bar: {verdict(model, runs)}.", ""]
            names = [layer["name"] for layer in runs[0]["layers"]]
            paper = {name: p for name, p in zip(names, PAPER[model][2])}
            lines += ["| layer | kept (ours / paper) | clusters used | W bits P+Q+H (ours / paper) | "
                      "idx bits P+Q+H (ours / paper) |", "| --- | --- | --- | --- | --- |"]
            for i, name in enumerate(names):
                ls = [r["layers"][i] for r in runs]
                pname, pkept, pw, pi = paper[name]
                wb = [layer["weight_bits_pqh"] or 0 for layer in ls]
                ib = [layer["index_bits_pqh"] or 0 for layer in ls]
                ks = [layer["k"] for layer in ls if layer.get("k") is not None]
                lines.append(f"| {name} ({pname}) | {100 * ls[0]['density']:.1f}% / {pkept}% | "
                             f"{'-' if not ks else '..'.join(sorted({str(min(ks)), str(max(ks))}))} | "
                             f"{statistics.mean(wb):.2f} ({min(wb):.2f}..{max(wb):.2f}) / {pw} | "
                             f"{statistics.mean(ib):.2f} ({min(ib):.2f}..{max(ib):.2f}) / {pi} |")
            lines += ["", f"Command (seed 0): `{short(runs[0]['command'], mnist)}`", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", choices=sorted(BAR), default=sorted(BAR))
    parser.add_argument("--tags", nargs="+", default=["best"], help="recipes/<model>_<tag>.toml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--collect", action="store_true", help="only tabulate finished runs")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mnist = require_mnist()
    if not args.collect:
        for model in args.models:
            for tag in args.tags:
                for seed in args.seeds:
                    run_one(model, tag, seed, f"mnist:{mnist}", out)
    text = report(out, mnist)
    (out / "report.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
