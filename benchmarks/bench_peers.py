"""deepcompress beside the tools users would pick instead, on the same models, in one run (issue #18).

Run in a separate benchmark environment (the peers are never installed into the project's):
    python3 -m venv /tmp/peersenv
    /tmp/peersenv/bin/pip install -c constraints.txt -e '.[peers]'
    cd benchmarks && OMP_NUM_THREADS=1 /tmp/peersenv/bin/python bench_peers.py --quick --json   # LeNet-300-100
    cd benchmarks && OMP_NUM_THREADS=1 /tmp/peersenv/bin/python bench_peers.py --models resnet20
    cd benchmarks && OMP_NUM_THREADS=1 /tmp/peersenv/bin/python bench_peers.py --models gpt_char --jobs 2
    cd benchmarks && OMP_NUM_THREADS=1 /tmp/peersenv/bin/python bench_peers.py --models silero --jobs 2
    cd benchmarks && /tmp/peersenv/bin/python bench_peers.py --doc     # docs/benchmarks/peers.md from the results

Every run (one model, one tool, one setting) is a subprocess of its own, so its peak RSS
(``os.wait4``'s ``ru_maxrss``) is its own; ``seconds`` is the wall time of the compression step
inside it (retraining included, evaluation excluded). Each run writes the artefact a user would ship
into benchmarks/out/peers/, reads it back where the tool can, and scores the model in PyTorch with the
one evaluation function of its model (``evaluate_items``): per-item correctness on the test set, so
the change against the uncompressed model is paired. A tool that is not installed, or fails, is
reported with its reason (stderr, and the doc), never dropped silently.

Models: LeNet-300-100 (MNIST, top1), ResNet-20 (CIFAR-10, top1), gpt_char (tiny Shakespeare, val_loss: mean
cross-entropy per validation window, lower is better) and the Silero VAD (a TorchScript archive; agreement: share
of frames whose speech decision equals the original's). ``--quick`` runs LeNet-300-100 alone, two runs at a time.

``--json`` prints one JSON array, one object a run, with exactly the keys of ``ROW_KEYS``.
"""

from __future__ import annotations

import argparse
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
TEXT = REPO.parent / "shared" / "data" / "text" / "tinyshakespeare.txt"
SILERO = REPO.parent / "shared" / "models" / "silero_vad" / "silero_vad.jit"
SPEECH = REPO.parent / "shared" / "data" / "speech" / "silero_test.wav"
# gpt_char: the command of benchmarks/bench_gpt_char.py (5 epochs of Adam, seed 0), checkpoint cached in out/peers/
GPT_TRAIN = ["--epochs", "5", "--lr", "0.003", "--optimizer", "adam", "--weight-decay", "0", "--batch-size", "64",
             "--seed", "0"]
GPT_EPOCHS = 2  # the peers' retraining budget on gpt_char: the retrain stage of recipes/gpt_char.toml (2 epochs, Adam)
ROW_KEYS = ("model", "tool", "settings", "bytes", "metric", "metric_name", "baseline_metric", "seconds", "peak_rss_mb")
HIGHER_IS_BETTER = {"top1": True, "agreement": True, "val_loss": False}
PEER_EPOCHS = 20  # retraining budget of the peers' runs with retraining (LeNet-300-100)
LENET_SPARSITY = {"layers.0": 0.94, "layers.1": 0.93, "classifier": 0.8}  # recipes/lenet300_best.toml
#: recipes/resnet20_cifar.toml's pruning (conv=0.65, conv1=0.3, fc=0.5: "65/30/50%" in labels), by module name
RESNET_SPARSITY = {"conv1": 0.3, "linear": 0.5,
                   **{f"layer{a}.{b}.conv{c}": 0.65 for a in (1, 2, 3) for b in (0, 1, 2) for c in (1, 2)}}
RESNET_EPOCHS = 3  # the peers' retraining budget on ResNet-20: the recipe's 2 retraining + 1 fine-tuning epochs
LENET_BITS = {"layers.0": 5, "layers.1": 5, "classifier": 6}
# gpt_char with one global pruning threshold (as the peers' global L1 pruning) and 5 or 6 bits; otherwise
# recipes/gpt_char.toml. Written to out/peers/ by the run that uses it.
GPT_GLOBAL_RECIPE = """name = "gpt_char_global_{sparsity}_{bits}"
description = "gpt_char: {sparsity} sparsity under one global threshold, {bits}-bit shared weights, Adam retraining"

[[stage]]
type = "prune"
sparsity = "{sparsity}"
scope = "global"

[[stage]]
type = "retrain"
epochs = 2
lr = 0.001
optimizer = "adam"
weight_decay = 0.0
batch_size = 64

[[stage]]
type = "quantize"
bits = "{bits}"

[[stage]]
type = "finetune"
epochs = 1
lr = 0.0001
optimizer = "adam"
batch_size = 64

[[stage]]
type = "encode"
index_bits = "auto"
"""


# ---------------------------------------------------------------------------------------------- models


def baseline_path(model: str) -> Path:
    return {"lenet300": OUT / "lenet300_mnist.pt", "resnet20": RESNET20, "gpt_char": OUT / "gpt_char.pt",
            "silero": SILERO}[model]


def ensure_baseline(model: str) -> None:
    """LeNet-300-100 and gpt_char: train the baseline as bench_baselines.py / bench_gpt_char.py do, into out/peers/."""
    if model not in ("lenet300", "gpt_char") or baseline_path(model).is_file():
        return
    from _common import run_cli

    OUT.mkdir(parents=True, exist_ok=True)
    if model == "lenet300":
        run_cli("train", "lenet300", "--data", f"mnist:{MNIST}", "--epochs", "40", "--lr", "0.05", "--seed", "0",
                "-o", str(baseline_path(model)), "--json", log=OUT / "baseline.log")
    else:
        run_cli("train", "gpt_char", "--data", data_spec(model), *GPT_TRAIN, "-o", str(baseline_path(model)), "--json",
                log=OUT / "baseline_gpt_char.log")


