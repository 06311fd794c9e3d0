"""Benchmark the symbol-stream codecs against zstd-19 on realistic Deep Compression streams.

Streams (built here, seeded):
  q5   5-bit cluster indices: 1-D k-means (linear init, Lloyd) of the kept 9% of normal weights
  q8   the same with 256 clusters
  gap4 relative indices with 4-bit fields (escape fillers) of a random mask at 9% density
  gap8 the same with 8-bit fields

Per stream it prints the empirical entropy; the sizes in bits per symbol of Huffman per symbol
(``huffman``), Huffman over pairs of symbols (``huffman_pairs``, streams of at most 6 bits),
zstd-19, and of the codec the encoder picks for a .dcz file (the smallest); and throughputs
in M symbols/s measured in this run, back to back per round: encode (histogram + code
lengths + coding) and decode of each Huffman codec, and zstd-19 decode; as wall clock (best
round) with numba's threads and with one thread, and as the median CPU time of the calling
thread with one thread (the figure least disturbed by other processes).
Then a whole layer goes through the tensor API and is compared with zstd-19 on its streams, and
whole .dcz files (``--dcz``, default benchmarks/out/*.dcz, e.g. the MNIST headline files) are
compared with the same files whose index and gap streams would be zstd-19 instead.

Run: cd /work/main && PYTHONPATH=. OPENBLAS_NUM_THREADS=1 /work/venv/bin/python benchmarks/bench_codecs.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import zstandard

from deepcompress import blocks
from deepcompress.codecs import huffman, huffman_code, huffman_counts, relindex
from deepcompress.codecs.streams import entropy_bits


def kept_normal_weights(n_kept: int, density: float, rng: np.random.Generator) -> np.ndarray:
    """``n_kept`` normal weights that survive magnitude pruning to ``density``."""
    out = []
    total = 0
    thr = None
    while total < n_kept:
        w = rng.standard_normal(4_000_000).astype(np.float32)
        if thr is None:
            thr = float(np.quantile(np.abs(w), 1.0 - density))
        w = w[np.abs(w) > thr]
        out.append(w)
        total += w.size
    return np.concatenate(out)[:n_kept]


def kmeans_labels(w: np.ndarray, k: int, iters: int = 20) -> np.ndarray:
    """1-D Lloyd's k-means with linear initialisation (sorted, prefix sums, searchsorted)."""
    ws = np.sort(w.astype(np.float64))
    csum = np.concatenate([[0.0], np.cumsum(ws)])
    c = np.linspace(ws[0], ws[-1], k)
    for _ in range(iters):
        edges = np.searchsorted(ws, (c[1:] + c[:-1]) / 2)
        lo = np.concatenate([[0], edges])
        hi = np.concatenate([edges, [ws.size]])
        cnt = hi - lo
        nz = cnt > 0
        c[nz] = (csum[hi[nz]] - csum[lo[nz]]) / cnt[nz]
    return np.searchsorted((c[1:] + c[:-1]) / 2, w).astype(np.uint8)


def gap_stream(n_kept: int, density: float, index_bits: int, rng: np.random.Generator) -> np.ndarray:
    n_blocks = int(n_kept / density)
    kept = np.flatnonzero(rng.random(n_blocks) < density)
    sym, _ = relindex.encode_gaps(kept, index_bits)
    return sym


def paired(fns: dict, repeat: int, clock) -> dict:
    """Seconds of each function, timed back to back in every round.

    Wall clock: the best of ``repeat`` rounds (on a shared machine, runs longer than
    a scheduler time slice are preempted, which would bias the median against the
    slower function). CPU time of the calling thread: the median.
    """
    times = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t = clock()
            fn()
            times[k].append(clock() - t)
    pick = min if clock is time.perf_counter else statistics.median
    return {k: pick(v) for k, v in times.items()}


