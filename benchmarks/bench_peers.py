"""deepcompress beside the tools users would pick instead, on the same models, in one run (issue #18).

Run in a separate benchmark environment (the peers are never installed into the project's):
    python3 -m venv /tmp/peersenv
    /tmp/peersenv/bin/pip install -c constraints.txt -e '.[peers]'
    cd benchmarks && OMP_NUM_THREADS=1 /tmp/peersenv/bin/python bench_peers.py --quick --json   # LeNet-300-100
    cd benchmarks && OMP_NUM_THREADS=1 /tmp/peersenv/bin/python bench_peers.py --models resnet20
    cd benchmarks && /tmp/peersenv/bin/python bench_peers.py --doc     # docs/benchmarks/peers.md from the results

Every run (one model, one tool, one setting) is a subprocess of its own, so its peak RSS
(``os.wait4``'s ``ru_maxrss``) is its own; ``seconds`` is the wall time of the compression step
inside it (retraining included, evaluation excluded). Each run writes the artefact a user would ship
into benchmarks/out/peers/, reads it back where the tool can, and scores the model in PyTorch with the
one evaluation function of its model (``evaluate_items``): per-item correctness on the test set, so
the change against the uncompressed model is paired. A tool that is not installed, or fails, is
reported with its reason (stderr, and the doc), never dropped silently.

``--json`` prints one JSON array, one object a run, with exactly the keys of ``ROW_KEYS``.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

from _common import MNIST, REPO, TODAY

OUT = REPO / "benchmarks" / "out" / "peers"
CIFAR_DISTILL = REPO / "benchmarks" / "out" / "cifar" / "resnet20_distill_s0.dcz"  # another benchmark's file: read only
RESNET20 = REPO.parent / "shared" / "models" / "cifar10_resnet" / "resnet20-12fca82f.th"
CIFAR = REPO.parent / "shared" / "data" / "cifar10"
ROW_KEYS = ("model", "tool", "settings", "bytes", "metric", "metric_name", "baseline_metric", "seconds", "peak_rss_mb")
HIGHER_IS_BETTER = {"top1": True, "agreement": True, "val_loss": False}
PEER_EPOCHS = 20  # retraining budget of the peers' runs with retraining (LeNet-300-100)
LENET_SPARSITY = {"layers.0": 0.94, "layers.1": 0.93, "classifier": 0.8}  # recipes/lenet300_best.toml
LENET_BITS = {"layers.0": 5, "layers.1": 5, "classifier": 6}


# ---------------------------------------------------------------------------------------------- models


def baseline_path(model: str) -> Path:
    return {"lenet300": OUT / "lenet300_mnist.pt", "resnet20": RESNET20}[model]


def ensure_baseline(model: str) -> None:
    """LeNet-300-100: train the baseline as benchmarks/bench_baselines.py does, into out/peers/."""
    if model != "lenet300" or baseline_path(model).is_file():
        return
    from _common import run_cli

    OUT.mkdir(parents=True, exist_ok=True)
    run_cli("train", "lenet300", "--data", f"mnist:{MNIST}", "--epochs", "40", "--lr", "0.05", "--seed", "0",
            "-o", str(baseline_path(model)), "--json", log=OUT / "baseline.log")


def load_baseline(model: str):
    from deepcompress.model_input import load_model

    arch = {"lenet300": None, "resnet20": "resnet20_cifar"}[model]
    net, _ = load_model(baseline_path(model), arch=arch)
    return net.eval()


def data_spec(model: str) -> str:
    return {"lenet300": f"mnist:{MNIST}", "resnet20": f"cifar10:{CIFAR}"}[model]


def metric_name(model: str) -> str:
    return {"lenet300": "top1", "resnet20": "top1"}[model]


def loaders(model: str):
    from deepcompress.data import load_dataset

    train, test, _ = load_dataset(data_spec(model), seed=0)
    return train, test


def evaluate_items(model: str, net) -> list[bool]:
    """The one evaluation of every tool's model: per test item, is the top-1 prediction right."""
    import torch

    _, test = loaders(model)
    net.eval()
    right: list[bool] = []
    with torch.no_grad():
        for x, y in test:
            right += (net(x).argmax(1) == y).tolist()
    return right


