"""Load speed: ``deepcompress.load`` of an AlexNet-scale .dcz against ``torch.load`` of its dense checkpoint.

The model is the zoo's ``alexnet`` (Caffe layer shapes, 61M weights) with seeded
random weights, pruned by magnitude to Deep Compression's Table 4 densities,
weight-shared with ``share_weights`` (conv 8 bits, fc 5 bits) and encoded with
the paper's 4-bit relative indices. The dense checkpoint is ``torch.save`` of the
same decoded weights. Both files are read once before timing (warm page cache);
the timings are medians of interleaved runs in the same process.

    cd /work/main && PYTHONPATH=. OPENBLAS_NUM_THREADS=1 /work/venv/bin/python benchmarks/bench_load.py
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import deepcompress  # noqa: E402
from deepcompress.codecs.tensor import encode_dense, encode_quantized  # noqa: E402
from deepcompress.container import read_dcz, write_dcz  # noqa: E402
from deepcompress.container.summary import summarize  # noqa: E402
from deepcompress.models import build_model  # noqa: E402
from deepcompress.quantize.sharing import share_weights  # noqa: E402

# Deep Compression Table 4: (zoo tensor, paper layer, density, weight bits P+Q, W bits P+Q+H, idx bits P+Q+H)
TABLE4 = [
    ("features.0.weight", "conv1", 0.84, 8, 6.3, 1.2),
    ("features.4.weight", "conv2", 0.38, 8, 5.5, 2.3),
    ("features.8.weight", "conv3", 0.35, 8, 5.1, 2.6),
    ("features.10.weight", "conv4", 0.37, 8, 5.2, 2.5),
    ("features.12.weight", "conv5", 0.37, 8, 5.6, 2.5),
    ("classifier.1.weight", "fc6", 0.09, 5, 3.9, 3.2),
    ("classifier.4.weight", "fc7", 0.09, 5, 3.6, 3.7),
    ("classifier.6.weight", "fc8", 0.25, 5, 4.0, 3.2),
]
PAPER_INDEX_BITS = 4
PAPER_TOTAL_MB = 6.9  # 240 MB / 35x


def build_files(folder: Path, seed: int) -> tuple[Path, Path]:
    """Write alexnet.dcz and alexnet_dense.pt (the same decoded weights) into ``folder``."""
    rng = np.random.default_rng(seed)
    with torch.device("meta"):
        model = build_model("alexnet")
    state = {}
    for name, tensor in model.state_dict().items():
        fan_in = int(np.prod(tensor.shape[1:])) if tensor.ndim > 1 else 1
        scale = np.float32(np.sqrt(2.0 / fan_in)) if tensor.ndim > 1 else np.float32(0.01)
        state[name] = torch.from_numpy(rng.standard_normal(tuple(tensor.shape), dtype=np.float32) * scale)
    model.load_state_dict(state, assign=True)
    masks = {}
    for name, _, density, *_ in TABLE4:
        w = state[name].numpy()
        k = w.size - int(round(density * w.size))
        threshold = np.partition(np.abs(w).ravel(), k)[k]
        masks[name] = torch.from_numpy(np.abs(w) >= threshold)
    t = time.perf_counter()
    books = share_weights(model, "conv=8,fc=5", masks=masks)
    print(f"share_weights: {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    encoded = []
    for name, tensor in model.state_dict().items():
        if name in books:
            b = books[name]
            encoded.append(encode_quantized(name, b.labels, b.centroids, granularity="element",
                                            block=(1,) * tensor.ndim, bits=b.bits, index_bits=PAPER_INDEX_BITS))
        else:
            encoded.append(encode_dense(name, tensor.numpy()))
    print(f"encode: {time.perf_counter() - t:.1f} s")
    dcz_path, dense_path = folder / "alexnet.dcz", folder / "alexnet_dense.pt"
    write_dcz(dcz_path, encoded, arch={"name": "alexnet", "kwargs": {}})
    decoded = deepcompress.load_state_dict(dcz_path)
    for name, tensor in model.state_dict().items():
        if not torch.equal(decoded[name], tensor):
            raise SystemExit(f"{name}: the .dcz file does not decode to the shared weights")
    torch.save(decoded, dense_path)
    return dcz_path, dense_path


def size_report(dcz_path: Path, dense_path: Path) -> None:
    s = summarize(read_dcz(dcz_path))
    print("\n## Size against Deep Compression Table 4 (paper P+Q+H bits per kept weight)")
    print(f"{'layer':6} {'weights':>9} {'density':>7} {'W bits':>6} {'paper':>5} {'idx bits':>8} {'paper':>5} "
          f"{'bytes':>9} {'rate':>6}")
    layers = {layer["name"]: layer for layer in s["layers"]}
    for name, paper, _, _, w_paper, i_paper in TABLE4:
        lay = layers[name]
        print(f"{paper:6} {lay['n_weights']:9d} {lay['density']:7.1%} {lay['weight_bits_pqh']:6.2f} {w_paper:5.1f} "
              f"{lay['index_bits_pqh']:8.2f} {i_paper:5.1f} {lay['bytes']:9d} {lay['compress_rate']:6.2%}")
    t = s["layer_totals"]
    print(f"{'total':6} {t['n_weights']:9d} {t['density']:7.1%} {t['weight_bits_pqh']:6.2f} {4.0:5.1f} "
          f"{t['index_bits_pqh']:8.2f} {3.2:5.1f} {t['bytes']:9d} {t['compress_rate']:6.2%}")
    dense = dense_path.stat().st_size
    print(f".dcz file {s['file_bytes']} bytes ({s['file_bytes'] / 1e6:.2f} MB; paper {PAPER_TOTAL_MB} MB), "
          f"header {s['overhead']['header']} bytes; dense float32 {s['dense_bytes']} bytes "
          f"-> {s['compression_ratio']:.1f}x (paper 35x); torch.save file {dense} bytes")


def timed(fn, repeat: int) -> list[float]:
    """Wall times of ``fn()``; its result is freed outside the timed window."""
    out = []
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        result = fn()
        out.append(time.perf_counter() - t)
        del result
    return out


def load_report(dcz_path: Path, dense_path: Path, repeat: int) -> None:
    for path in (dcz_path, dense_path):  # warm the page cache
        path.read_bytes()

    def dense_model():
        with torch.device("meta"):
            model = build_model("alexnet")
        model.load_state_dict(torch.load(dense_path, weights_only=True), assign=True)
        return model

    cases = {
        "deepcompress.load(dcz)": lambda: deepcompress.load(dcz_path),
        "deepcompress.load_state_dict(dcz)": lambda: deepcompress.load_state_dict(dcz_path),
        "torch.load(dense)": lambda: torch.load(dense_path, weights_only=True),
        "torch.load + build_model + load_state_dict": lambda: build_model("alexnet").load_state_dict(
            torch.load(dense_path, weights_only=True)),
        "torch.load + meta build + load_state_dict(assign)": dense_model,
    }
    first = {name: timed(fn, 1)[0] for name, fn in cases.items()}  # includes numba's first call
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            runs[name] += timed(fn, 1)
    med = {name: statistics.median(v) for name, v in runs.items()}
    print(f"\n## Load time, median of {repeat} interleaved runs (first call in brackets); "
          f"torch threads {torch.get_num_threads()}")
    for name in cases:
        print(f"{name:50} {med[name]:7.3f} s   (first {first[name]:.3f} s; min {min(runs[name]):.3f} s)")
    ref = med["torch.load(dense)"]
    print(f"\nratio deepcompress.load / torch.load(dense)                     {med['deepcompress.load(dcz)'] / ref:.2f}")
    print(f"ratio deepcompress.load_state_dict / torch.load(dense)          "
          f"{med['deepcompress.load_state_dict(dcz)'] / ref:.2f}")
    print(f"ratio deepcompress.load / (torch.load + build + load_state_dict) "
          f"{med['deepcompress.load(dcz)'] / med['torch.load + build_model + load_state_dict']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--keep", type=Path, default=None, help="write the files here and keep them")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_load_") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        dcz_path, dense_path = folder / "alexnet.dcz", folder / "alexnet_dense.pt"
        if not (dcz_path.exists() and dense_path.exists()):
            dcz_path, dense_path = build_files(folder, args.seed)
        size_report(dcz_path, dense_path)
        load_report(dcz_path, dense_path, args.repeat)


if __name__ == "__main__":
    main()
