"""Peak memory and wall time of ``compress --lossless`` and ``decode -o X.safetensors`` on a ~1 GB bf16 checkpoint.

Issue #17 item 3: peak RSS while compressing or decoding a checkpoint of N bytes
must stay at most N/4 + 512 MB above the interpreter's baseline. The script
generates a Llama-shaped bfloat16 safetensors file (random normal weights, std
0.02, cast to bf16 with round-to-nearest-even; embedding, 8 decoder layers with
grouped-query attention, final norm, untied lm_head) in a temporary folder, then
runs each command as its own child process under ``/usr/bin/time -v`` (or, when
that is missing, ``resource.getrusage(RUSAGE_CHILDREN)`` of one child per run):

- ``baseline``: the same CLI compressing and decoding a one-tensor checkpoint
  (the interpreter, numpy, numba's compiled kernels, click and tqdm loaded);
- ``compress``: ``deepcompress compress model.safetensors --lossless -o m.dcz``;
- ``decode``: ``deepcompress decode m.dcz -o back.safetensors``;
- ``load_file``: ``safetensors.torch.load_file`` of the original (for scale).

Each is run ``--runs`` times (interleaved); the doc gets the median with the
range. The decoded file's tensors are checked byte for byte (sha256 per tensor)
against the original.

    cd /work/main && OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_lossless_memory.py \\
        --doc docs/benchmarks/lossless_memory.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shlex
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from deepcompress.dtypes import bfloat16_bits

REPO = Path(__file__).resolve().parents[1]
DATE = __import__("datetime").date.today().isoformat()

# TinyLlama-like: hidden 2048, MLP 5632, 32 heads with 4 key/value heads (k/v 256 wide), vocab 32000.
HIDDEN, MLP, KV, VOCAB = 2048, 5632, 256, 32000


TINY = [("w", (256, 256))]  # baseline: one tensor, large enough for split_float (numba kernels loaded)

#: --preset: (description, shapes of --layers decoder layers)
PRESETS = {
    "tinyllama": ("TinyLlama-like: embedding and untied lm_head 32000x2048, decoder layers with q/o 2048x2048, "
                  "k/v 256x2048, gate/up 5632x2048, down 2048x5632, norms",
                  lambda layers: llama_shapes(layers)),
    "gemma": ("Gemma-like, one tensor half of the file: a tied 256000x1024 embedding (500 MiB of bf16), decoder "
              "layers with q/o 1024x1024, k/v 256x1024, gate/up 8192x1024, down 1024x8192, norms",
              lambda layers: [t for t in llama_shapes(layers, hidden=1024, mlp=8192, kv=256, vocab=256000)
                              if t[0] != "lm_head.weight"]),
    "single": ("one tensor nearly all of the file: a 524288x1024 embedding (1 GiB of bf16) and a final norm "
               "(run with --layers 0)",
               lambda layers: [t for t in llama_shapes(layers, hidden=1024, mlp=8192, kv=256, vocab=524288)
                               if t[0] != "lm_head.weight"]),
}


def llama_shapes(n_layers: int, *, hidden: int = HIDDEN, mlp: int = MLP, kv: int = KV, vocab: int = VOCAB
                 ) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of a Llama-shaped checkpoint, in the order a HF checkpoint lists them."""
    out: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (vocab, hidden))]
    for i in range(n_layers):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", (hidden,)),
            (p + "self_attn.q_proj.weight", (hidden, hidden)),
            (p + "self_attn.k_proj.weight", (kv, hidden)),
            (p + "self_attn.v_proj.weight", (kv, hidden)),
            (p + "self_attn.o_proj.weight", (hidden, hidden)),
            (p + "post_attention_layernorm.weight", (hidden,)),
            (p + "mlp.gate_proj.weight", (mlp, hidden)),
            (p + "mlp.up_proj.weight", (mlp, hidden)),
            (p + "mlp.down_proj.weight", (hidden, mlp)),
        ]
    out += [("model.norm.weight", (hidden,)), ("lm_head.weight", (vocab, hidden))]
    return out


