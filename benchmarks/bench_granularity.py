"""Mao et al.'s granularity study on the shared pretrained ResNet-20 (issue #16 item 5), over seeds.

Run (one `deepcompress sweep` per seed, side by side; each reuses its stage cache when re-run):
    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bench_granularity.py --seeds 0 1 --jobs 2
    PYTHONPATH=. python benchmarks/bench_granularity.py --seeds 0 1 --collect   # tabulate finished sweeps only

Every point prunes the conv layers of `resnet20_cifar` one-shot (L1 norm of the block): element,
vector and kernel granularity at 30% and 50%, the N:M patterns 2:4 and 4:8 at their one fixed
sparsity (50%), filter and channel granularity at 30% (`PARTS`: sweeps per seed sharing one
stage cache), with the first conv layer and the fc layer left dense; retrains one epoch over the
50,000 JPEG training images by distillation from the input model (the same budget at every
point); shares weights at 8 bits (so quantization hardly moves accuracy); and writes a `.dcz`.

The script then evaluates every file image by image on the 1,000 exact test images and on the
10,000 JPEG test images, and reports per point the PAIRED top-1 change against the input
checkpoint (mean and range over seeds); per granularity the highest sparsity at no loss (every
sparsity up to it has a mean paired change on the exact images of at least -TOLERANCE points);
the conv layers' storage in the real file at that point, split into values (shared-weight
indices + codebook) and position index (relative gaps); and the conv memory references under
SCNN's array (docs/memory_model.md). Each of Mao et al.'s claims (papers.md section 3) is put
beside what was measured, with the rule used to decide it. Writes docs/benchmarks/granularity.md
and docs/img/granularity_resnet20.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

from _common import REPO, TODAY, deepcompress_exe
from bench_cifar import CHECKPOINTS, SHARED, paired, predictions, require_cifar, short

#: The study's points, as sweeps sharing one stage cache per seed: (folder suffix, granularities, sparsities),
#: in the order they run: fine and mid granularities at 30% and 50% (N:M at its fixed 50%), filter and channel
#: at 30% and 50%, then the fine and mid granularities at 70% and 40% (the finer grid near the no-loss edge).
PARTS = [("", "element,vector,kernel,2:4,4:8", "0.3,0.5"), ("_filter", "filter", "0.3"), ("_channel", "channel", "0.3"),
         ("_coarse50", "filter,channel", "0.5"), ("_70", "element,vector,kernel", "0.7"),
         ("_40", "element,vector,kernel", "0.4")]
SETS = ("cifar10", "cifar10-jpegtest")
DOC = REPO / "docs" / "benchmarks" / "granularity.md"


def sweep_args(model: str, seed: int, out: Path, part: tuple[str, str, str], epochs: int) -> list[str]:
    suffix, granularities, sparsities = part
    args = ["sweep", str(SHARED / "models" / "cifar10_resnet" / CHECKPOINTS[model]), "--arch", f"{model}_cifar",
            "--data", f"cifar10:{SHARED / 'data' / 'cifar10'}", "--fc-sparsity", "0", "--retrain-epochs", str(epochs),
            "--bits", "conv=8,fc=8", "--distill", "--seed", str(seed), "--json", "--granularity", granularities,
            "--sparsity", sparsities, "-o", str(out / f"{model}_s{seed}{suffix}")]
    return args + (["--work-dir", str(out / f"{model}_s{seed}" / "work")] if suffix else [])


def finished_points(out: Path, model: str, seed: int) -> set[tuple[str, float]]:
    """(granularity, sparsity) of every point in a finished sweep of this seed, whatever its folder."""
    done: set[tuple[str, float]] = set()
    for path in out.glob(f"{model}_s{seed}*/sweep.json"):
        done |= {(p["granularity"], p["sparsity"]) for p in json.loads(path.read_text())["points"]}
    return done


def missing_parts(out: Path, model: str, seed: int) -> list[tuple[str, str, str]]:
    """The PARTS still to run for this seed, each cut down to the granularities and sparsities with a missing point
    (a part whose folder is taken by an earlier, smaller sweep runs into a new folder named after what it adds)."""
    from deepcompress.pipeline.sweep import sweep_grid

    done = finished_points(out, model, seed)
    todo = []
    for suffix, grans, sparsities in PARTS:
        levels = [float(v) for v in sparsities.split(",")]
        missing = [(g, s) for g, s in sweep_grid(grans.split(","), levels) if (g, s) not in done]
        if not missing:
            continue
        g_miss = list(dict.fromkeys(g for g, _ in missing))
        s_miss = [s for s in levels if any(m == s for _, m in missing)] or levels
        if (out / f"{model}_s{seed}{suffix}" / "sweep.json").is_file():
            suffix = f"{suffix}_{'_'.join(g.replace(':', '') for g in g_miss)}"
        todo.append((suffix, ",".join(g_miss), ",".join(f"{s:g}" for s in s_miss)))
    return todo


def run_sweeps(args: argparse.Namespace, out: Path) -> None:
    """One process per seed (``--jobs`` side by side), each running its missing parts one after another."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    running: list[subprocess.Popen] = []
    for seed in args.seeds:
        cmds = [[*deepcompress_exe(), *sweep_args(args.model, seed, out, part, args.epochs)]
                for part in missing_parts(out, args.model, seed)]
        if not cmds:
            continue
        for cmd in cmds:
            print("running:", short(shlex.join(cmd)), flush=True)
        script = " && ".join(shlex.join(cmd) + " > /dev/null" for cmd in cmds)
        log = open(out / f"{args.model}_s{seed}.log", "a")
        running.append(subprocess.Popen(["sh", "-c", script], stderr=log, env=env))
        while len(running) >= args.jobs:
            running.pop(0).wait()
    for proc in running:
        proc.wait()