def load_baseline(model: str):
    if model == "silero":  # a TorchScript archive: every tool gets the ScriptModule a user has
        import torch

        return torch.jit.load(str(SILERO), map_location="cpu").eval()
    from deepcompress.model_input import load_model

    arch = {"lenet300": None, "resnet20": "resnet20_cifar", "gpt_char": None}[model]
    net, _ = load_model(baseline_path(model), arch=arch)
    return net.eval()


def data_spec(model: str) -> str:
    return {"lenet300": f"mnist:{MNIST}", "resnet20": f"cifar10:{CIFAR}", "gpt_char": f"text:{TEXT}"}[model]


def metric_name(model: str) -> str:
    return {"lenet300": "top1", "resnet20": "top1", "gpt_char": "val_loss", "silero": "agreement"}[model]


def loaders(model: str):
    from deepcompress.data import load_dataset

    train, test, _ = load_dataset(data_spec(model), seed=0, batch_size=64 if model == "gpt_char" else 128)
    return train, test


def read_wav(path: Path):
    """16 kHz mono 16-bit PCM as float32 in [-1, 1) (as benchmarks/bench_silero.py reads it)."""
    import wave

    import numpy as np

    with wave.open(str(path), "rb") as fh:
        if fh.getframerate() != 16000 or fh.getsampwidth() != 2 or fh.getnchannels() != 1:
            raise SystemExit(f"{path}: expected 16 kHz mono 16-bit PCM")
        raw = fh.readframes(fh.getnframes())
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0


def silero_probabilities(net) -> list[float]:
    """Per 512-sample frame of the test wav, the speech probability (bench_silero.py's loop)."""
    import torch

    audio = read_wav(SPEECH)
    net.reset_states()
    out = []
    with torch.no_grad():
        for i in range(0, len(audio) - 512 + 1, 512):
            out.append(float(net(torch.from_numpy(audio[i:i + 512].copy())[None], 16000)))
    return out


def evaluate_items(model: str, net) -> list:
    """The one evaluation of every tool's model, per test item: top1, is the prediction right; val_loss, the
    mean cross-entropy (nats/char) of each validation window of 128 characters; agreement, does the frame's
    speech decision (probability >= 0.5) equal the original model's."""
    import torch

    if model == "silero":
        ref = [p >= 0.5 for p in silero_probabilities(load_baseline("silero"))]
        return [(p >= 0.5) == r for p, r in zip(silero_probabilities(net), ref)]
    _, test = loaders(model)
    net.eval()
    items: list = []
    with torch.no_grad():
        for x, y in test:
            out = net(x)
            if model == "gpt_char":
                items += torch.nn.functional.cross_entropy(out.transpose(1, 2), y, reduction="none").mean(1).tolist()
            else:
                items += (out.argmax(1) == y).tolist()
    return items


def example_input(model: str):
    import torch

    return {"lenet300": torch.zeros(1, 1, 28, 28), "resnet20": torch.zeros(1, 3, 32, 32),
            "gpt_char": torch.zeros(1, 128, dtype=torch.long), "silero": torch.zeros(1, 512)}[model]


def tie_while_pruned(net) -> None:
    """gpt_char under a pruner's mask: the pruner re-creates tok_emb.weight (weight_orig * mask) and lm_head would
    keep the unmasked original; make lm_head read the embedding's current, masked weight, as the tied model does."""
    import torch.nn.functional as F

    emb = net.tok_emb
    net.lm_head.forward = lambda x: F.linear(x, emb.weight)


def retie(net) -> None:
    """After the pruner's masks are made permanent: lm_head.weight is tok_emb.weight again, its own forward back."""
    net.lm_head.__dict__.pop("forward", None)
    net.lm_head.weight = net.tok_emb.weight


def fine_tune(model: str, net, epochs: int, after_step=None, lr: float = 0.01, shift: int = 0) -> None:
    """The peers' retraining runs on the model's training set: SGD (lr 0.01, momentum 0.9) for the image models;
    for gpt_char, Adam at lr 0.001 without weight decay, batches of 64 (the retrain stage of recipes/gpt_char.toml).
    ``shift``: each image batch is first moved by up to that many pixels, as a recipe's ``shift`` does
    (deepcompress.augment.random_shift), so a peer can retrain on the same augmentation as ours."""
    import torch
    import torch.nn.functional as F

    from deepcompress.augment import random_shift

    train, _ = loaders(model)
    if model == "gpt_char":
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=0.0)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    for epoch in range(epochs):
        if hasattr(train, "set_epoch"):
            train.set_epoch(epoch)
        net.train()
        for x, y in train:
            opt.zero_grad(set_to_none=True)
            out = net(random_shift(x, shift) if shift else x)
            F.cross_entropy(out.flatten(0, 1) if out.dim() == 3 else out, y.flatten() if out.dim() == 3 else y).backward()
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


def unique_state(net) -> dict:
    """The state dict with each tensor once (gpt_char's lm_head.weight is tok_emb.weight): the later alias dropped."""
    seen, out = set(), {}
    for k, v in net.state_dict().items():
        key = (v.data_ptr(), v.numel(), tuple(v.shape))
        if key not in seen:
            seen.add(key)
            out[k] = v.contiguous()
    return out


def fp32_bytes(net) -> int:
    return sum(t.numel() * 4 for t in unique_state(net).values() if t.is_floating_point())


# ---------------------------------------------------------------------------------------------- tools
# Each returns (artefact path, model to evaluate, seconds of compression, note).