def example_input(model: str):
    import torch

    return {"lenet300": torch.zeros(1, 1, 28, 28), "resnet20": torch.zeros(1, 3, 32, 32)}[model]


def fine_tune(model: str, net, epochs: int, after_step=None, lr: float = 0.01) -> None:
    """Plain SGD retraining on the model's training set (the peers' retraining runs)."""
    import torch
    import torch.nn.functional as F

    train, _ = loaders(model)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    for epoch in range(epochs):
        if hasattr(train, "set_epoch"):
            train.set_epoch(epoch)
        net.train()
        for x, y in train:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            opt.step()
            if after_step is not None:
                after_step()
    net.eval()


def zstd19(raw: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=19).compress(raw)


def state_bytes(state: dict) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def fp32_bytes(net) -> int:
    return sum(t.numel() * 4 for t in net.state_dict().values() if t.is_floating_point())


# ---------------------------------------------------------------------------------------------- tools
# Each returns (artefact path, model to evaluate, seconds of compression, note).


def run_deepcompress(model: str, s: dict, stem: Path):
    import deepcompress

    net = load_baseline(model)
    path = stem.with_suffix(".dcz")
    if s.get("file"):  # a file written by another benchmark (read only)
        return Path(s["file"]), deepcompress.load(s["file"], model=load_baseline(model)), None, "file of bench_cifar.py: its time is not this run's"
    shutil.rmtree(str(stem) + ".work", ignore_errors=True)  # no stage cache: the time is a whole run's
    t0 = time.perf_counter()
    if s.get("recipe"):
        deepcompress.compress(net, path, recipe=str(REPO / "recipes" / s["recipe"]), data=data_spec(model), seed=0,
                              progress=False, log=lambda line: None, work_dir=str(stem) + ".work")
    else:
        deepcompress.compress(net, path, sparsity=s["sparsity"], bits=s["bits"], progress=False,
                              log=lambda line: None)
    seconds = time.perf_counter() - t0
    # the file names no architecture (the model came in as a module): fill the baseline's module, as a user would
    return path, deepcompress.load(path, model=load_baseline(model)), seconds, ""


def _coreml_package(net, model: str, stem: Path):
    """ct.convert of the optimised model to an ML program; returns the .mlpackage path."""
    import coremltools as ct
    import torch

    traced = torch.jit.trace(net.eval(), example_input(model))
    ml = ct.convert(traced, inputs=[ct.TensorType(name="x", shape=tuple(example_input(model).shape))],
                    convert_to="mlprogram", minimum_deployment_target=ct.target.iOS18)
    path = stem.with_suffix(".mlpackage")
    shutil.rmtree(path, ignore_errors=True)
    ml.save(str(path))
    return path


def run_coremltools(model: str, s: dict, stem: Path):
    from coremltools.optimize.torch.palettization import PostTrainingPalettizer, PostTrainingPalettizerConfig
    from coremltools.optimize.torch.pruning import MagnitudePruner, MagnitudePrunerConfig

    net = load_baseline(model)
    t0 = time.perf_counter()
    if s.get("prune"):
        sp = s["prune"]
        from coremltools.optimize.torch.pruning import (ConstantSparsityScheduler, ModuleMagnitudePrunerConfig,
                                                        PolynomialDecayScheduler)

        sched = (PolynomialDecayScheduler(update_steps=s["update_steps"]) if s.get("update_steps")
                 else ConstantSparsityScheduler(begin_step=0))
        cfg = MagnitudePrunerConfig()
        for name, amount in s["prune"].items():
            cfg.set_module_name(name, ModuleMagnitudePrunerConfig(target_sparsity=amount, scheduler=sched))
        pruner = MagnitudePruner(net, cfg)
        net = pruner.prepare(inplace=True)
        pruner.step()
        if s.get("epochs"):
            fine_tune(model, net, s["epochs"], after_step=pruner.step)
        net = pruner.finalize(inplace=True)
    if s.get("bits"):
        bits = s["bits"]
        common = {"granularity": s.get("granularity", "per_tensor")}
        if s.get("group_size"):
            common["group_size"] = s["group_size"]
        if isinstance(bits, dict):
            cfg = {"module_name_configs": {n: {"n_bits": b, **common} for n, b in bits.items()}}
        else:
            cfg = {"global_config": {"n_bits": bits, **common}}
        pal = PostTrainingPalettizer(net, PostTrainingPalettizerConfig.from_dict(cfg))
        net = pal.compress()
    seconds = time.perf_counter() - t0
    path = _coreml_package(net, model, stem)
    note = ("quality of the palettized PyTorch model coremltools returns (an .mlpackage runs only on Apple "
            "platforms); bytes = every file of the .mlpackage")
    return path, net, seconds, note