def cached_predictions(path: Path, model: str, spec: str):
    """:func:`bench_cifar.predictions` of a ``.dcz``, kept beside it (keyed by the file's sha256) for re-collects."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    cache = path.with_name(f"{path.name}.{spec}.{digest}.npy")
    if cache.is_file():
        return np.load(cache)
    right = predictions(path, model, spec)
    np.save(cache, right)
    return right


def conv_split(dcz_path: str, dense_layers: list[str]) -> dict[str, int]:
    """Bytes of the pruned conv layers' streams: values (indices + codebook) and position index (gaps)."""
    from deepcompress.container import read_dcz
    from deepcompress.container.summary import summarize

    values = index = 0
    for row in summarize(read_dcz(dcz_path))["layers"]:
        if row.get("layer_kind") != "conv" or row["name"] in dense_layers:
            continue
        streams = row.get("stream_bytes", {})
        values += streams.get("index", 0) + streams.get("codebook", 0)
        index += streams.get("gap", 0) + streams.get("pattern", 0)
    return {"values": values, "index": index}


def reencode_nm(paths: list[str]) -> list[dict]:
    """Each N:M layer of existing sweep files encoded again with the codecs of this checkout: the
    position bytes it had (relative-index gaps when the file was written) against what it gets now
    (pattern ids where they are smaller). Per file: kept weights, and both counts in bits per kept weight."""
    from deepcompress.codecs.tensor import encode_quantized
    from deepcompress.container import read_dcz
    from deepcompress.granularity import parse_nm

    out = []
    for path in paths:
        f = read_dcz(path)
        before = after = kept = 0
        for name in f.tensor_names:
            meta = f.meta(name)
            if meta.get("kind") != "quantized" or parse_nm(meta.get("granularity", "")) is None:
                continue
            labels, cb = f.decode_labels(name)
            et = encode_quantized(name, labels, cb, granularity=meta["granularity"], block=tuple(meta["block"]),
                                  bits=meta["bits"])
            sizes = {s: len(v) for s, v in f.streams(name).items()}
            before += sizes.get("gap", 0) + sizes.get("pattern", 0)
            after += len(et.streams.get("gap", b"")) + len(et.streams.get("pattern", b""))
            kept += int((labels >= 0).sum())
        out.append({"file": path, "kept": kept, "before_bits": 8 * before / max(kept, 1),
                    "after_bits": 8 * after / max(kept, 1), "before_bytes": before, "after_bytes": after})
    return out


def mean(values: list[float]) -> float:
    return statistics.mean(values) if values else float("nan")