def run_deepcompress(model: str, s: dict, stem: Path):
    import deepcompress

    net = load_baseline(model)
    path = stem.with_suffix(".dcz")
    if s.get("file"):  # a file written by another benchmark (read only)
        return Path(s["file"]), deepcompress.load(s["file"], model=load_baseline(model)), None, "file of bench_cifar.py: its time is not this run's"
    shutil.rmtree(str(stem) + ".work", ignore_errors=True)  # no stage cache: the time is a whole run's
    if s.get("lossless"):  # `deepcompress compress --lossless` of the state dict as safetensors (float16 if asked)
        import torch
        from safetensors.torch import load as st_load
        from safetensors.torch import save_file

        from deepcompress.lossless import compress_lossless, decode_lossless

        state = unique_state(net)
        if s.get("dtype") == "float16":
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        src = stem.with_suffix(".safetensors")
        save_file(state, str(src))
        t0 = time.perf_counter()
        compress_lossless(src, path)
        seconds = time.perf_counter() - t0
        back_path = stem.with_suffix(".back.safetensors")
        back_path.unlink(missing_ok=True)
        decode_lossless(path, back_path)
        back = st_load(back_path.read_bytes())
        if any(not torch.equal(back[k], v) for k, v in state.items()):
            raise RuntimeError("the lossless round trip differs")
        fresh = load_baseline(model)
        fresh.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in back.items()},
                              strict=len(state) == len(net.state_dict()))
        return path, fresh, seconds, "compress --lossless of the state dict (round trip checked)"
    t0 = time.perf_counter()
    if s.get("recipe_bits"):  # GPT_GLOBAL_RECIPE at these bits and sparsity
        sparsity = s.get("recipe_sparsity", 0.7)
        recipe = OUT / f"gpt_char_global_{sparsity}_{s['recipe_bits']}.toml"
        recipe.write_text(GPT_GLOBAL_RECIPE.format(bits=s["recipe_bits"], sparsity=sparsity))
        deepcompress.compress(net, path, recipe=str(recipe), data=data_spec(model), seed=0,
                              progress=False, log=lambda line: None, work_dir=str(stem) + ".work")
    elif s.get("recipe"):
        deepcompress.compress(net, path, recipe=str(REPO / "recipes" / s["recipe"]), data=data_spec(model), seed=0,
                              progress=False, log=lambda line: None, work_dir=str(stem) + ".work")
    else:
        deepcompress.compress(net, path, sparsity=s["sparsity"], bits=s["bits"], progress=False,
                              log=lambda line: None)
    seconds = time.perf_counter() - t0
    # the file names no architecture (the model came in as a module): fill the baseline's module, as a user would
    return path, deepcompress.load(path, model=load_baseline(model)), seconds, ""