def run_torch_prune(model: str, s: dict, stem: Path):
    import torch
    import torch.nn.utils.prune as prune

    net = load_baseline(model)
    t0 = time.perf_counter()
    mods = dict(net.named_modules())
    if isinstance(s["sparsity"], dict):
        for name, amount in s["sparsity"].items():
            prune.l1_unstructured(mods[name], "weight", amount=amount)
    else:
        targets = [(m, "weight") for m in net.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=s["sparsity"])
    if s.get("epochs"):
        fine_tune(model, net, s["epochs"])  # the masks are forward pre-hooks: pruned weights stay zero
    for m in net.modules():
        if prune.is_pruned(m) and hasattr(m, "weight_orig"):
            prune.remove(m, "weight")
    state = net.state_dict()
    if s.get("dtype") == "float16":
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    path = stem.with_suffix(".pt.zst")
    path.write_bytes(zstd19(state_bytes(state)))
    seconds = time.perf_counter() - t0
    import zstandard

    back = torch.load(io.BytesIO(zstandard.ZstdDecompressor().decompress(path.read_bytes())), weights_only=True)
    fresh = load_baseline(model)
    fresh.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in back.items()})
    return path, fresh, seconds, "zstd -19 of torch.save(state_dict)" + (" in float16" if s.get("dtype") else "")


def run_torch_pruning(model: str, s: dict, stem: Path):
    import torch
    import torch_pruning as tp

    net = load_baseline(model)
    t0 = time.perf_counter()
    last = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
    pruner = tp.pruner.MetaPruner(net, example_input(model), importance=tp.importance.MagnitudeImportance(p=2),
                                  pruning_ratio=s["ratio"], ignored_layers=[last],
                                  global_pruning=s.get("global", False))
    pruner.step()
    if s.get("epochs"):
        fine_tune(model, net, s["epochs"])
    path = stem.with_suffix(".pth")
    torch.save(net, path)  # the pruned architecture differs from the original: Torch-Pruning saves the module
    seconds = time.perf_counter() - t0
    back = torch.load(path, weights_only=False)
    return path, back, seconds, "torch.save of the physically smaller module"


def run_nncf(model: str, s: dict, stem: Path):
    import nncf
    import torch

    net = load_baseline(model)
    t0 = time.perf_counter()
    kwargs = {"mode": getattr(nncf.CompressWeightsMode, s["mode"])}
    for key in ("group_size", "ratio", "all_layers"):
        if key in s:
            kwargs[key] = s[key]
    ds = nncf.Dataset([example_input(model)])
    comp = nncf.compress_weights(net, dataset=ds, **kwargs)
    path = stem.with_suffix(".pt")
    torch.save(comp.state_dict(), path)
    seconds = time.perf_counter() - t0
    fresh = nncf.compress_weights(load_baseline(model), dataset=ds, **kwargs)
    fresh.load_state_dict(torch.load(path, weights_only=False))
    return path, fresh, seconds, "torch.save(state_dict) of the compressed model, loaded back into a compressed copy"


def run_zipnn(model: str, s: dict, stem: Path):
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save
    from zipnn import ZipNN

    net = load_baseline(model)
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    raw = st_save(state)
    t0 = time.perf_counter()
    comp = ZipNN(input_format="byte", bytearray_dtype="float32", threads=1).compress(bytearray(raw))
    path = stem.with_suffix(".safetensors.znn")
    path.write_bytes(bytes(comp))
    seconds = time.perf_counter() - t0
    back = ZipNN(input_format="byte", bytearray_dtype="float32", threads=1).decompress(path.read_bytes())
    if bytes(back) != raw:
        raise RuntimeError("ZipNN round trip differs")
    fresh = load_baseline(model)
    fresh.load_state_dict(st_load(bytes(back)))
    return path, fresh, seconds, "lossless: safetensors of the state dict through ZipNN (round trip checked)"