def rng(values: list[float], fmt: str = "{:+.2f}") -> str:
    if len(values) < 2:
        return fmt.format(values[0]) if values else "-"
    return f"{fmt.format(mean(values))} ({fmt.format(min(values))} .. {fmt.format(max(values))})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=sorted(CHECKPOINTS), default="resnet20")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--jobs", type=int, default=2, help="sweeps run side by side")
    parser.add_argument("--epochs", type=int, default=1, help="distilled retraining epochs per point")
    parser.add_argument("--tolerance", type=float, default=0.5,
                        help="no loss = mean paired change on the exact images >= -TOLERANCE points")
    parser.add_argument("--collect", action="store_true", help="do not run; tabulate the finished sweeps only")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "granularity"))
    parser.add_argument("--doc", default=str(DOC))
    parser.add_argument("--note", action="append", default=[], help="a paragraph to add to the doc")
    parser.add_argument("--reencode-nm", action="store_true",
                        help="only print the position bits of the finished N:M sweep files, as written and as "
                             "this checkout's codecs store them (pattern ids), then stop")
    args = parser.parse_args()
    if args.reencode_nm:
        files = sorted(str(p) for p in Path(args.out).glob(f"{args.model}_s*/dcz/*of*.dcz"))
        for row in reencode_nm(files):
            print(f"{Path(row['file']).relative_to(args.out)}: {row['kept']:,} kept conv weights; positions "
                  f"{row['before_bytes']:,} B ({row['before_bits']:.2f} bits per kept weight) as written, "
                  f"{row['after_bytes']:,} B ({row['after_bits']:.2f}) now")
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = require_cifar(args.model)
    if not args.collect:
        run_sweeps(args, out)

    sweeps: dict[int, dict] = {}
    parts_run: list[tuple[int, str, dict]] = []
    for seed in args.seeds:  # every finished sweep of this seed: the PARTS, or any other sweep run into the folder
        seen: set[tuple[str, float]] = set()
        for path in sorted(out.glob(f"{args.model}_s{seed}*/sweep.json")):
            found = json.loads(path.read_text())
            entry = sweeps.setdefault(seed, {"settings": found["settings"], "points": []})
            new = [p for p in found["points"] if (p["granularity"], p["sparsity"]) not in seen]
            seen |= {(p["granularity"], p["sparsity"]) for p in new}
            entry["points"] += new
            parts_run.append((seed, path.parent.name, found["settings"]))
    if not sweeps:
        raise SystemExit("no finished sweeps to report")
    settings = next(iter(sweeps.values()))["settings"]
    dense_layers = settings.get("dense_layers", [])

    base = {spec: predictions(ckpt, args.model, spec) for spec in SETS}
    cells: dict[tuple[str, float], list[dict]] = {}
    for seed, sweep in sorted(sweeps.items()):
        for p in sweep["points"]:
            preds = {spec: cached_predictions(Path(p["dcz"]), args.model, spec) for spec in SETS}
            cells.setdefault((p["granularity"], p["sparsity"]), []).append({
                "seed": seed, "point": p, "exact": paired(base["cifar10"], preds["cifar10"]),
                "jpeg": paired(base["cifar10-jpegtest"], preds["cifar10-jpegtest"]),
                "split": conv_split(p["dcz"], dense_layers)})
            print(f"seed {seed} {p['granularity']} {p['sparsity']}: {cells[(p['granularity'], p['sparsity'])][-1]['exact']['delta']:+.1f}",
                  file=sys.stderr, flush=True)

    grans = list(dict.fromkeys(g for g, _ in cells))
    element = {s: c for (g, s), c in cells.items() if g == "element"}

    def agg(c: list[dict]) -> dict:
        pts = [x["point"] for x in c]
        return {
            "exact": [x["exact"]["delta"] for x in c], "jpeg": [x["jpeg"]["delta"] for x in c],
            "density": mean([p["conv_density"] for p in pts]), "conv": mean([p["conv_pqh_bytes"] for p in pts]),
            "values": mean([x["split"]["values"] for x in c]), "index": mean([x["split"]["index"] for x in c]),
            "mem": mean([p["mem_total"] for p in pts]), "mem_w": mean([p["mem_total_window"] for p in pts]),
            "mem_parts": {k: mean([p[f"mem_{k}"] for p in pts]) for k in ("weights", "index", "activations", "outputs")},
            "file": mean([p["file_bytes"] for p in pts]), "seeds": [x["seed"] for x in c],
        }

    table = {key: agg(c) for key, c in cells.items()}
    no_loss: dict[str, tuple[float, dict] | None] = {}
    for g in grans:
        best = None
        for s in sorted(s for (gg, s) in table if gg == g):
            if mean(table[(g, s)]["exact"]) < -args.tolerance - 1e-9:
                break
            best = (s, table[(g, s)])
        no_loss[g] = best

    seeds = sorted(sweeps)
    lines = [
        f"## Granularity of sparsity on {args.model} / CIFAR-10 (measured {TODAY})",
        "",
        f"Mao et al. (CVPRW 2017) redone on the shared pretrained `{CHECKPOINTS[args.model]}` "
        f"({len(seeds)} seed(s): {', '.join(map(str, seeds))}). Every point: the conv layers pruned one-shot at the "
        f"granularity and sparsity (by L1 norm of the block), the first conv layer ({', '.join(dense_layers) or '-'}) "
        f"and the fc layer left dense, {settings['retrain_epochs']} retraining epoch(s) over the 50,000 JPEG training "
        f"images by distillation from the input model (the same budget at every point), {settings['bits']} bits, "
        "encoded. Accuracy changes are PAIRED against the input checkpoint on the same images "
        "(mean over seeds, range in brackets): on the 1,000 exact test images (one image = 0.1 points; the standard "
        "error of one seed's change is about 0.5 points) and on the 10,000 JPEG test images (a larger paired sample; "
        "retraining on JPEG copies favours it, see docs/datasets.md). N:M patterns have one point, at 50%.",
        "",
        "Commands (OMP_NUM_THREADS=1, two sweeps side by side on a shared 2-core machine):",
        "",
    ]
    for seed, folder, st in parts_run:
        suffix = folder[len(f"{args.model}_s{seed}"):]
        part = (suffix, ",".join(st["granularities"]), ",".join(f"{v:g}" for v in st["sparsities"]))
        cmd = sweep_args(args.model, seed, out, part, st["retrain_epochs"])
        lines.append(f"- `{short(shlex.join(['deepcompress', *cmd]))}`")
    lines += [f"- then `{short(shlex.join(['python', 'benchmarks/bench_granularity.py', '--seeds', *map(str, seeds), '--collect']))}`"
              " (evaluates every file on both test sets)", ""]
    lines += ["| granularity | sparsity | conv density | paired change, exact 1,000 | paired change, JPEG 10,000 | "
              "conv bytes: values + index | conv mem refs (M) | vs element |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for g in grans:
        for s in sorted(s for (gg, s) in table if gg == g):
            t = table[(g, s)]
            rel = t["mem"] / table[("element", s)]["mem"] if ("element", s) in table else None
            lines.append(
                f"| {g} | {s:g} | {100 * t['density']:.1f}% | {rng(t['exact'], '{:+.1f}')} | {rng(t['jpeg'])} | "
                f"{t['values']:,.0f} + {t['index']:,.0f} = {t['conv']:,.0f} | {t['mem'] / 1e6:.2f} | "
                f"{'-' if rel is None else f'{rel:.2f}'} |")
    lines += ["", f"Baseline: {100 * base['cifar10'].mean():.1f}% on the exact images, "
              f"{100 * base['cifar10-jpegtest'].mean():.2f}% on the JPEG test images. Conv bytes and memory references "
              "count the pruned conv layers only (the dense first conv layer is the same at every point).", ""]

    lines += [f"### Highest sparsity at no loss (mean paired change on the exact images >= -{args.tolerance:g} points, "
              "at it and every lower grid sparsity)", "",
              "| granularity | no-loss sparsity | paired change there, exact | JPEG | conv bytes: values + index | "
              "vs element at its no-loss point | mem refs vs element's no-loss point |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    ref = no_loss.get("element")
    for g in grans:
        found = no_loss[g]
        if found is None:
            lines.append(f"| {g} | none on the grid | - | - | - | - | - |")
            continue
        s, t = found
        vs = f"{t['conv'] / ref[1]['conv']:.2f}" if ref else "-"
        mem = f"{t['mem'] / ref[1]['mem']:.2f}" if ref else "-"
        lines.append(f"| {g} | {s:g} | {rng(t['exact'], '{:+.1f}')} | {rng(t['jpeg'])} | "
                     f"{t['values']:,.0f} + {t['index']:,.0f} = {t['conv']:,.0f} | {vs} | {mem} |")

    free = datafree_table(out / f"{args.model}_datafree" / "sweep.json", ckpt, args.model, base, dense_layers)
    if free:
        lines += ["", "### The same masks without retraining (data-free, every granularity and sparsity)", "",
                  "One sweep with `--retrain-epochs 0` (no training, so one run is exact; its command is below). "
                  "Pruning is one-shot from the input weights, so each point's mask, index, and memory references "
                  "are those of the retrained point with the same granularity and sparsity; only the kept values "
                  "(and so the accuracy) differ.", "",
                  f"- `{short(shlex.join(['deepcompress', *free['cmd']]))}`", "",
                  "| granularity | sparsity | paired change, exact 1,000 | conv bytes: values + index | "
                  "conv mem refs (M): weights + index + activations + outputs | vs element |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for (g, sp), t in free["rows"].items():
            el = free["rows"].get(("element", sp))
            parts = t["parts"]
            lines.append(f"| {g} | {sp:g} | {t['exact']:+.1f} | {t['values']:,} + {t['index']:,} | "
                         f"{parts['weights'] / 1e6:.2f} + {parts['index'] / 1e6:.2f} + {parts['activations'] / 1e6:.2f} "
                         f"+ {parts['outputs'] / 1e6:.2f} = {t['mem'] / 1e6:.2f} | "
                         f"{'-' if not el else format(t['mem'] / el['mem'], '.2f')} |")
    lines += ["", "### Mao et al.'s claims beside these measurements", "",
              "| claim (papers.md section 3) | measured here | holds here? |", "| --- | --- | --- |"]
    for claim, measured, verdict in claims(grans, table, no_loss, element, free["rows"] if free else {}):
        lines.append(f"| {claim} | {measured} | {verdict} |")
    lines += ["", "Memory references: conv layers, SCNN's array (8 x 8 PEs, F = I = 4, 1,024 accumulator entries per PE;"
              " weights and index read by every PE holding an output tile; dense activations; docs/memory_model.md)."]
    # the figure goes with its page: docs/img/ for the docs page, beside any other --doc (which must not
    # overwrite the docs page's figure)
    doc = Path(args.doc)
    in_docs = doc.resolve() == DOC.resolve()
    plot = plot_study(grans, table, REPO / "docs" / "img" / f"granularity_{args.model}.png" if in_docs
                      else doc.with_name(f"{doc.stem}_{args.model}.png"), args.tolerance)
    lines += ["", f"![paired change against sparsity]({'../img/' if in_docs else ''}{plot.name})"]
    for note in args.note:
        lines += ["", note]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.doc).write_text(text)
    print(f"wrote {args.doc}", file=sys.stderr)


def datafree_table(path: Path, ckpt: Path, model: str, base: dict, dense_layers: list[str]) -> dict | None:
    """The data-free sweep's points, evaluated paired on the exact test images (None if it was not run)."""
    if not path.is_file():
        return None
    sweep = json.loads(path.read_text())
    st = sweep["settings"]
    rows = {}
    for p in sweep["points"]:
        right = cached_predictions(Path(p["dcz"]), model, "cifar10")
        rows[(p["granularity"], p["sparsity"])] = {
            "exact": paired(base["cifar10"], right)["delta"], **conv_split(p["dcz"], dense_layers),
            "mem": p["mem_total"], "parts": {k: p[f"mem_{k}"] for k in ("weights", "index", "activations", "outputs")}}
    cmd = ["sweep", str(ckpt), "--arch", f"{model}_cifar", "--data", f"cifar10:{SHARED / 'data' / 'cifar10'}",
           "--fc-sparsity", "0", "--retrain-epochs", "0", "--bits", st["bits"], "--seed", str(st["seed"]), "--json",
           "--granularity", ",".join(st["granularities"]), "--sparsity", ",".join(f"{v:g}" for v in st["sparsities"]),
           "-o", str(path.parent)]
    return {"rows": rows, "cmd": cmd}


def claims(grans, table, no_loss, element, free) -> list[tuple[str, str, str]]:
    """Each claim, what was measured, and whether it holds under the stated rule."""
    out = []
    el = no_loss.get("element")
    coarse = [g for g in ("vector", "kernel") if g in grans]
    if el and coarse:
        parts, ok = [], True
        for g in coarse:
            found = no_loss.get(g)
            parts.append(f"{g} {found[0]:g}" if found else f"{g} none")
            ok &= bool(found) and found[0] >= el[0] - 0.2 - 1e-9
        out.append(("coarse-grained (vector, kernel) pruning reaches a no-loss sparsity similar to fine-grained",
                    f"element {el[0]:g}; " + ", ".join(parts) + " (grid step 0.2)",
                    "yes (within one grid step)" if ok else "no: more than one grid step lower"))
    if el:
        parts, ok = [], False
        for g in coarse:
            found = no_loss.get(g)
            if found:
                r = found[1]["conv"] / el[1]["conv"]
                parts.append(f"{g} {r:.2f}x element's bytes")
                ok |= r <= 1.05
        out.append(("at the same accuracy threshold, coarse-grained sparsity compresses similarly or better "
                    "(index saving)", "conv bytes at each no-loss point: " + (", ".join(parts) or "-"),
                    "cannot be judged: no coarse granularity is without loss on the grid" if not parts else
                    "yes" if ok else "no: coarse files are more than 5% larger at their no-loss points"))
        parts, ratios = [], []
        for g in coarse:
            found = no_loss.get(g)
            if found:
                r = found[1]["mem"] / el[1]["mem"]
                ratios.append(r)
                parts.append(f"{g} {r:.2f}x")
        best = min(ratios) if ratios else None
        out.append(("coarse-grained sparsity saves 30-35% (CVPRW) / about 2x (arXiv v3) of memory references "
                    "against fine-grained (SCNN dataflow)",
                    "at the no-loss points, against element's: " + (", ".join(parts) or "-"),
                    "cannot be judged at equal accuracy (no coarse no-loss point)" if best is None else
                    ("yes (>= 30% saved)" if best <= 0.70 else f"no: at most {100 * (1 - best):.0f}% saved")))
    masks = free or {k: {"mem": v["mem"]} for k, v in table.items()}  # equal-sparsity counts need masks only
    equal = [(g, s, masks[(g, s)]["mem"] / masks[("element", s)]["mem"])
             for g in ("vector", "kernel") for s in sorted({s for (gg, s) in masks if gg == "element"})
             if (g, s) in masks]
    if equal:
        saved = [1 - r for _, _, r in equal]
        out.append(("the same memory claim, at equal sparsity instead of equal accuracy",
                    ", ".join(f"{g} at {s:g}: {r:.2f}x" for g, s, r in equal),
                    "yes (>= 30% saved at every point)" if min(saved) >= 0.30 - 1e-9 else
                    f"partly: {100 * min(saved):.0f}-{100 * max(saved):.0f}% saved"))
    def exact(t: dict) -> float:
        return mean(t["exact"]) if isinstance(t["exact"], list) else t["exact"]

    for label, tab in (("retrained", table), ("data-free", free)):
        at_equal = []
        finer = ("element", "vector", "kernel")
        for s in sorted({s for (g, s) in tab if g == "filter"}):
            others = [g for g in finer if (g, s) in tab]
            if others:
                worst = all(exact(tab[("filter", s)]) < exact(tab[(g, s)]) for g in others)
                at_equal.append((s, worst))
        if at_equal:
            out.append((f"filter-level pruning loses more accuracy than finer levels at equal sparsity ({label})",
                        ", ".join(f"{s:g}: {'filter worst' if w else 'filter not worst'}" for s, w in at_equal),
                        "yes" if all(w for _, w in at_equal) else "not at every sparsity"))
    for g in ("2:4", "4:8"):
        if (g, 0.5) in table and ("element", 0.5) in table:
            t, e = table[(g, 0.5)], table[("element", 0.5)]
            out.append((f"(new here) {g} at 50% against element at 50%",
                        f"paired change {mean(t['exact']):+.1f} vs {mean(e['exact']):+.1f} (exact), "
                        f"{mean(t['jpeg']):+.2f} vs {mean(e['jpeg']):+.2f} (JPEG); conv bytes {t['conv']:,.0f} "
                        f"(index {t['index']:,.0f}) vs {e['conv']:,.0f} (index {e['index']:,.0f})", "-"))
    return out


def plot_study(grans, table, path: Path, tolerance: float) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for g in grans:
        ss = sorted(s for (gg, s) in table if gg == g)
        for ax, key in zip(axes, ("exact", "jpeg")):
            ys = [mean(table[(g, s)][key]) for s in ss]
            lo = [ys[i] - min(table[(g, s)][key]) for i, s in enumerate(ss)]
            hi = [max(table[(g, s)][key]) - ys[i] for i, s in enumerate(ss)]
            ax.errorbar([100 * (1 - table[(g, s)]["density"]) for s in ss], ys, yerr=[lo, hi], marker="o",
                        capsize=3, label=g, ls="-" if len(ss) > 1 else "none")
    for ax, title in zip(axes, ("1,000 exact test images", "10,000 JPEG test images")):
        ax.axhline(0, color="k", lw=0.8)
        ax.set(xlabel="conv sparsity (%)", ylabel="paired top-1 change (points)", title=title)
    axes[0].axhline(-tolerance, color="k", lw=0.8, ls="--")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