def write_checkpoint(path: Path, shapes: list[tuple[str, tuple[int, ...]]], *, seed: int = 0,
                     chunk: int = 1 << 24, dtype: str = "bfloat16") -> int:
    """Write a bf16 (or float32) safetensors file of random normal weights (norms: 1 + noise), a chunk at a
    time; its size. The float32 file holds the same draws as the bf16 one, unrounded."""
    rng = np.random.default_rng(seed)
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    item, tag = (2, "BF16") if dtype == "bfloat16" else (4, "F32")
    for name, shape in shapes:
        size = item * int(np.prod(shape))
        header[name] = {"dtype": tag, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)))
        fh.write(text)
        for name, shape in shapes:
            n = int(np.prod(shape))
            for start in range(0, n, chunk):
                x = rng.standard_normal(min(chunk, n - start), dtype=np.float32)
                x *= np.float32(0.02)
                if name.endswith("norm.weight"):
                    x += np.float32(1.0)
                fh.write(bfloat16_bits(x).tobytes() if item == 2 else x.tobytes())
    return path.stat().st_size


def tensor_digests(path: Path) -> dict[str, str]:
    """sha256 of each tensor's bytes in a safetensors file (read a tensor at a time, no torch)."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
        header.pop("__metadata__", None)
        out = {}
        for name, rec in header.items():
            start, end = rec["data_offsets"]
            fh.seek(8 + n + start)
            h = hashlib.sha256()
            left = end - start
            while left:
                block = fh.read(min(left, 1 << 24))
                h.update(block)
                left -= len(block)
            out[name] = f"{rec['dtype']}{rec['shape']}:{h.hexdigest()}"
    return out


def deepcompress_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("deepcompress")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "deepcompress.cli.main"]


def measure(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one child process running ``cmd``."""
    return measure_out(cmd, env)[:2]