TOOLS = {
    "deepcompress": (run_deepcompress, "deepcompress"),
    "coremltools": (run_coremltools, "coremltools"),
    "torch.nn.utils.prune+zstd": (run_torch_prune, "zstandard"),
    "torch-pruning": (run_torch_pruning, "torch_pruning"),
    "nncf": (run_nncf, "nncf"),
    "zipnn": (run_zipnn, "zipnn"),
}


def runs_for(model: str) -> list[tuple[str, str, dict]]:
    """(tool, label, settings): each tool at its docs' settings, plus settings matched to ours."""
    r: list[tuple[str, str, dict]] = []
    if model == "lenet300":
        r += [
            ("deepcompress", "recipe lenet300_best (prune 94/93/80%, 5/5/6 bits, retrain)",
             {"recipe": "lenet300_best.toml"}),
            ("deepcompress", "recipe lenet300_paper (prune 92/91/74%, 6 bits, retrain)", {"recipe": "lenet300_paper.toml"}),
            ("deepcompress data-free", "sparsity 0.7, 5 bits (the data-free default)", {"sparsity": "0.7", "bits": "5"}),
            ("deepcompress data-free", "no pruning, 5 bits", {"sparsity": "0", "bits": "5"}),
            ("deepcompress data-free", "sparsity 0.5, 4 bits", {"sparsity": "0.5", "bits": "4"}),
            ("coremltools", "k-means 4 bits per tensor (docs default)", {"bits": 4}),
            ("coremltools", "k-means 4 bits per grouped channel, group 10 (docs: 16, which divides no layer here)",
             {"bits": 4, "granularity": "per_grouped_channel", "group_size": 10}),
            ("coremltools", "k-means 5/5/6 bits per tensor (ours)", {"bits": LENET_BITS}),
            ("coremltools", "k-means 6 bits per tensor (nearest to ours Core ML stores)", {"bits": 6}),
            ("coremltools", "magnitude 70% + k-means 4 bits, data-free (joint)",
             {"prune": {k: 0.7 for k in LENET_SPARSITY}, "bits": 4}),
            ("coremltools", f"magnitude 94/93/80% retrain {PEER_EPOCHS} ep + k-means 4 bits (joint, ours)",
             {"prune": LENET_SPARSITY, "bits": 4, "epochs": PEER_EPOCHS,
              "update_steps": list(range(0, 469 * 10, 469))}),  # over the first 10 epochs (469 steps each)
            ("torch.nn.utils.prune+zstd", "global L1 70%, data-free", {"sparsity": 0.7}),
            ("torch.nn.utils.prune+zstd", f"L1 94/93/80% + retrain {PEER_EPOCHS} ep (ours)",
             {"sparsity": LENET_SPARSITY, "epochs": PEER_EPOCHS}),
            ("torch.nn.utils.prune+zstd", f"L1 94/93/80% + retrain {PEER_EPOCHS} ep, float16",
             {"sparsity": LENET_SPARSITY, "epochs": PEER_EPOCHS, "dtype": "float16"}),
            ("torch-pruning", "magnitude, 50% of units, data-free", {"ratio": 0.5}),
            ("torch-pruning", f"magnitude, 75% of units + retrain {PEER_EPOCHS} ep", {"ratio": 0.75, "epochs": PEER_EPOCHS}),
            ("torch-pruning", f"magnitude, 90% of units + retrain {PEER_EPOCHS} ep", {"ratio": 0.9, "epochs": PEER_EPOCHS}),
        ]
    elif model == "resnet20":
        r += [
            ("deepcompress data-free", "sparsity conv=0.5,fc=0.7, conv 8 / fc 5 bits (the data-free default)",
             {"sparsity": "conv=0.5,fc=0.7", "bits": "conv=8,fc=5"}),
            ("deepcompress data-free", "no pruning, 5 bits", {"sparsity": "0", "bits": "5"}),
            ("deepcompress data-free", "sparsity 0.3, 5 bits", {"sparsity": "0.3", "bits": "5"}),
            ("deepcompress", "recipe resnet20_cifar --distill (file of bench_cifar.py, seed 0)",
             {"file": str(CIFAR_DISTILL)}),
            ("coremltools", "k-means 4 bits per grouped channel, group 16 (docs)",
             {"bits": 4, "granularity": "per_grouped_channel", "group_size": 16}),
            ("coremltools", "k-means 6 bits per tensor (docs)", {"bits": 6}),
            ("coremltools", "k-means 5 bits per tensor (ours)", {"bits": 5}),
            ("torch.nn.utils.prune+zstd", "global L1 50%, data-free", {"sparsity": 0.5}),
            ("torch-pruning", "magnitude, 20% of channels, data-free", {"ratio": 0.2}),
        ]
    r += [
        ("nncf", "INT8_ASYM (default)", {"mode": "INT8_ASYM"}),
        ("nncf", "INT4_SYM per channel (group 128, the default, divides no layer here; first/last layers int8)",
         {"mode": "INT4_SYM", "group_size": -1}),
        ("nncf", "INT4_ASYM per channel, ratio 1, all layers", {"mode": "INT4_ASYM", "group_size": -1, "ratio": 1.0,
                                                                "all_layers": True}),
        ("zipnn", "lossless (fp32 safetensors)", {}),
    ]
    return r


