"""Headline on CIFAR-10: the shared pretrained ResNets compressed end to end, distilled and plain.

Run (one process per mode runs them side by side; a run whose summary exists is reused):
    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bench_cifar.py --model resnet20 --seeds 0 1 2 --modes distill
    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bench_cifar.py --model resnet20 --seeds 0 1 2 --modes plain
    PYTHONPATH=. python benchmarks/bench_cifar.py --model resnet20 --collect   # only tabulate finished runs

Each run is `deepcompress compress ../shared/models/cifar10_resnet/<ckpt> --arch <model>_cifar
--recipe recipes/<model>_cifar.toml --data cifar10 [--distill] --seed S`, its JSON summary in
benchmarks/out/cifar/<model>_<mode>_s<S>.json and its log beside it. The script then evaluates
the input checkpoint and every file on the 1,000 exact test images (`cifar10`) and on the 10,000
JPEG test images (`cifar10-jpegtest`) image by image, and reports the PAIRED top-1 change (same
images, compressed minus uncompressed) with the discordant counts, per seed and as median and
range over seeds; distilled against plain on the same seed; and the per-layer table of the first
distilled file (`deepcompress inspect --json`). Writes docs/benchmarks/cifar.md.

Ratio = dense float32 bytes of the input model / .dcz file bytes (everything included).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

from _common import REPO, TODAY, deepcompress_exe, run_cli

SHARED = REPO.parent / "shared"
CHECKPOINTS = {
    "resnet20": "resnet20-12fca82f.th",
    "resnet32": "resnet32-d509ac18.th",
    "resnet44": "resnet44-014dd654.th",
    "resnet56": "resnet56-4bfd9763.th",
}
BAR = {"resnet20": (10, 20), "resnet56": (15, 30)}  # issue #16: (bar, aim) ratios at a paired drop <= 0.5 points
SETS = [("cifar10", "1,000 exact test images"), ("cifar10-jpegtest", "10,000 JPEG test images")]


def require_cifar(model: str) -> Path:
    """The shared checkpoint of ``model``; exits with one line if it or the CIFAR-10 test images are missing."""
    ckpt = SHARED / "models" / "cifar10_resnet" / CHECKPOINTS[model]
    if not ckpt.is_file() or not (SHARED / "data" / "cifar10" / "test_exact_1000.npz").is_file():
        raise SystemExit(f"{ckpt} or the CIFAR-10 data is missing; see ../shared/data/README.md")
    return ckpt


def short(text: str) -> str:
    return text.replace(str(SHARED), "../shared").replace(str(REPO) + "/", "")


def compress_args(model: str, mode: str, seed: int, out: Path) -> list[str]:
    args = ["compress", str(SHARED / "models" / "cifar10_resnet" / CHECKPOINTS[model]), "--arch", f"{model}_cifar",
            "--recipe", str(REPO / "recipes" / f"{model}_cifar.toml"), "--data", "cifar10"]
    if mode == "distill":
        args.append("--distill")
    return [*args, "--seed", str(seed), "-o", str(out / f"{model}_{mode}_s{seed}.dcz"), "--json"]


def summary_of(path: Path) -> dict | None:
    try:
        text = path.read_text()
        return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])
    except (OSError, IndexError, json.JSONDecodeError):
        return None


def run_compress(model: str, mode: str, seed: int, out: Path) -> dict:
    stem = out / f"{model}_{mode}_s{seed}"
    found = summary_of(stem.with_suffix(".json"))
    if found is not None and Path(found["output"]).is_file():
        return found
    args = compress_args(model, mode, seed, out)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    print(f"running: {short(shlex.join(['deepcompress', *args]))}", flush=True)
    with open(stem.with_suffix(".json"), "w") as so, open(stem.with_suffix(".log"), "w") as se:
        proc = subprocess.run([*deepcompress_exe(), *args], stdout=so, stderr=se, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}); see {stem.with_suffix('.log')}")
    return summary_of(stem.with_suffix(".json"))


def predictions(path: Path, model: str, spec: str):
    """Per-image correctness (bool numpy array) of a checkpoint or .dcz file on ``spec``'s test set."""
    import numpy as np
    import torch

    import deepcompress
    from deepcompress.data import load_dataset
    from deepcompress.model_input import load_model

    if path.suffix == ".dcz":
        net = deepcompress.load(path)
    else:
        net, _ = load_model(path, arch=f"{model}_cifar")
    net.eval()
    _, test, _ = load_dataset(spec)
    right = []
    with torch.no_grad():
        for x, y in test:
            right.append((net(x).argmax(1) == y).numpy())
    return np.concatenate(right)