def _gpt_for_coreml(g):
    """gpt_char's own forward fails in ct.convert (coremltools 9.0: the head width, ``c // n_head`` from a traced
    shape, becomes a 1-element array where ``aten::Int`` wants a scalar: "only 0-dimensional arrays can be converted
    to Python scalars"). The same computation at a fixed window of 128 with the shapes as Python ints, on the same
    (palettized) modules, converts; its outputs are checked against the module's own."""
    import math

    import torch
    import torch.nn.functional as F

    class GPTForCoreML(torch.nn.Module):
        def __init__(self, g, t: int = 128) -> None:
            super().__init__()
            self.g, self.t = g, t
            self.c, self.nh = int(g.tok_emb.weight.shape[1]), int(g.blocks[0].attn.n_head)
            self.register_buffer("mask", torch.full((t, t), float("-inf")).triu(1))

        def forward(self, idx):
            g, t, c, nh = self.g, self.t, self.c, self.nh
            hd = c // nh
            x = g.tok_emb(idx) + g.pos_emb.weight[:t][None]
            for blk in g.blocks:
                q, k, v = blk.attn.qkv(blk.ln1(x)).split(c, dim=2)
                q, k, v = (z.reshape(1, t, nh, hd).transpose(1, 2) for z in (q, k, v))
                att = torch.softmax(q @ k.transpose(-2, -1) * (1.0 / math.sqrt(hd)) + self.mask, dim=-1)
                x = x + blk.attn.proj((att @ v).transpose(1, 2).reshape(1, t, c))
                x = x + blk.out(F.gelu(blk.fc(blk.ln2(x))))
            return g.lm_head(g.ln_f(x))

    w = GPTForCoreML(g).eval()
    x = torch.randint(0, int(g.tok_emb.weight.shape[0]), (1, 128), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = float((w(x) - g(x)).abs().max())
    if diff > 1e-3:
        raise RuntimeError(f"the conversion wrapper differs from gpt_char's forward by {diff}")
    return w


def _coreml_package(net, model: str, stem: Path):
    """ct.convert of the optimised model to an ML program; returns the .mlpackage path."""
    import coremltools as ct
    import torch

    import numpy as np

    x = example_input(model)
    traced = torch.jit.trace(_gpt_for_coreml(net) if model == "gpt_char" else net.eval(), x)
    ml = ct.convert(traced, inputs=[ct.TensorType(name="x", shape=tuple(x.shape),
                                                  dtype=np.int32 if x.dtype == torch.long else np.float32)],
                    convert_to="mlprogram", minimum_deployment_target=ct.target.iOS18)
    path = stem.with_suffix(".mlpackage")
    shutil.rmtree(path, ignore_errors=True)
    ml.save(str(path))
    return path


def run_coremltools(model: str, s: dict, stem: Path):
    from coremltools.optimize.torch.palettization import PostTrainingPalettizer, PostTrainingPalettizerConfig
    from coremltools.optimize.torch.pruning import MagnitudePruner, MagnitudePrunerConfig

    if s.get("coreml_side"):
        return run_coreml_side(model, s, stem)
    net = load_baseline(model)
    t0 = time.perf_counter()
    if s.get("prune"):
        sp = s["prune"]
        from coremltools.optimize.torch.pruning import (ConstantSparsityScheduler, ModuleMagnitudePrunerConfig,
                                                        PolynomialDecayScheduler)

        sched = (PolynomialDecayScheduler(update_steps=s["update_steps"]) if s.get("update_steps")
                 else ConstantSparsityScheduler(begin_step=0))
        cfg = MagnitudePrunerConfig()
        if sp == "global70":  # gpt_char: 70% of every Linear and Embedding (the tied lm_head through tok_emb)
            import torch

            amounts = {n: 0.7 for n, m in net.named_modules()
                       if isinstance(m, (torch.nn.Linear, torch.nn.Embedding)) and n != "lm_head"}
        else:
            amounts = sp
        for name, amount in amounts.items():
            cfg.set_module_name(name, ModuleMagnitudePrunerConfig(target_sparsity=amount, scheduler=sched))
        pruner = MagnitudePruner(net, cfg)
        net = pruner.prepare(inplace=True)
        if model == "gpt_char":
            tie_while_pruned(net)
        pruner.step()
        if s.get("epochs"):
            fine_tune(model, net, s["epochs"], after_step=pruner.step, shift=s.get("shift", 0))
        net = pruner.finalize(inplace=True)
        if model == "gpt_char":  # the pruner re-created tok_emb.weight; the output layer is tied to it again
            retie(net)
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
    shared = OUT / f"{model}__torch_prune_{slug(json.dumps(s.get('share', '')))}.retrained.pt"
    if s.get("share") and shared.is_file():  # the same pruning and retraining as an earlier row: reuse its weights
        cached = torch.load(shared, weights_only=True)
        net.load_state_dict(cached["state"])
        t0 -= cached["seconds"]  # its time is that retraining's
    elif s.get("by_hand"):  # a ScriptModule: global magnitude zeroing of the >= 2-D parameters, what prune would do
        with torch.no_grad():
            params = [p for p in net.parameters() if p.dim() >= 2]
            if s["sparsity"] > 0:
                scores = torch.cat([p.abs().flatten() for p in params])
                k = int(round(s["sparsity"] * scores.numel()))
                cut = scores.kthvalue(k).values
                for p in params:
                    p.mul_((p.abs() > cut).to(p.dtype))
    else:
        mods = dict(net.named_modules())
        if isinstance(s["sparsity"], dict):
            for name, amount in s["sparsity"].items():
                prune.l1_unstructured(mods[name], "weight", amount=amount)
        elif isinstance(net, torch.jit.ScriptModule):  # what a user tries first: it fails, and the row says why
            targets = [(m, "weight") for m in net.modules()
                       if isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.dim() >= 2]
            prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=s["sparsity"])
        else:
            targets, seen = [], set()
            for m in net.modules():  # a tied weight (gpt_char's lm_head) is pruned once, through its first module
                if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Conv1d, torch.nn.Embedding)) \
                        and id(m.weight) not in seen:
                    seen.add(id(m.weight))
                    targets.append((m, "weight"))
            prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=s["sparsity"])
        if model == "gpt_char":
            tie_while_pruned(net)
        if s.get("epochs"):
            # the masks are forward pre-hooks: pruned weights stay zero
            fine_tune(model, net, s["epochs"], shift=s.get("shift", 0))
        for m in net.modules():
            if prune.is_pruned(m) and hasattr(m, "weight_orig"):
                prune.remove(m, "weight")
        if model == "gpt_char":
            retie(net)  # prune.remove set a new Parameter on tok_emb: re-tie
        if s.get("share"):
            torch.save({"state": net.state_dict(), "seconds": time.perf_counter() - t0}, shared)
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


def run_coreml_side(model: str, s: dict, stem: Path):
    """coremltools' other route for a model optimize.torch cannot take: ct.convert, then palettize the ML program."""
    import coremltools as ct
    import numpy as np

    net = load_baseline(model)
    t0 = time.perf_counter()
    ml = ct.convert(net, inputs=[ct.TensorType(name="x", shape=(1, 512)),
                                 ct.TensorType(name="sr", shape=(1,), dtype=np.int32)],
                    convert_to="mlprogram", minimum_deployment_target=ct.target.iOS18)
    cfg = ct.optimize.coreml.OptimizationConfig(global_config=ct.optimize.coreml.OpPalettizerConfig(
        mode="kmeans", nbits=s["bits"]))
    ml = ct.optimize.coreml.palettize_weights(ml, cfg)
    seconds = time.perf_counter() - t0
    path = stem.with_suffix(".mlpackage")
    ml.save(str(path))
    raise RuntimeError(f"wrote {path.name} in {seconds:.1f} s but its quality cannot be measured on Linux "
                       "(no Core ML runtime)")