# ---------------------------------------------------------------------------------------------- child


def child(spec: dict, result_path: Path) -> None:
    import torch

    torch.set_num_threads(1)
    model, tool = spec["model"], spec["tool"]
    fn = TOOLS[tool.replace(" data-free", "")][0]
    stem = OUT / f"{model}__{spec['slug']}"
    path, net, seconds, note = fn(model, spec["settings"], stem)
    p = Path(path)
    size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
    right = evaluate_items(model, net)
    result_path.write_text(json.dumps({"bytes": size, "right": right, "seconds": seconds, "artefact": str(p),
                                       "note": note}))


# ---------------------------------------------------------------------------------------------- parent


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)[:60].strip("_")


def run_one(model: str, tool: str, label: str, settings: dict) -> dict:
    spec = {"model": model, "tool": tool, "settings": settings, "slug": slug(f"{tool}_{label}")}
    res_path = OUT / f"{model}__{spec['slug']}.result.json"
    res_path.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    with open(OUT / f"{model}__{spec['slug']}.log", "w") as log:
        proc = subprocess.Popen([sys.executable, __file__, "--_child", json.dumps(spec), "--_result", str(res_path)],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO / "benchmarks"))
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    row = {"model": model, "tool": tool, "label": label, "settings": settings, "wall": wall,
           "peak_rss_mb": usage.ru_maxrss / 1024}
    if os.waitstatus_to_exitcode(status) != 0 or not res_path.is_file():
        tail = (OUT / f"{model}__{spec['slug']}.log").read_text().strip().splitlines()[-1:] or ["no output"]
        row["error"] = tail[0][:300]
        return row
    row.update(json.loads(res_path.read_text()))
    return row


def tool_status(tool: str) -> str | None:
    """None when the tool's package imports; else the reason."""
    module = TOOLS[tool.replace(" data-free", "")][1]
    try:
        __import__(module)
    except Exception as exc:  # noqa: BLE001 - any import failure is the reason to report
        return f"{module} does not import: {type(exc).__name__}: {exc}"[:300]
    return None


def public_row(r: dict, baseline_right: list[bool], model: str) -> dict:
    tool = r["tool"] if r["tool"].startswith("deepcompress") else r["tool"]
    return {"model": model, "tool": tool, "settings": r["label"], "bytes": r["bytes"],
            "metric": sum(r["right"]) / len(r["right"]), "metric_name": metric_name(model),
            "baseline_metric": sum(baseline_right) / len(baseline_right), "seconds": None if r["seconds"] is None else round(r["seconds"], 2),
            "peak_rss_mb": round(r["peak_rss_mb"], 1)}