def measure_out(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(peak RSS in MB, wall seconds, stdout) of one child process running ``cmd``."""
    if Path("/usr/bin/time").exists():
        t0 = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-v", *cmd], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"failed ({proc.returncode}): {shlex.join(cmd)}\n{proc.stderr[-3000:]}")
        kb = next(int(line.split()[-1]) for line in proc.stderr.splitlines()
                  if "Maximum resident set size" in line)
        return kb / 1024, wall, proc.stdout
    # fallback: RUSAGE_CHILDREN's ru_maxrss is the largest child so far, so use a fresh helper process
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "r = subprocess.run(sys.argv[1:]); w = time.perf_counter() - t; "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, w); sys.exit(r.returncode)")
    proc = subprocess.run([sys.executable, "-c", probe, *cmd], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(cmd)}\n{proc.stderr[-3000:]}")
    kb, wall = proc.stdout.split()[-2:]
    return int(kb) / 1024, float(wall), proc.stdout


def _summary(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def _summary_s(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def run(folder: Path, n_layers: int, runs: int, preset: str = "tinyllama") -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    src, dcz, back = folder / "model.safetensors", folder / "m.dcz", folder / "back.safetensors"
    tiny, tiny_dcz, tiny_back = folder / "tiny.safetensors", folder / "tiny.dcz", folder / "tiny_back.safetensors"
    t0 = time.perf_counter()
    # generated by a child, so this process stays small: a child forked from a large parent can
    # report the parent's peak as its own ru_maxrss (Linux keeps the high-water mark over exec)
    subprocess.run([sys.executable, __file__, "--generate", str(src), "--layers", str(n_layers), "--preset", preset],
                   env=env, check=True)
    subprocess.run([sys.executable, __file__, "--generate", str(tiny), "--layers", "-1"], env=env, check=True)
    n_bytes = src.stat().st_size
    print(f"generated {src} ({n_bytes / 1e6:,.0f} MB) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    dc = deepcompress_cmd()
    load = [sys.executable, "-c", "import sys, safetensors.torch as s; s.load_file(sys.argv[1])", str(src)]
    # the same, then one value of every 4 KiB page of every tensor read: all of the weights resident
    touch = [sys.executable, "-c", "import sys, safetensors.torch as s; d = s.load_file(sys.argv[1]); "
             "[t.reshape(-1)[::2048].float().sum() for t in d.values()]", str(src)]
    baseline_import = [sys.executable, "-c", "import safetensors.torch"]
    commands = {
        "baseline_compress": [*dc, "compress", str(tiny), "--lossless", "-o", str(tiny_dcz)],
        "baseline_decode": [*dc, "decode", str(tiny_dcz), "-o", str(tiny_back)],
        "compress": [*dc, "compress", str(src), "--lossless", "-o", str(dcz)],
        "decode": [*dc, "decode", str(dcz), "-o", str(back)],
        "shared_compress": [*dc, "compress", str(src), "-o", str(folder / "sh.dcz")],
        "shared_decode": [*dc, "decode", str(folder / "sh.dcz"), "-o", str(folder / "sh_back.safetensors")],
        "baseline_load_file": baseline_import,
        "load_file": load,
        "load_file_touch": touch,
    }
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in commands}
    for r in range(runs):
        for key, cmd in commands.items():
            rss, wall = measure(cmd, env)
            results[key].append((rss, wall))
            print(f"run {r + 1}/{runs} {key}: peak RSS {rss:,.0f} MB, {wall:.1f} s", file=sys.stderr)
    same = tensor_digests(src) == tensor_digests(back)
    shapes = PRESETS[preset][1](n_layers)
    largest = max(shapes, key=lambda t: int(np.prod(t[1])))
    return {
        "n_bytes": n_bytes, "dcz_bytes": dcz.stat().st_size, "n_layers": n_layers, "date": DATE,
        "preset": preset, "description": PRESETS[preset][0], "largest": [largest[0], list(largest[1])],
        "n_tensors": len(shapes), "sha256_equal": same,
        "commands": {k: shlex.join(["deepcompress", *v[len(dc):]] if v[:len(dc)] == dc else ["python", *v[1:]])
                     for k, v in commands.items()},
        "results": {k: [list(x) for x in v] for k, v in results.items()},
    }


def render(res: dict) -> str:
    n = res["n_bytes"]
    mb = n / 2**20
    bar = mb / 4 + 512e6 / 2**20  # the N/4 + 512 MB, in MiB (what /usr/bin/time's "kbytes" are)
    res_ = res["results"]

    def rss(key: str) -> list[float]:
        return [x[0] for x in res_[key]]

    def wall(key: str) -> list[float]:
        return [x[1] for x in res_[key]]

    base = {"compress": statistics.median(rss("baseline_compress")),
            "decode": statistics.median(rss("baseline_decode")),
            "load_file": statistics.median(rss("baseline_load_file"))}
    base["load_file_touch"] = base["load_file"]
    checked = [k for k in ("compress", "decode", "shared_compress", "shared_decode") if k in res_]
    for k in checked[2:]:
        base[k] = base[k.removeprefix("shared_")]
    rows = []
    for key in (*checked, "load_file", "load_file_touch"):
        above = [v - base[key] for v in rss(key)]
        speed = [mb / w for w in wall(key)]
        verdict = "met" if max(above) <= bar else "missed"
        rows.append(f"| {key} | {_summary(rss(key))} | {base[key]:,.0f} | {_summary(above)} | "
                    f"{100 * statistics.median(above) / mb:.0f}% | {_summary_s(wall(key))} | "
                    f"{_summary(speed)} | " + (verdict if key in checked else "(reference)") + " |")
    cmds = "\n".join(f"    {k}: {v}" for k, v in res["commands"].items())
    runs = len(res_["compress"])
    worst = {k: max(rss(k)) - base[k] for k in checked}
    name, shape = res.get("largest", ["model.embed_tokens.weight", [32000, 2048]])
    big = float(np.prod(shape)) * 2 / 2**20  # MiB of bf16
    shown = ", ".join(f"{k} {worst[k]:,.0f} MiB ({worst[k] / big:.1f}x)" for k in checked)
    return f"""# Compress and decode a checkpoint: peak memory (issue #17 item 3)

Measured {res.get('date', DATE)} on this 2-core machine by `OMP_NUM_THREADS=1 .venv/bin/python
benchmarks/bench_lossless_memory.py --preset {res.get('preset', 'tinyllama')} --layers {res['n_layers']} --runs {len(res_['compress'])}
--json bench.json --doc THIS.md` (re-rendered from the JSON with `--from-json bench.json`). Checkpoint: a
generated bfloat16 safetensors file, {res.get('description', PRESETS['tinyllama'][0])}; {res['n_layers']}
decoder layers, {res['n_tensors']} tensors, random normal weights (std 0.02) cast to bf16: **N = {n:,} bytes
({mb:,.0f} MiB)**; the largest tensor is `{name}` {'x'.join(map(str, shape))} ({big:,.0f} MiB). Lossless
`.dcz` {res['dcz_bytes']:,} bytes ({100 * res['dcz_bytes'] / n:.1f}% of N). Decoded back: sha256 of every
tensor equal to the original: **{'yes' if res['sha256_equal'] else 'NO'}**.

Each command ran as its own process under `/usr/bin/time -v` ("Maximum resident set size"), {runs} runs
interleaved; cells are the median with the range (min-max). The baseline is the same command on a
one-tensor 256x256 checkpoint (interpreter, numpy, numba kernels, click, tqdm loaded; `shared_*` use the
lossless baselines); for `load_file` it is `python -c "import safetensors.torch"`. `load_file` maps the
file and leaves its pages on disk until they are used; `load_file_touch` then reads one value of every
4 KiB page, so all weights are resident. **Bar: at most N/4 + 512 MB = {bar:,.0f} MiB above the
baseline** (512 MB = 488 MiB; the verdict takes the worst run). `shared_*` is the default
`compress` of a checkpoint without an architecture (data-free weight sharing) and its decode.

| command | peak RSS (MiB) | baseline (MiB) | above baseline (MiB) | above / N | wall (s) | MiB/s of N | bar |
| --- | --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(rows)}

