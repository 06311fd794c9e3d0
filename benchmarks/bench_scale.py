"""Issue #17 item 4: a 1.1B-parameter Llama-shaped checkpoint through deepcompress, lossless and weight-shared.

The script generates TinyLlama-1.1B's shapes (22 decoder layers, hidden 2048,
MLP 5632, grouped-query attention with 256-wide k/v, vocabulary 32000, untied
lm_head; ``bench_lossless_memory.llama_shapes``) as random normal weights (std
0.02; norms 1 + noise) in a bfloat16 safetensors file (2.2 GB) and the same
draws in float32 (4.4 GB), then times each command as its own child process
(``/usr/bin/time -v``: wall time and peak RSS), ``--runs`` times, interleaved:

- ``st_load``: ``safetensors.torch.load_file`` of the bf16 original (the reference
  for decoding), and ``st_import``: the interpreter with safetensors.torch loaded;
- ``lossless``: ``deepcompress compress model.safetensors --lossless``;
- ``lossless_decode``: ``deepcompress decode ll.dcz -o back.safetensors`` (checked:
  sha256 of every tensor equal to the original's);
- ``lossless_load``: ``deepcompress.load_state_dict('ll.dcz')`` (tensors in torch);
- ``shared``: ``deepcompress compress model.safetensors`` (no architecture: data-free
  weight sharing, bits per tensor within the default error) and ``shared_decode``;
- ``shared_fp32``: the same on the float32 file (the issue's bar is in MB/s of fp32 input).

Throughput is the input checkpoint's bytes over wall time (decode: the decoded
checkpoint's bytes). Random weights are not real ones: the ratios here say
little (``bench_float_codec.py`` measures real checkpoints); speed and memory are
what this measures. The thread count is ``NUMBA_NUM_THREADS`` (``--threads``, 2).

    cd /work/main && OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scale.py --runs 3 \\
        --doc docs/benchmarks/scale.md --json benchmarks/out/scale.json
"""

from __future__ import annotations

import argparse
from collections import Counter
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lossless_memory import (deepcompress_cmd, llama_shapes, measure_out, run_and_report,  # noqa: E402
                                   tensor_digests, write_checkpoint)

REPO = Path(__file__).resolve().parents[1]
DATE = __import__("datetime").date.today().isoformat()  # the day of the run (recorded in --json)
LAYERS = 22  # TinyLlama-1.1B
WARM = [("w", (512, 512)), ("big", (1024, 2048)), ("norm", (512,))]  # every encode path, a few MB