def bench(model: str, only: set[str] | None) -> dict:
    import numpy as np

    ensure_baseline(model)
    base = load_baseline(model)
    baseline_right = evaluate_items(model, base)
    rows, failures = [], []
    for tool, label, settings in runs_for(model):
        if only and tool.replace(" data-free", "") not in only:
            continue
        if settings.get("file") and not Path(settings["file"]).is_file():
            failures.append({"tool": tool, "label": label, "error": f"{settings['file']} absent"})
            continue
        why = tool_status(tool)
        r = {"tool": tool, "label": label, "error": why} if why else run_one(model, tool, label, settings)
        (failures if r.get("error") else rows).append(r)
        print(f"{model} | {tool} | {label} | " + (f"FAILED: {r['error']}" if r.get("error") else
              f"{r['bytes']} B, {metric_name(model)} {np.mean(r['right']):.4f}, {r['seconds'] or 0:.1f} s, "
              f"{r['peak_rss_mb']:.0f} MB"), file=sys.stderr, flush=True)
    record = {"model": model, "date": TODAY, "fp32_bytes": fp32_bytes(base), "baseline_right": baseline_right,
              "rows": rows, "failures": failures}
    saved = OUT / f"results_{model}.json"
    if only and saved.is_file():  # a subset re-run replaces its own rows and keeps the others
        old = json.loads(saved.read_text())
        if old["baseline_right"] == baseline_right:
            mine = {(r["tool"], r["label"]) for r in rows + failures}
            for key in ("rows", "failures"):
                record[key] = [r for r in old[key] if (r["tool"], r["label"]) not in mine] + record[key]
    saved.write_text(json.dumps(record))
    return record


# ---------------------------------------------------------------------------------------------- doc

MODEL_TITLES = {"lenet300": "LeNet-300-100 on MNIST (10,000 test images)",
                "resnet20": "ResNet-20 on CIFAR-10 (the shared pretrained checkpoint; the 1,000 exact test images)"}
COMMANDS = {"lenet300": "OMP_NUM_THREADS=1 nice -n 10 /tmp/peersenv/bin/python bench_peers.py --quick --json",
            "resnet20": "OMP_NUM_THREADS=1 nice -n 10 /tmp/peersenv/bin/python bench_peers.py --models resnet20"}


def paired_change(base: list[bool], new: list[bool]) -> tuple[float, int, int]:
    """(change in points, items lost, items gained) against the uncompressed model on the same items."""
    lost = sum(1 for b, n in zip(base, new) if b and not n)
    gained = sum(1 for b, n in zip(base, new) if n and not b)
    return 100.0 * (gained - lost) / len(base), lost, gained


def bar_rows(rows: list[dict]) -> list[tuple[dict, dict | None, float | None]]:
    """Per peer row: the smallest deepcompress file of no worse metric, and the peer's bytes over its bytes."""
    ours = [r for r in rows if r["tool"].startswith("deepcompress")]
    out = []
    for p in (r for r in rows if not r["tool"].startswith("deepcompress")):
        ok = [d for d in ours if sum(d["right"]) >= sum(p["right"])]
        best = min(ok, key=lambda d: d["bytes"]) if ok else None
        out.append((p, best, p["bytes"] / best["bytes"] if best else None))
    return out