def run_torch_pruning(model: str, s: dict, stem: Path):
    import torch
    import torch_pruning as tp

    net = load_baseline(model)
    t0 = time.perf_counter()
    # the last Linear keeps its outputs (the classes); a ScriptModule (Silero) is tried as is, with its (audio, rate)
    last = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1:]
    if s.get("mlp_only"):  # gpt_char: only the MLP hidden units (fc outputs, out inputs); every other layer kept
        last = [m for n, m in net.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Embedding))
                and not n.endswith(".fc")]
    example = (example_input(model), 16000) if model == "silero" else example_input(model)
    pruner = tp.pruner.MetaPruner(net, example, importance=tp.importance.MagnitudeImportance(p=2),
                                  pruning_ratio=s["ratio"], ignored_layers=last,
                                  global_pruning=s.get("global", False))
    shapes = [tuple(p.shape) for p in net.parameters()]
    pruner.step()
    if isinstance(net, torch.jit.ScriptModule) and shapes == [tuple(p.shape) for p in net.parameters()]:
        raise RuntimeError("Torch-Pruning accepted the ScriptModule but pruned nothing: its dependency graph is built "
                           "from nn.Module layers (Conv, Linear, LSTM), and a TorchScript archive has none; "
                           "torch.save of the module also fails (TorchScript objects do not pickle)")
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
    state = unique_state(net)  # safetensors refuses shared tensors: a tied weight is stored once
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
    fresh.load_state_dict(st_load(bytes(back)), strict=len(state) == len(net.state_dict()))
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
            ("deepcompress", "recipe lenet300_nearlossless (prune 80/80/50%, 6 bits, half-distilled retrain)",
             {"recipe": "lenet300_nearlossless.toml"}),
            ("deepcompress data-free", "sparsity 0.7, 5 bits (the data-free default)", {"sparsity": "0.7", "bits": "5"}),
            ("deepcompress", "recipe lenet300_gentle (prune 70/70/40%, 6 bits, half-distilled retrain)",
             {"recipe": "lenet300_gentle.toml"}),
            ("deepcompress", "recipe lenet300_shift (prune 92.5/91.5/76%, 5/5/6 bits, retrain on images shifted "
             "by up to 2 px)", {"recipe": "lenet300_shift.toml"}),
            ("deepcompress data-free", "no pruning, 5 bits", {"sparsity": "0", "bits": "5"}),
            ("deepcompress data-free", "no pruning, 6 bits", {"sparsity": "0", "bits": "6"}),
            ("deepcompress data-free", "no pruning, 8 bits", {"sparsity": "0", "bits": "8"}),
            ("deepcompress data-free", "sparsity 0.5, 4 bits", {"sparsity": "0.5", "bits": "4"}),
            ("deepcompress", "lossless (compress --lossless of the fp32 state dict)", {"lossless": True}),
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
            ("coremltools", f"magnitude 94/93/80% retrain {PEER_EPOCHS} ep on images shifted by up to 2 px + k-means 4 "
             "bits (joint, ours)", {"prune": LENET_SPARSITY, "bits": 4, "epochs": PEER_EPOCHS, "shift": 2,
                                   "update_steps": list(range(0, 469 * 10, 469))}),
            # ours with shifts trains 16 + 60 + 3 epochs (recipes/lenet300_shift.toml): the same budget for the peer
            ("coremltools", "magnitude 94/93/80% retrain 80 ep on images shifted by up to 2 px + k-means 4 bits (joint, "
             "ours)", {"prune": LENET_SPARSITY, "bits": 4, "epochs": 80, "shift": 2,
                       "update_steps": list(range(0, 469 * 10, 469))}),
            ("torch.nn.utils.prune+zstd", "global L1 70%, data-free", {"sparsity": 0.7}),
            ("torch.nn.utils.prune+zstd", f"L1 94/93/80% + retrain {PEER_EPOCHS} ep (ours)",
             {"sparsity": LENET_SPARSITY, "epochs": PEER_EPOCHS, "share": "l1_ours_retrain"}),
            ("torch.nn.utils.prune+zstd", f"L1 94/93/80% + retrain {PEER_EPOCHS} ep, float16",
             {"sparsity": LENET_SPARSITY, "epochs": PEER_EPOCHS, "dtype": "float16", "share": "l1_ours_retrain"}),
            ("torch.nn.utils.prune+zstd", f"L1 94/93/80% + retrain {PEER_EPOCHS} ep on images shifted by up to 2 px, "
             "float16", {"sparsity": LENET_SPARSITY, "epochs": PEER_EPOCHS, "dtype": "float16", "shift": 2}),
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
            ("coremltools", f"magnitude 65/30/50% retrain {RESNET_EPOCHS} ep + k-means 4 bits (joint, ours)",
             {"prune": RESNET_SPARSITY, "bits": 4, "epochs": RESNET_EPOCHS}),
            ("torch.nn.utils.prune+zstd", f"L1 65/30/50% + retrain {RESNET_EPOCHS} ep (ours)",
             {"sparsity": RESNET_SPARSITY, "epochs": RESNET_EPOCHS, "share": "l1_ours_retrain"}),
            ("torch.nn.utils.prune+zstd", f"L1 65/30/50% + retrain {RESNET_EPOCHS} ep, float16",
             {"sparsity": RESNET_SPARSITY, "epochs": RESNET_EPOCHS, "dtype": "float16", "share": "l1_ours_retrain"}),
        ]
    elif model == "gpt_char":
        r += [
            ("deepcompress data-free", "no pruning, 6 bits", {"sparsity": "0", "bits": "6"}),
            ("deepcompress data-free", "no pruning, 5 bits", {"sparsity": "0", "bits": "5"}),
            ("deepcompress data-free", "no pruning, 4 bits", {"sparsity": "0", "bits": "4"}),
            ("deepcompress data-free", "sparsity 0.3, 5 bits", {"sparsity": "0.3", "bits": "5"}),
            ("deepcompress", "lossless (compress --lossless of the fp32 state dict)", {"lossless": True}),
            ("deepcompress", "recipe gpt_char (prune 70%, retrain 2 ep, 4 bits, fine-tune 1 ep)",
             {"recipe": "gpt_char.toml"}),
            ("deepcompress", "prune 70% global, retrain 2 ep, 5 bits, fine-tune 1 ep (GPT_GLOBAL_RECIPE)",
             {"recipe_bits": 5}),
            ("deepcompress", "prune 70% global, retrain 2 ep, 6 bits, fine-tune 1 ep (GPT_GLOBAL_RECIPE)",
             {"recipe_bits": 6}),
            ("deepcompress", "prune 50% global, retrain 2 ep, 6 bits, fine-tune 1 ep (GPT_GLOBAL_RECIPE)",
             {"recipe_bits": 6, "recipe_sparsity": 0.5}),
            ("deepcompress", "prune 30% global, retrain 2 ep, 6 bits, fine-tune 1 ep (GPT_GLOBAL_RECIPE)",
             {"recipe_bits": 6, "recipe_sparsity": 0.3}),
            ("deepcompress", "prune 80% global, retrain 2 ep, 4 bits, fine-tune 1 ep (GPT_GLOBAL_RECIPE)",
             {"recipe_bits": 4, "recipe_sparsity": 0.8}),
            ("deepcompress", "no pruning, retrain 2 ep, 6 bits, fine-tune 1 ep (GPT_GLOBAL_RECIPE)",
             {"recipe_bits": 6, "recipe_sparsity": 0.0}),
            ("coremltools", "k-means 6 bits per tensor (docs)", {"bits": 6}),
            ("coremltools", "k-means 4 bits per tensor (ours: 4)", {"bits": 4}),
            ("coremltools", "k-means 4 bits per grouped channel, group 16 (docs)",
             {"bits": 4, "granularity": "per_grouped_channel", "group_size": 16}),
            ("coremltools", f"magnitude 70% retrain {GPT_EPOCHS} ep + k-means 4 bits (joint, ours)",
             {"prune": "global70", "bits": 4, "epochs": GPT_EPOCHS}),
            ("torch.nn.utils.prune+zstd", "global L1 30%, data-free", {"sparsity": 0.3}),
            ("torch.nn.utils.prune+zstd", f"global L1 70% + retrain {GPT_EPOCHS} ep (ours)",
             {"sparsity": 0.7, "epochs": GPT_EPOCHS, "share": "l1_70_retrain"}),
            ("torch.nn.utils.prune+zstd", f"global L1 70% + retrain {GPT_EPOCHS} ep, float16",
             {"sparsity": 0.7, "epochs": GPT_EPOCHS, "dtype": "float16", "share": "l1_70_retrain"}),
            ("torch-pruning", "magnitude, 20% of units, data-free", {"ratio": 0.2}),
            ("torch-pruning", "magnitude, 50% of the MLP hidden units only, data-free", {"ratio": 0.5, "mlp_only": True}),
            ("torch-pruning", f"magnitude, 50% of the MLP hidden units only + retrain {GPT_EPOCHS} ep",
             {"ratio": 0.5, "mlp_only": True, "epochs": GPT_EPOCHS}),
            ("nncf", "INT8_ASYM (default)", {"mode": "INT8_ASYM"}),
            ("nncf", "INT4_SYM group 128 (the default; embeddings and last layer int8)", {"mode": "INT4_SYM"}),
            ("nncf", "INT4_ASYM group 128, ratio 1, all layers", {"mode": "INT4_ASYM", "ratio": 1.0,
                                                                  "all_layers": True}),
            ("nncf", "INT4_ASYM per channel, ratio 1, all layers", {"mode": "INT4_ASYM", "group_size": -1,
                                                                    "ratio": 1.0, "all_layers": True}),
            ("zipnn", "lossless (fp32 safetensors)", {}),
        ]
        return r
    elif model == "silero":
        r += [
            ("deepcompress data-free", "no pruning, 8 bits", {"sparsity": "0", "bits": "8"}),
            ("deepcompress data-free", "no pruning, 6 bits", {"sparsity": "0", "bits": "6"}),
            ("deepcompress data-free", "no pruning, 5 bits", {"sparsity": "0", "bits": "5"}),
            ("deepcompress data-free", "no pruning, 4 bits", {"sparsity": "0", "bits": "4"}),
            ("deepcompress data-free", "sparsity 0.3, 6 bits", {"sparsity": "0.3", "bits": "6"}),
            ("deepcompress", "lossless (compress --lossless of the fp32 state dict)", {"lossless": True}),
            ("deepcompress", "lossless of the float16 state dict (compress --lossless)",
             {"lossless": True, "dtype": "float16"}),
            ("coremltools", "optimize.torch k-means 6 bits per tensor (docs)", {"bits": 6}),
            ("coremltools", "Core ML side: ct.convert, then palettize_weights k-means 6 bits",
             {"bits": 6, "coreml_side": True}),
            ("torch.nn.utils.prune+zstd", "global L1 30% through torch.nn.utils.prune", {"sparsity": 0.3}),
            ("torch.nn.utils.prune+zstd", "no pruning, zstd -19 of the fp32 state dict ('zip it')",
             {"sparsity": 0.0, "by_hand": True}),
            ("torch.nn.utils.prune+zstd", "no pruning, float16", {"sparsity": 0.0, "by_hand": True, "dtype": "float16"}),
            ("torch.nn.utils.prune+zstd", "global magnitude 30% (by hand: prune cannot take a ScriptModule), float16",
             {"sparsity": 0.3, "by_hand": True, "dtype": "float16"}),
            ("torch-pruning", "magnitude, 20% of channels, data-free", {"ratio": 0.2}),
            ("nncf", "INT8_ASYM (default)", {"mode": "INT8_ASYM"}),
            ("zipnn", "lossless (fp32 safetensors)", {}),
        ]
        return r
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
        text = (OUT / f"{model}__{spec['slug']}.log").read_text()
        # the exception's own line(s): after the traceback's last "File ..." frame and its source line
        tb = text.rsplit("Traceback (most recent call last):", 1)[-1].splitlines()
        frames = [i for i, line in enumerate(tb) if line.startswith("  File ")]
        msg = " ".join(line.strip() for line in tb[(frames[-1] + 2 if frames else 0):]
                       if line.strip() and line.strip().strip("^~"))
        row["error"] = (msg or "no output")[:300]
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
            "metric": round(sum(r["right"]) / len(r["right"]), 6), "metric_name": metric_name(model),
            "baseline_metric": round(sum(baseline_right) / len(baseline_right), 6), "seconds": None if r["seconds"] is None else round(r["seconds"], 2),
            "peak_rss_mb": round(r["peak_rss_mb"], 1)}