Commands (paths in a temporary folder):

{cmds}

How the bound is kept. Compress memory-maps a safetensors file and encodes a tensor at a time on the
codec threads (a bounded number in flight); the encoders read a tensor in chunks of 4M elements and drop
each chunk's mapped pages after it. A tensor under 64 MiB is coded in memory (`split_float`: counts and
digest, then the exponent classes, coded and dropped, then the byte fields; weight sharing: histogram, then
labels; a raw byte stream is stored as the array it was built in). A tensor of 64 MiB or more never has a
whole stream in memory (since 2026-12-07): after the counting pass its symbol streams (exponent classes,
mantissa bytes and low fields, or labels) are made a chunk at a time, two or three times (the counts per
Huffman block, the exact size of a pair code if one could win, the coding), and coded straight into
temporary spill files in the output's folder (`codecs/chunked.py`), with the bytes of the in-memory coder.
Sections are spooled to a temporary file, spill files copied into it file to file, and the spool copied
behind the header at the
end. Decode memory-maps the `.dcz`, checks each tensor's CRCs in 16 MiB chunks dropping the pages as it
goes, decodes `split_float` 4M elements at a time (dropping the parts of the streams read) and a
weight-shared tensor that keeps every weight by looking its indices up a slice at a time (a Huffman
index stream decoded a slice of block groups at a time), writes the tensor and drops its pages; a tensor
of 128 MiB or more is written to the output a slice at a time as it is decoded (`DczFile.decode_into`),
so not even its output is resident at once. Above the baseline: {shown} of the largest tensor's size.

Wall times here are not throughput figures (other jobs may share the machine; item 4's
`bench_scale.py` measures speed).
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=8, help="decoder layers (8: about 1 GB)")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tinyllama", help="the checkpoint's shapes")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--folder", type=Path, help="where to generate the files [a temporary folder]")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--doc", type=Path, help="write the Markdown report here")
    ap.add_argument("--from-json", type=Path, help="render the doc from an earlier --json, without running")
    ap.add_argument("--generate", type=Path, help=argparse.SUPPRESS)  # internal: write the checkpoint and exit
    args = ap.parse_args()
    if args.generate is not None:  # --layers -1: the one-tensor baseline checkpoint
        write_checkpoint(args.generate, PRESETS[args.preset][1](args.layers) if args.layers >= 0 else TINY)
        return
    run_and_report(args, lambda folder: run(folder, args.layers, args.runs, args.preset), render, "bench-lossless-")


def run_and_report(args: argparse.Namespace, run_in: Any, render_fn: Any, prefix: str) -> None:
    """``--from-json`` or a run in ``--folder`` (or a temporary one); then ``--json``, ``--doc`` and stdout."""
    if args.from_json is not None:
        res = json.loads(args.from_json.read_text())
    elif args.folder is not None:
        args.folder.mkdir(parents=True, exist_ok=True)
        res = run_in(args.folder)
    else:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            res = run_in(Path(tmp))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1))
    text = render_fn(res)
    if args.doc:
        args.doc.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