def plot(model: str, rec: dict) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    tools = sorted({r["tool"].replace(" data-free", "") for r in rec["rows"]})
    base = rec["baseline_right"]
    for i, tool in enumerate(tools):
        pts = [r for r in rec["rows"] if r["tool"].replace(" data-free", "") == tool]
        ax.scatter([r["bytes"] for r in pts], [paired_change(base, r["right"])[0] for r in pts],
                   label=tool, marker="o*sDv^<>"[i % 8], s=60 if tool == "deepcompress" else 35)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("bytes on disk (log)")
    ax.set_ylabel("paired change in top-1 (points)")
    ax.set_title(f"{model}: quality against file size, {rec['date']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = REPO / "docs" / "img" / f"peers_{model}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def model_section(model: str, rec: dict) -> list[str]:
    base = rec["baseline_right"]
    fp32 = rec["fp32_bytes"]
    name = metric_name(model)
    lines = [f"## {MODEL_TITLES[model]}", "",
             f"Measured {rec['date']}: `cd benchmarks && {COMMANDS[model]}`. Uncompressed: {name} "
             f"{100 * sum(base) / len(base):.2f}%, {fp32:,} bytes of float32 parameters and buffers "
             "(the ratio's denominator).", "",
             f"| tool | settings | bytes | ratio vs fp32 | {name} | paired change (lost/gained items) | time | peak RSS |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(rec["rows"], key=lambda r: r["bytes"]):
        d, lost, gained = paired_change(base, r["right"])
        lines.append(f"| {r['tool']} | {r['label']} | {r['bytes']:,} | {fp32 / r['bytes']:.1f}x | "
                     f"{100 * sum(r['right']) / len(r['right']):.2f}% | {d:+.2f} ({lost}/{gained}) | "
                     + ("-" if r["seconds"] is None else f"{r['seconds']:.1f} s") + f" | {r['peak_rss_mb']:.0f} MB |")
    for f in rec["failures"]:
        lines.append(f"| {f['tool']} | {f['label']} | not run | | | | | {f['error'][:150].strip()} |")
    img = plot(model, rec)
    if img is not None:
        lines += ["", f"![quality against bytes, {model}](../img/{img.name})"]
    lines += ["", "Against the bar (deepcompress at least 1.5x smaller than each peer at no worse quality): "
              "for each peer row, the smallest deepcompress file with at least as many test items right.", "",
              "| peer | settings | peer bytes | smallest deepcompress file at no worse quality | peer / ours |",
              "| --- | --- | --- | --- | --- |"]
    for p, best, ratio in bar_rows(rec["rows"]):
        lines.append(f"| {p['tool']} | {p['label']} | {p['bytes']:,} | "
                     + (f"{best['bytes']:,} ({best['label']}) | {ratio:.1f}x{'' if ratio >= 1.5 else ' (bar missed)'} |"
                        if best else "none: the peer is better than every deepcompress row | peer wins |"))
    return lines + [""]


def write_doc() -> None:
    """Replace the tables between the markers of docs/benchmarks/peers.md; the prose around them is kept."""
    doc = REPO / "docs" / "benchmarks" / "peers.md"
    start, end = "<!-- tables: written by bench_peers.py --doc -->", "<!-- /tables -->"
    text = doc.read_text() if doc.is_file() else f"# deepcompress beside its peers\n\n{start}\n{end}\n"
    lines = []
    for model in MODEL_TITLES:
        f = OUT / f"results_{model}.json"
        if f.is_file():
            lines += model_section(model, json.loads(f.read_text()))
    body = "\n".join(lines)
    doc.write_text(text[:text.index(start) + len(start)] + "\n" + body + text[text.index(end):])
    print(body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="LeNet-300-100 alone")
    ap.add_argument("--models", default="lenet300,resnet20")
    ap.add_argument("--tools", help="comma-separated subset of: " + ", ".join(TOOLS))
    ap.add_argument("--json", action="store_true", help="print one JSON array of rows")
    ap.add_argument("--doc", action="store_true", help="only write docs/benchmarks/peers.md from saved results")
    ap.add_argument("--_child")
    ap.add_argument("--_result")
    args = ap.parse_args()
    if args._child:
        try:
            child(json.loads(args._child), Path(args._result))
        except Exception:
            traceback.print_exc()
            sys.exit(1)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    if args.doc:
        write_doc()
        return
    models = ["lenet300"] if args.quick else args.models.split(",")
    only = set(args.tools.split(",")) if args.tools else None
    out = []
    for model in models:
        rec = bench(model, only)
        out += [public_row(r, rec["baseline_right"], model) for r in rec["rows"]]
        for f in rec["failures"]:
            print(f"not run: {model} | {f['tool']} | {f['label']}: {f['error']}", file=sys.stderr)
    if args.json:
        print("[\n" + ",\n".join(json.dumps({k: row[k] for k in ROW_KEYS}) for row in out) + "\n]")


if __name__ == "__main__":
    main()