def bench(model: str, only: set[str] | None, jobs: int = 1, match: list[str] | None = None) -> dict:
    """Every run of ``model`` (or of the tools in ``only``), ``jobs`` subprocesses at a time. Runs that share a
    retraining (settings "share") form one chain and run in order, the first one retraining for both."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    ensure_baseline(model)
    base = load_baseline(model)
    baseline_right = evaluate_items(model, base)
    rows, failures = [], []
    chains: dict[str, list] = {}
    for tool, label, settings in runs_for(model):
        if only and tool.replace(" data-free", "") not in only:
            continue
        if match and not any(m in f"{tool} | {label}" for m in match):
            continue
        if settings.get("file") and not Path(settings["file"]).is_file():
            failures.append({"tool": tool, "label": label, "error": f"{settings['file']} absent"})
            continue
        if settings.get("share"):
            (OUT / f"{model}__torch_prune_{slug(json.dumps(settings['share']))}.retrained.pt").unlink(missing_ok=True)
        chains.setdefault(settings.get("share") or f"{tool}|{label}", []).append((tool, label, settings))

    def run_chain(chain: list) -> list[dict]:
        out = []
        for tool, label, settings in chain:
            why = tool_status(tool)
            r = {"tool": tool, "label": label, "error": why} if why else run_one(model, tool, label, settings)
            print(f"{model} | {tool} | {label} | " + (f"FAILED: {r['error']}" if r.get("error") else
                  f"{r['bytes']} B, {metric_name(model)} {np.mean(r['right']):.4f}, {r['seconds'] or 0:.1f} s, "
                  f"{r['peak_rss_mb']:.0f} MB"), file=sys.stderr, flush=True)
            out.append(r)
        return out

    # the longest runs (retraining) first, so that parallel jobs end together
    order = sorted(chains.values(), key=lambda c: -max((s.get("epochs", 0) or (30 if s.get("recipe") or
                                                                                  s.get("recipe_bits") else 0))
                                                      for _, _, s in c))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for result in pool.map(run_chain, order):
            for r in result:
                (failures if r.get("error") else rows).append(r)
    record = {"model": model, "date": TODAY, "fp32_bytes": fp32_bytes(base), "baseline_right": baseline_right,
              "rows": rows, "failures": failures}
    saved = OUT / f"results_{model}.json"
    if (only or match) and saved.is_file():  # a subset re-run replaces its own rows and keeps the others
        old = json.loads(saved.read_text())
        if old["baseline_right"] == baseline_right:
            mine = {(r["tool"], r["label"]) for r in rows + failures}
            for key in ("rows", "failures"):
                record[key] = [r for r in old[key] if (r["tool"], r["label"]) not in mine] + record[key]
    saved.write_text(json.dumps(record))
    return record


# ---------------------------------------------------------------------------------------------- doc

MODEL_TITLES = {"lenet300": "LeNet-300-100 on MNIST (10,000 test images)",
                "resnet20": "ResNet-20 on CIFAR-10 (the shared pretrained checkpoint; the 1,000 exact test images)",
                "gpt_char": "gpt_char on tiny Shakespeare (validation loss over the 871 validation windows of 128 "
                            "characters)",
                "silero": "Silero VAD, TorchScript (agreement with the original's speech decisions over the 1,875 "
                          "frames of silero_test.wav)"}
COMMANDS = {"lenet300": "OMP_NUM_THREADS=1 nice -n 10 /tmp/peersenv/bin/python bench_peers.py --quick --json",
            "resnet20": "OMP_NUM_THREADS=1 nice -n 10 /tmp/peersenv/bin/python bench_peers.py --models resnet20",
            "gpt_char": "OMP_NUM_THREADS=1 nice -n 10 /tmp/peersenv/bin/python bench_peers.py --models gpt_char "
                        "--jobs 2",
            "silero": "OMP_NUM_THREADS=1 nice -n 10 /tmp/peersenv/bin/python bench_peers.py --models silero --jobs 2"}
UNIT = {"lenet300": "items", "resnet20": "items", "gpt_char": "windows", "silero": "frames"}


def paired_change(base: list, new: list) -> tuple[float, int, int]:
    """Against the uncompressed model on the same items: top1/agreement, (change in points, items lost, items
    gained); val_loss, (change of the mean loss in nats, windows whose loss rose, windows whose loss fell)."""
    if base and isinstance(base[0], float):
        worse = sum(1 for b, n in zip(base, new) if n > b)
        better = sum(1 for b, n in zip(base, new) if n < b)
        return (sum(new) - sum(base)) / len(base), worse, better
    lost = sum(1 for b, n in zip(base, new) if b and not n)
    gained = sum(1 for b, n in zip(base, new) if n and not b)
    return 100.0 * (gained - lost) / len(base), lost, gained


def no_worse(model: str, ours: list, peer: list) -> bool:
    """Is ``ours`` of no worse quality than ``peer``: as many items right, or a mean loss no higher."""
    if HIGHER_IS_BETTER[metric_name(model)]:
        return sum(ours) >= sum(peer)
    return sum(ours) / len(ours) <= sum(peer) / len(peer)


def metric_text(model: str, items: list) -> str:
    m = sum(items) / len(items)
    return f"{100 * m:.2f}%" if HIGHER_IS_BETTER[metric_name(model)] else f"{m:.4f}"


def change_text(model: str, base: list, items: list) -> str:
    d, worse, better = paired_change(base, items)
    if HIGHER_IS_BETTER[metric_name(model)]:
        return f"{d:+.2f} ({worse}/{better})"
    return f"{d:+.4f} ({100 * d / (sum(base) / len(base)):+.2f}%; {worse}/{better})"


def bar_rows(rows: list[dict], model: str = "lenet300") -> list[tuple[dict, dict | None, float | None]]:
    """Per peer row: the smallest deepcompress file of no worse metric, and the peer's bytes over its bytes."""
    ours = [r for r in rows if r["tool"].startswith("deepcompress")]
    out = []
    for p in (r for r in rows if not r["tool"].startswith("deepcompress")):
        ok = [d for d in ours if no_worse(model, d["right"], p["right"])]
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
        ax.scatter([r["bytes"] for r in pts], [paired_change(base, r["right"])[0] + (100 if model == "silero" else 0)
                                               for r in pts],
                   label=tool, marker="o*sDv^<>"[i % 8], s=60 if tool == "deepcompress" else 35)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("bytes on disk (log)")
    ax.set_ylabel({"top1": "paired change in top-1 (points)", "agreement": "frames agreeing with the original (%)",
                   "val_loss": "paired change in validation loss (nats, lower is better)"}[metric_name(model)])
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
    unit = UNIT[model]
    change_head = (f"paired change, nats ({unit} worse/better)" if not HIGHER_IS_BETTER[name] else
                   f"paired change (lost/gained {unit})")
    lines = [f"## {MODEL_TITLES[model]}", "",
             f"Measured {rec['date']}: `cd benchmarks && {COMMANDS[model]}`. Uncompressed: {name} "
             f"{metric_text(model, base)}, {fp32:,} bytes of float32 parameters and buffers "
             "(the ratio's denominator).", "",
             f"| tool | settings | bytes | ratio vs fp32 | {name} | {change_head} | time | peak RSS |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(rec["rows"], key=lambda r: r["bytes"]):
        lines.append(f"| {r['tool']} | {r['label']} | {r['bytes']:,} | {fp32 / r['bytes']:.1f}x | "
                     f"{metric_text(model, r['right'])} | {change_text(model, base, r['right'])} | "
                     + ("-" if r["seconds"] is None else f"{r['seconds']:.1f} s") + f" | {r['peak_rss_mb']:.0f} MB |")
    for f in rec["failures"]:
        lines.append(f"| {f['tool']} | {f['label']} | not run | | | | | {f['error'][:200].strip().replace('|', '/')} |")
    img = plot(model, rec)
    if img is not None:
        lines += ["", f"![quality against bytes, {model}](../img/{img.name})"]
    lines += ["", "Against the bar (deepcompress at least 1.5x smaller than each peer at no worse quality): "
              "for each peer row, the smallest deepcompress file with " +
              ("a validation loss no higher." if not HIGHER_IS_BETTER[name] else f"at least as many {unit} right."),
              "",
              "| peer | settings | peer bytes | smallest deepcompress file at no worse quality | peer / ours |",
              "| --- | --- | --- | --- | --- |"]
    for p, best, ratio in bar_rows(rec["rows"], model):
        lines.append(f"| {p['tool']} | {p['label']} | {p['bytes']:,} | "
                     + (f"{best['bytes']:,} ({best['label']}) | {ratio:.1f}x{'' if ratio >= 1.5 else ' (bar missed)'} |"
                        if best else "none: the peer is better than every deepcompress row | peer wins |"))
    return lines + [""]


def _old_sections(tables: str) -> dict[str, list[str]]:
    """The doc's current table section of each model (from its "## title" line to the next model's)."""
    heads = {f"## {title}": model for model, title in MODEL_TITLES.items()}
    out: dict[str, list[str]] = {}
    current = None
    for line in tables.splitlines():
        if line in heads:
            current = heads[line]
            out[current] = []
        if current is not None:
            out[current].append(line)
    return out


def write_doc() -> None:
    """Replace the tables between the markers of docs/benchmarks/peers.md; the prose around them is kept, and so
    is the table section of a model with no results in benchmarks/out/peers/ (a new checkout has none: its
    tables stay as last measured until that model is run again)."""
    doc = REPO / "docs" / "benchmarks" / "peers.md"
    start, end = "<!-- tables: written by bench_peers.py --doc -->", "<!-- /tables -->"
    text = doc.read_text() if doc.is_file() else f"# deepcompress beside its peers\n\n{start}\n{end}\n"
    old = _old_sections(text[text.index(start) + len(start):text.index(end)])
    lines = []
    for model in MODEL_TITLES:
        f = OUT / f"results_{model}.json"
        if f.is_file():
            lines += model_section(model, json.loads(f.read_text()))
        elif model in old:
            lines += old[model] + ([""] if old[model][-1] else [])
    body = "\n".join(lines)
    doc.write_text(text[:text.index(start) + len(start)] + "\n" + body + text[text.index(end):])
    print(body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="LeNet-300-100 alone")
    ap.add_argument("--models", default="lenet300,resnet20,gpt_char,silero")
    ap.add_argument("--jobs", type=int, help="runs at a time, one subprocess (one thread) each; "
                    "default 2 with --quick on a machine of >= 2 cores, else 1")
    ap.add_argument("--tools", help="comma-separated subset of: " + ", ".join(TOOLS))
    ap.add_argument("--match", action="append", help="only the runs whose 'tool | settings' contains this text "
                    "(repeatable); like --tools, keeps the other rows of the results file")
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
    jobs = args.jobs or (min(2, os.cpu_count() or 1) if args.quick else 1)
    for model in models:
        rec = bench(model, only, jobs, args.match)
        out += [public_row(r, rec["baseline_right"], model) for r in rec["rows"]]
        for f in rec["failures"]:
            print(f"not run: {model} | {f['tool']} | {f['label']}: {f['error']}", file=sys.stderr)
    if args.json:
        print("[\n" + ",\n".join(json.dumps({k: row[k] for k in ROW_KEYS}) for row in out) + "\n]")


if __name__ == "__main__":
    main()