def huffman_encode(sym: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Full encode: histogram, length-limited code, coding."""
    counts = huffman_counts.block_counts(sym)
    lengths = huffman_code.code_lengths(counts.sum(axis=0))
    return huffman.encode(sym, lengths, counts=counts), lengths


def pairs_encode(sym: np.ndarray, bits: int) -> tuple[bytes, np.ndarray]:
    """Full encode of the huffman_pairs codec: pairing, histogram, length-limited code, coding."""
    counts = huffman_counts.pair_block_counts(sym, bits)
    lengths = huffman_code.code_lengths(counts.sum(axis=0))
    return huffman.encode(sym, lengths, counts=counts, pairs_of=bits), lengths


def codec_variants(sym: np.ndarray, bits: int) -> dict:
    """name -> (bits per symbol incl. code_lengths, encode fn, decode fn) for the Huffman codecs of a stream."""
    n = sym.size
    data, lengths = huffman_encode(sym)
    assert np.array_equal(huffman.decode(data, n, lengths), sym)
    out = {"huffman": ((len(data) + len(huffman_code.lengths_to_hex(lengths))) * 8 / n, lambda: huffman_encode(sym),
                       lambda: huffman.decode(data, n, lengths))}
    if bits <= huffman.PAIR_MAX_BITS:
        pdata, plengths = pairs_encode(sym, bits)
        assert np.array_equal(huffman.decode_pairs(pdata, n, plengths, bits), sym)
        out["pairs"] = ((len(pdata) + len(huffman_code.lengths_to_hex(plengths))) * 8 / n,
                        lambda: pairs_encode(sym, bits), lambda: huffman.decode_pairs(pdata, n, plengths, bits))
    return out


def bench_streams(streams: dict, repeat: int) -> None:
    import numba

    from deepcompress.codecs import streams as stream_codecs

    zc = zstandard.ZstdCompressor(level=19)
    zd = zstandard.ZstdDecompressor()
    threads = numba.get_num_threads()
    print("## Stream sizes (bits per symbol; Huffman sizes include the block table and code_lengths)")
    print(f"{'stream':6} {'n':>9} {'H':>6} {'huff':>6} {'+%H':>6} {'pairs':>6} {'+%H':>6} {'zstd19':>6} "
          f"{'picked':>13} {'+%H':>6} {'picked/zstd':>11}")
    rows = []
    for name, (sym, bits) in streams.items():
        n = sym.size
        h = entropy_bits(huffman_counts.histogram(sym)) / n
        variants = codec_variants(sym, bits)
        zdata = zc.compress(sym.tobytes())
        assert zd.decompress(zdata) == sym.tobytes()
        zbits = len(zdata) * 8 / n
        smeta, sdata = stream_codecs.encode_symbols(sym, bits)  # what a .dcz file stores
        picked = stream_codecs.cost(smeta, sdata) * 8 / n
        hb = variants["huffman"][0]
        pb = variants["pairs"][0] if "pairs" in variants else float("nan")
        print(f"{name:6} {n:9d} {h:6.3f} {hb:6.3f} {100 * (hb / h - 1):+5.2f}% {pb:6.3f} {100 * (pb / h - 1):+5.2f}% "
              f"{zbits:6.3f} {smeta['codec']:>13} {100 * (picked / h - 1):+5.2f}% {picked / zbits:11.4f}")
        rows.append((name, n, variants, zdata))
    for nt, clock, title in ((threads, time.perf_counter, f"wall clock (best of {repeat}), {threads} numba threads"),
                             (1, time.perf_counter, f"wall clock (best of {repeat}), 1 numba thread"),
                             (1, time.thread_time, "CPU time of the calling thread, median, 1 numba thread "
                                                   "(insensitive to other processes)")):
        numba.set_num_threads(nt)
        print()
        print(f"## Throughput in M symbols/s: {title}; zstd-19 decode is single-threaded")
        print(f"{'stream':6} {'codec':8} {'enc':>5} {'dec':>5} {'zdec':>5} {'dec/zstd':>8} {'enc/dec':>7}")
        for name, n, variants, zdata in rows:
            for codec, (_, enc_fn, dec_fn) in variants.items():
                t = paired({"enc": enc_fn, "dec": dec_fn, "zdec": lambda: zd.decompress(zdata)}, repeat, clock)
                enc, dec, zdec = (n / t[k] / 1e6 for k in ("enc", "dec", "zdec"))
                print(f"{name:6} {codec:8} {enc:5.0f} {dec:5.0f} {zdec:5.0f} {dec / zdec:8.2f} {enc / dec:7.2f}")
    numba.set_num_threads(threads)


def bench_tensor(rng: np.random.Generator) -> None:
    """A whole fc layer (2048 x 4096, 9% kept, 5-bit k-means) through the tensor API."""
    from deepcompress.codecs.tensor import decode_tensor, encode_quantized

    shape = (2048, 4096)
    w = rng.standard_normal(shape).astype(np.float32)
    mask = np.abs(w) > np.quantile(np.abs(w), 0.91)
    labels = np.full(shape, -1, dtype=np.int16)
    labels[mask] = kmeans_labels(w[mask], 32)
    codebook = np.linspace(-1, 1, 32, dtype=np.float32)
    t = time.perf_counter()
    et = encode_quantized("fc", labels, codebook, granularity="element", block=(1, 1), bits=5)
    t_enc = time.perf_counter() - t
    t = time.perf_counter()
    decode_tensor(et.meta, et.streams)
    t_dec = time.perf_counter() - t
    meta = et.meta
    ours = sum(len(et.streams[k]) + len(s.get("code_lengths", "")) for k, s in meta["streams"].items())
    kept = np.flatnonzero(mask.ravel())
    gaps, _ = relindex.encode_gaps(kept, meta["index_bits"])
    zc = zstandard.ZstdCompressor(level=19)
    zsize = len(zc.compress(labels.ravel()[kept].astype(np.uint8).tobytes())) + len(zc.compress(gaps.tobytes()))
    print()
    print(f"## Tensor {shape}, {kept.size} kept weights, 5 bits")
    print(f"index_bits {meta['index_bits']} (auto), fillers {meta['n_fillers']}, codecs "
          + ", ".join(f"{k}={v['codec']}" for k, v in meta["streams"].items()))
    print(f"streams {ours} bytes = {8 * ours / kept.size:.3f} bits per kept weight; "
          f"zstd-19 on the same symbol streams {zsize} bytes; ratio {ours / zsize:.4f}")
    print(f"encode_quantized {t_enc:.2f} s, decode_tensor {t_dec:.3f} s")


def zstd_of_symbol_streams(path: Path) -> tuple[int, int, int]:
    """(file bytes, bytes of its index + gap streams, zstd-19 bytes of the same symbols, one byte each).

    The symbols are rebuilt from the decoded file: each quantized tensor's codebook
    index per kept weight (kept blocks in order) and its gap symbols at the file's
    own ``index_bits``; everything else in the file is the same for both.
    """
    from deepcompress.container import read_dcz

    zc = zstandard.ZstdCompressor(level=19)
    f = read_dcz(path)
    ours = theirs = 0
    for name in f.tensor_names:
        meta = f.meta(name)
        if meta["kind"] != "quantized":
            continue
        labels, _ = f.decode_labels(name)
        block = tuple(meta["block"])
        kept = relindex.kept_blocks(labels >= 0, block, name)
        index = blocks.to_blocks(labels, block)[kept].astype(np.uint8).ravel()
        sizes = f.stream_sizes(name)
        ours += sizes["index"] + len(meta["streams"]["index"].get("code_lengths", ""))
        theirs += len(zc.compress(index.tobytes()))
        if meta.get("index_bits") is not None:
            gaps, _ = relindex.encode_gaps(kept, meta["index_bits"])
            ours += sizes["gap"] + len(meta["streams"]["gap"].get("code_lengths", ""))
            theirs += len(zc.compress(gaps.tobytes()))
    return f.file_bytes, ours, theirs


def bench_files(paths: list[Path]) -> None:
    """Whole files against the same files with every index and gap stream replaced by zstd-19."""
    print()
    print("## Whole .dcz files: ours against zstd-19 on the same index and gap symbol streams")
    print(f"{'file':40} {'bytes':>9} {'streams':>9} {'zstd19':>9} {'file if zstd19':>14} {'ratio':>7}")
    for path in paths:
        size, ours, theirs = zstd_of_symbol_streams(path)
        alt = size - ours + theirs
        print(f"{str(path):40} {size:9d} {ours:9d} {theirs:9d} {alt:14d} {size / alt:7.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=4_000_000, help="kept weights per stream")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--dcz", type=Path, nargs="*", default=None,
                    help="whole .dcz files to compare with zstd-19 (default: benchmarks/out/*.dcz, if any)")
    args = ap.parse_args()

    rng = np.random.default_rng(2016)
    w = kept_normal_weights(args.symbols, 0.09, rng)
    streams = {  # name -> (symbols, symbol bits)
        "q5": (kmeans_labels(w, 32), 5),
        "q8": (kmeans_labels(w, 256), 8),
        "gap4": (gap_stream(args.symbols, 0.09, 4, rng), 4),
        "gap8": (gap_stream(args.symbols, 0.09, 8, rng), 8),
    }
    codec_variants(streams["q5"][0][:100_000], 5)  # compile / load the numba cache
    print(f"throughputs in M symbols/s over {args.repeat} back-to-back rounds; sizes in bits per symbol")
    print()
    bench_streams(streams, args.repeat)
    bench_tensor(rng)
    files = args.dcz if args.dcz is not None else sorted((Path(__file__).parent / "out").glob("*.dcz"))
    if files:
        bench_files(files)


if __name__ == "__main__":
    main()
