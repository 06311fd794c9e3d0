"""Benchmark the symbol-stream codecs against zstd-19 on realistic Deep Compression streams.

Streams (built here, seeded):
  q5   5-bit cluster indices: 1-D k-means (linear init, Lloyd) of the kept 9% of normal weights
  q8   the same with 256 clusters
  gap4 relative indices with 4-bit fields (escape fillers) of a random mask at 9% density
  gap8 the same with 8-bit fields

Per stream it prints the empirical entropy, the Huffman and zstd-19 sizes in bits per symbol,
their ratio, and throughputs in M symbols/s measured in this run: Huffman encode (histogram +
code lengths + coding) and decode on numba's 2 threads and on 1 thread, and zstd-19 decode.

Run: cd /work/main && PYTHONPATH=. OPENBLAS_NUM_THREADS=1 /work/venv/bin/python benchmarks/bench_codecs.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import zstandard

from deepcompress.codecs import huffman, relindex
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


def timeit(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def huffman_encode(sym: np.ndarray) -> tuple[bytes, np.ndarray]:
    lengths = huffman.code_lengths(huffman.histogram(sym))
    return huffman.encode(sym, lengths), lengths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=4_000_000, help="kept weights per stream")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    import numba

    rng = np.random.default_rng(2016)
    w = kept_normal_weights(args.symbols, 0.09, rng)
    streams = {
        "q5": kmeans_labels(w, 32),
        "q8": kmeans_labels(w, 256),
        "gap4": gap_stream(args.symbols, 0.09, 4, rng),
        "gap8": gap_stream(args.symbols, 0.09, 8, rng),
    }
    zc = zstandard.ZstdCompressor(level=19)
    zd = zstandard.ZstdDecompressor()
    # warm the numba caches
    data, lengths = huffman_encode(streams["q5"][:100_000])
    huffman.decode(data, 100_000, lengths)

    threads = numba.get_num_threads()
    head = (f"{'stream':6} {'n':>9} {'H bits':>7} {'huff':>7} {'+%':>6} {'zstd19':>7} {'huff/zstd':>9} "
            f"{'enc':>6} {'dec':>6} {'dec1t':>6} {'zstd dec':>8} {'dec/zstd':>8} {'enc/dec':>7}")
    print(f"numba threads: {threads}; throughputs in M symbols/s, median of {args.repeat}")
    print(head)
    for name, sym in streams.items():
        n = sym.size
        h = entropy_bits(huffman.histogram(sym)) / n
        data, lengths = huffman_encode(sym)
        assert np.array_equal(huffman.decode(data, n, lengths), sym)
        hbits = (len(data) + len(huffman.lengths_to_hex(lengths))) * 8 / n
        zdata = zc.compress(sym.tobytes())
        assert zd.decompress(zdata) == sym.tobytes()
        zbits = len(zdata) * 8 / n
        t_enc = timeit(lambda: huffman_encode(sym), args.repeat)
        t_dec = timeit(lambda: huffman.decode(data, n, lengths), args.repeat)
        numba.set_num_threads(1)
        t_dec1 = timeit(lambda: huffman.decode(data, n, lengths), args.repeat)
        numba.set_num_threads(threads)
        t_zd = timeit(lambda: zd.decompress(zdata), args.repeat)
        enc, dec, dec1, zdec = (n / t / 1e6 for t in (t_enc, t_dec, t_dec1, t_zd))
        print(f"{name:6} {n:9d} {h:7.3f} {hbits:7.3f} {100 * (hbits / h - 1):+5.2f}% {zbits:7.3f} "
              f"{hbits / zbits:9.4f} {enc:6.0f} {dec:6.0f} {dec1:6.0f} {zdec:8.0f} {dec / zdec:8.2f} "
              f"{enc / dec:7.2f}")


if __name__ == "__main__":
    main()