def run(folder: Path, n_layers: int, runs: int, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": str(threads),
           "PYTHONPATH": str(REPO)}
    src, src32 = folder / "model.safetensors", folder / "model_fp32.safetensors"
    ll, back = folder / "ll.dcz", folder / "back.safetensors"
    sh, sh_back, sh32 = folder / "sh.dcz", folder / "sh_back.safetensors", folder / "sh32.dcz"
    t0 = time.perf_counter()
    for path, dtype in ((src, "bfloat16"), (src32, "float32")):
        done = path.with_suffix(".done")
        if path.is_file() and done.is_file() and done.read_text() == f"{n_layers} {dtype}":
            continue  # generated before in this --folder (deterministic: same seed, same shapes)
        subprocess.run([sys.executable, __file__, "--generate", str(path), "--dtype", dtype, "--layers",
                        str(n_layers)], env=env, check=True)
        done.write_text(f"{n_layers} {dtype}")
    print(f"generated {src.stat().st_size / 1e9:.2f} + {src32.stat().st_size / 1e9:.2f} GB in "
          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    dc = deepcompress_cmd()
    py = sys.executable
    # warm numba's on-disk cache (a first run after an install or a source edit compiles the kernels)
    for dtype in ("bfloat16", "float32"):
        tiny = folder / f"warm_{dtype}.safetensors"
        subprocess.run([sys.executable, __file__, "--generate", str(tiny), "--dtype", dtype, "--layers", "-1"],
                       env=env, check=True)
        for flags in (["--lossless"], []):
            subprocess.run([*dc, "compress", str(tiny), *flags, "-o", str(folder / "warm.dcz")], env=env, check=True,
                           capture_output=True)
            subprocess.run([*dc, "decode", str(folder / "warm.dcz"), "-o", str(folder / "warm_back.safetensors")],
                           env=env, check=True, capture_output=True)
            subprocess.run([py, "-c", "import sys, deepcompress; deepcompress.load_state_dict(sys.argv[1])",
                            str(folder / "warm.dcz")], env=env, check=True)
    # the loads and the in-process runs print the seconds of the call alone (imports excluded) as "CALL s"
    timed = "import sys, time, torch, {m}; t = time.perf_counter(); {call}; print('CALL', time.perf_counter() - t)"
    commands = {
        "st_import": [py, "-c", "import safetensors.torch"],
        # load_file maps the file lazily: one value of every 4 KiB page is read, so the weights are resident
        # (as load_state_dict's decoded tensors are)
        "st_load": [py, "-c", timed.format(m="safetensors.torch", call="[t.reshape(-1)[::2048].float().sum() for t in "
                                           "safetensors.torch.load_file(sys.argv[1]).values()]"), str(src)],
        "lossless": [*dc, "compress", str(src), "--lossless", "-o", str(ll)],
        "lossless_call": [py, "-c", timed.format(m="deepcompress.lossless", call="deepcompress.lossless."
                                                 "compress_lossless(sys.argv[1], sys.argv[2])"), str(src), str(ll)],
        "lossless_decode": [*dc, "decode", str(ll), "-o", str(back)],
        "lossless_load": [py, "-c", timed.format(m="deepcompress", call="deepcompress.load_state_dict(sys.argv[1])"),
                          str(ll)],
        "shared": [*dc, "compress", str(src), "-o", str(sh), "--json"],
        "shared_decode": [*dc, "decode", str(sh), "-o", str(sh_back)],
        "shared_fp32": [*dc, "compress", str(src32), "-o", str(sh32), "--json"],
    }
    results: dict[str, list[tuple[float, float, float | None]]] = {k: [] for k in commands}
    for r in range(runs):
        for key, cmd in commands.items():
            rss, wall, out = measure_out(cmd, env)
            call = next((float(line.split()[1]) for line in out.splitlines() if line.startswith("CALL ")), None)
            results[key].append((rss, wall, call))
            print(f"run {r + 1}/{runs} {key}: peak RSS {rss:,.0f} MB, {wall:.1f} s"
                  f"{'' if call is None else f' (call {call:.1f} s)'}", file=sys.stderr)
    same = tensor_digests(src) == tensor_digests(back)
    shared = json.loads(subprocess.run(commands["shared"], env=env, capture_output=True, text=True,
                                       check=True).stdout)
    shared32 = json.loads(subprocess.run(commands["shared_fp32"], env=env, capture_output=True, text=True,
                                         check=True).stdout)

    def shown(cmd: list[str]) -> str:
        cmd = [c.replace(str(folder) + "/", "") for c in cmd]
        return shlex.join(["deepcompress", *cmd[len(dc):]] if cmd[:len(dc)] == dc else ["python", *cmd[1:]])

    return {
        "date": DATE, "threads": threads, "n_layers": n_layers, "n_tensors": len(llama_shapes(n_layers)),
        "bytes": {"bf16": src.stat().st_size, "fp32": src32.stat().st_size, "lossless": ll.stat().st_size,
                  "shared": sh.stat().st_size, "shared_fp32": sh32.stat().st_size},
        "shared_bits": _count(shared["bits"].values()), "shared_fp32_bits": _count(shared32["bits"].values()),
        "sha256_equal": same,
        "commands": {k: shown(v) for k, v in commands.items()},
        "results": {k: [list(x) for x in v] for k, v in results.items()},
    }


def _count(values) -> dict[str, int]:
    """How many of ``values`` each value is (keys as strings, sorted): the JSON of a bit-width histogram."""
    return {str(k): n for k, n in sorted(Counter(values).items())}


def _med(xs: list[float], fmt: str) -> str:
    return f"{format(statistics.median(xs), fmt)} ({format(min(xs), fmt)}-{format(max(xs), fmt)})"


def render(res: dict) -> str:
    b = res["bytes"]
    r = res["results"]
    base = statistics.median(x[0] for x in r["st_import"])

    def wall(k: str) -> list[float]:
        return [x[1] for x in r[k]]

    def call(k: str) -> list[float]:
        return [x[2] for x in r[k]]

    def rate(xs: list[float], n: int) -> str:
        return _med([n / 1e6 / w for w in xs], ",.0f")

    def rate_value(xs: list[float], n: int) -> float:
        return statistics.median(n / 1e6 / w for w in xs)

    def rss(k: str) -> str:
        return _med([x[0] - base for x in r[k]], ",.0f")

    n_runs = len(r["st_load"])
    lines = [
        f"# A 1.1B-parameter checkpoint, lossless and weight-shared ({res['date']})",
        "",
        f"Issue #17 item 4. `benchmarks/bench_scale.py` generated a Llama-shaped checkpoint ({res['n_layers']} "
        f"decoder layers, {res['n_tensors']} tensors, TinyLlama-1.1B's shapes) of random normal weights: "
        f"{b['bf16']:,} bytes in bfloat16 and {b['fp32']:,} in float32 (the same draws). Each command ran as "
        f"its own process, {n_runs} times interleaved, with {res['threads']} codec threads "
        f"(`NUMBA_NUM_THREADS={res['threads']}`, `OMP_NUM_THREADS=1`) on this 2-core machine; figures are "
        "medians with the range. *Process* is the command's wall time as a user runs it (interpreter start, "
        "imports, numba's cached kernels loaded, the output written and fsync'ed); *call* is the library call "
        "alone, timed inside the process after its imports. Memory is peak RSS above "
        f"`python -c 'import safetensors.torch'` ({base:,.0f} MB). Random weights are not real ones, so the "
        "ratios say little ([float_codec.md](float_codec.md) measures real checkpoints); speed and memory are "
        "the point. Every step that writes a file is also bounded by the disk (the output is fsync'ed).",
        "",
        "    cd /work/main && OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scale.py --runs 3 \\",
        "        --doc docs/benchmarks/scale.md --json benchmarks/out/scale.json",
        "",
        "| step | command | process, s | MB/s | call, s | MB/s | peak RSS above baseline, MB | output bytes | of input |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows = [
        ("safetensors `load_file` (bf16), every page read", "st_load", b["bf16"], None),
        ("lossless compress, CLI (bf16)", "lossless", b["bf16"], b["lossless"]),
        ("lossless compress, `compress_lossless`", "lossless_call", b["bf16"], b["lossless"]),
        ("lossless decode to safetensors", "lossless_decode", b["bf16"], None),
        ("`deepcompress.load_state_dict` (lossless)", "lossless_load", b["bf16"], None),
        ("weight-shared compress (bf16)", "shared", b["bf16"], b["shared"]),
        ("weight-shared decode to safetensors", "shared_decode", b["bf16"], None),
        ("weight-shared compress (fp32)", "shared_fp32", b["fp32"], b["shared_fp32"]),
    ]
    for label, key, n, out in rows:
        calls = [c for c in call(key) if c is not None]
        c_s, c_r = (_med(calls, ".1f"), rate(calls, n)) if calls else ("", "")
        of = f"{out / n:.1%}" if out is not None else ""
        lines.append(f"| {label} | `{res['commands'][key]}` | {_med(wall(key), '.1f')} | {rate(wall(key), n)} | "
                     f"{c_s} | {c_r} | {rss(key)} | {'' if out is None else f'{out:,}'} | {of} |")
    bar_mem = b["bf16"] / 4 / 1e6 + 512
    ll_cli, ll_call = rate_value(wall("lossless"), b["bf16"]), rate_value(call("lossless_call"), b["bf16"])
    dec_call = rate_value(call("lossless_load"), b["bf16"])
    dec_cli = rate_value(wall("lossless_decode"), b["bf16"])
    sh32 = rate_value(wall("shared_fp32"), b["fp32"])
    lines += [
        "",
        f"Decoded tensors equal the original's, sha256 per tensor: {res['sha256_equal']}. "
        f"Shared bits per tensor (bf16): {res['shared_bits']}; (fp32): {res['shared_fp32_bits']}.",
        "",
        "Against the issue's bars:",
        f"- lossless compress at least 200 MB/s: {ll_cli:,.0f} MB/s through the CLI, {ll_call:,.0f} MB/s for "
        f"the call: **{'met' if ll_cli >= 200 else 'met for the call only' if ll_call >= 200 else 'missed'}**;",
        f"- decode at least 1 GB/s on 2 threads: `load_state_dict` {dec_call:,.0f} MB/s for the call (safetensors "
        f"`load_file` of the original: {rate_value(call('st_load'), b['bf16']):,.0f} MB/s), {dec_cli:,.0f} MB/s for "
        f"the CLI writing a safetensors file: **{'met' if dec_call >= 1000 else 'missed'}** (in memory)"
        f"{'' if dec_cli >= 1000 else ', not for the CLI writing a file'};",
        f"- weight-shared data-free compress at least 50 MB/s of fp32 input: {sh32:,.0f} MB/s through the CLI: "
        f"**{'met' if sh32 >= 50 else 'missed'}**;",
        f"- peak memory at most N/4 + 512 MB above baseline ({bar_mem:,.0f} MB for the bf16 file): compress "
        f"{rss('lossless')}, decode {rss('lossless_decode')}, shared {rss('shared')}, shared decode "
        f"{rss('shared_decode')} MB; the fp32 file's bar is {b['fp32'] / 4 / 1e6 + 512:,.0f} MB: shared "
        f"{rss('shared_fp32')} MB. (`load_state_dict` returns every tensor, so it holds the checkpoint itself.)",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=LAYERS, help="decoder layers (22: 1.1B parameters)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--folder", type=Path, help="where to generate the files [a temporary folder]")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--doc", type=Path, help="write the Markdown report here")
    ap.add_argument("--from-json", type=Path, help="render the doc from an earlier --json, without running")
    ap.add_argument("--note", action="append", default=[], help="a paragraph to add at the end of the doc")
    ap.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--dtype", default="bfloat16", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate is not None:  # --layers -1: the small warm-up checkpoint
        write_checkpoint(args.generate, llama_shapes(args.layers) if args.layers >= 0 else WARM, dtype=args.dtype)
        return
    run_and_report(args, lambda folder: run(folder, args.layers, args.runs, args.threads),
                   lambda res: render(res) + "".join(f"\n{note}\n" for note in args.note), "bench-scale-")

if __name__ == "__main__":
    main()