def paired(base, new) -> dict:
    """Paired change (points) of ``new`` against ``base`` on the same images, with discordant counts."""
    n = len(base)
    lost = int((base & ~new).sum())
    gained = int((~base & new).sum())
    delta = (gained - lost) / n
    se = math.sqrt(max(lost + gained - (gained - lost) ** 2 / n, 0.0)) / n
    return {"delta": 100 * delta, "se": 100 * se, "lost": lost, "gained": gained, "n": n,
            "top1": 100 * float(new.mean()), "base_top1": 100 * float(base.mean())}


def spread(values: list[float], fmt: str = "{:+.2f}") -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return fmt.format(values[0]) + " (1 seed)"
    return (f"{fmt.format(statistics.median(values))} (range {fmt.format(min(values))} .. {fmt.format(max(values))}, "
            f"mean {fmt.format(statistics.mean(values))} ± {statistics.stdev(values):.2f}, {len(values)} seeds)")


def merge_section(doc: Path, model: str, section: str) -> str:
    """The doc with this model's ``## CIFAR-10 (model, ...)`` section replaced; other models' kept."""
    sections = {}
    if doc.is_file():
        for part in doc.read_text().split("## CIFAR-10 (")[1:]:
            sections[part.split(",", 1)[0]] = "## CIFAR-10 (" + part.rstrip("\n") + "\n"
    sections[model] = section
    order = sorted(sections, key=lambda m: int("".join(c for c in m if c.isdigit()) or 0))
    return "\n".join(sections[m] for m in order)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=sorted(CHECKPOINTS), default="resnet20")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--modes", nargs="+", choices=["distill", "plain"], default=["distill", "plain"])
    parser.add_argument("--collect", action="store_true", help="do not run; tabulate the finished runs only")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "cifar"))
    parser.add_argument("--doc", default=str(REPO / "docs" / "benchmarks" / "cifar.md"))
    parser.add_argument("--note", action="append", default=[], help="a paragraph to add to the doc (how runs went)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = require_cifar(args.model)

    runs: dict[tuple[str, int], dict] = {}
    for mode in args.modes:
        for seed in args.seeds:
            stem = out / f"{args.model}_{mode}_s{seed}"
            if args.collect:
                found = summary_of(stem.with_suffix(".json"))
                if found is not None and Path(found["output"]).is_file():
                    runs[(mode, seed)] = found
            else:
                runs[(mode, seed)] = run_compress(args.model, mode, seed, out)
    if not runs:
        raise SystemExit("no finished runs to report")

    base = {spec: predictions(ckpt, args.model, spec) for spec, _ in SETS}
    rows = {}
    for (mode, seed), summary in sorted(runs.items()):
        dcz = Path(summary["output"])
        info, _, inspect_cmd = run_cli("inspect", str(dcz), "--json")
        ev, _, eval_cmd = run_cli("eval", str(dcz), "--data", "cifar10", "--json")
        preds = {spec: predictions(dcz, args.model, spec) for spec, _ in SETS}
        assert abs(100 * ev["top1"] - 100 * preds["cifar10"].mean()) < 1e-9, "eval and per-image top-1 disagree"
        rows[(mode, seed)] = {
            "ratio": info["compression_ratio"], "bytes": info["file_bytes"], "dense": info["dense_bytes"],
            "pairs": {spec: paired(base[spec], preds[spec]) for spec, _ in SETS}, "preds": preds,
            "info": info, "eval_cmd": eval_cmd, "inspect_cmd": inspect_cmd,
        }

    lines = [
        f"## CIFAR-10 ({args.model}, measured {TODAY})",
        "",
        f"`{args.model}_cifar` from the shared pretrained checkpoint `{CHECKPOINTS[args.model]}`, compressed end to",
        f"end with `recipes/{args.model}_cifar.toml`: distilled (`--distill`) and plain retraining on the same",
        "budget. Training images are the 50,000 JPEG copies; every accuracy change is PAIRED: the compressed",
        "file against the input checkpoint on the same images (lost = right before, wrong after; gained = the",
        "reverse; ± is the standard error of the paired change). With 1,000 images one image is 0.1 points.",
        "Ratio = dense float32 bytes of the input / `.dcz` bytes (everything included).",
        "",
        "Commands (`benchmarks/bench_cifar.py` runs them, OMP_NUM_THREADS=1, on a shared 2-core machine):",
        "",
    ]
    for (mode, seed) in sorted(runs):
        lines.append(f"- `{short(shlex.join(['deepcompress', *compress_args(args.model, mode, seed, out)]))}`")
    lines += [f"- then `deepcompress eval FILE --data cifar10` and `--data cifar10-jpegtest`, "
              f"`deepcompress inspect FILE --json`", ""]
    lines += ["| mode | seed | file bytes | ratio | top-1 exact (before -> after) | paired change, exact 1,000 | "
              "paired change, JPEG 10,000 |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for (mode, seed), r in sorted(rows.items()):
        ex, jp = r["pairs"]["cifar10"], r["pairs"]["cifar10-jpegtest"]
        lines.append(
            f"| {mode} | {seed} | {r['bytes']:,} | {r['ratio']:.1f}x | {ex['base_top1']:.1f}% -> {ex['top1']:.1f}% | "
            f"{ex['delta']:+.1f} ± {ex['se']:.1f} (lost {ex['lost']}, gained {ex['gained']}) | "
            f"{jp['delta']:+.2f} ± {jp['se']:.2f} (lost {jp['lost']}, gained {jp['gained']}) |")
    lines += ["", "Over seeds (median, range, mean ± standard deviation):", ""]
    for mode in args.modes:
        sel = [r for (m, _), r in sorted(rows.items()) if m == mode]
        if not sel:
            continue
        lines += [
            f"- {mode}: ratio {spread([r['ratio'] for r in sel], '{:.1f}x')}; paired change on the exact images "
            f"{spread([r['pairs']['cifar10']['delta'] for r in sel])} points; on the JPEG test images "
            f"{spread([r['pairs']['cifar10-jpegtest']['delta'] for r in sel])} points",
        ]
    both = sorted(s for (m, s) in rows if m == "distill" and ("plain", s) in rows)
    if both:
        lines += ["", "Distilled against plain retraining, same seed and budget (paired on the same images):", ""]
        for seed in both:
            d, p = rows[("distill", seed)]["preds"], rows[("plain", seed)]["preds"]
            parts = []
            for spec, label in SETS:
                c = paired(p[spec], d[spec])
                parts.append(f"{label}: {c['delta']:+.2f} ± {c['se']:.2f} points (distill right where plain was "
                             f"wrong {c['gained']}, the reverse {c['lost']})")
            lines.append(f"- seed {seed}: " + "; ".join(parts))
    if args.model in BAR:
        bar, aim = BAR[args.model]
        lines += ["", f"Issue #16 bar for {args.model}: at least {bar}x (aim {aim}x) at a paired drop of at most 0.5 "
                  "points on the exact images."]
        sel = [r for (m, _), r in sorted(rows.items()) if m == "distill"]
        if sel:
            worst_ratio = min(r["ratio"] for r in sel)
            worst = min(r["pairs"]["cifar10"]["delta"] for r in sel)
            met = worst_ratio >= bar and worst >= -0.5 - 1e-9
            lines.append(f"Distilled, {len(sel)} seed(s): lowest ratio {worst_ratio:.1f}x, worst paired change "
                         f"{worst:+.1f} points: the bar is {'MET' if met else 'MISSED'} on every seed; the aim "
                         f"({aim}x) is {'met' if worst_ratio >= aim and met else 'missed'}.")
    first = next((rows[k] for k in sorted(rows) if k[0] == "distill"), next(iter(rows.values())))
    lines += ["", f"Per layer (`{short(first['inspect_cmd'])}`):", "",
              "| layer | weights | kept | weight bits P+Q+H | index bits P+Q+H | bytes |", "| --- | --- | --- | --- | --- | --- |"]
    for layer in first["info"]["layers"]:
        lines.append(f"| {layer['name']} | {layer['n_weights']:,} | {100 * layer['density']:.1f}% | "
                     f"{layer['weight_bits_pqh'] or 0:.2f} | {layer['index_bits_pqh'] or 0:.2f} | {layer['bytes']:,} |")
    info = first["info"]
    dense = sum(t["bytes"] for t in info["dense_tensors"])
    lines += ["", f"Compressed layers together: {info['layer_totals']['bytes']:,} bytes; tensors left dense (BatchNorm "
              f"scales, shifts and running statistics, stored exactly): {dense:,} bytes in "
              f"{len(info['dense_tensors'])} tensors; header and framing: {info['overhead_bytes']:,} bytes; "
              f"file: {first['bytes']:,} bytes."]
    for note in args.note:
        lines += ["", note]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.doc).write_text(merge_section(Path(args.doc), args.model, text))
    print(f"wrote {args.doc}", file=sys.stderr)


if __name__ == "__main__":
    main()
