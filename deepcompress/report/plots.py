"""PNG plots of a compression (matplotlib's Agg canvas; no pyplot state).

* :func:`weights_png`: a layer's weights before sharing with the k-means
  centroids before (green crosses) and after fine-tuning (red dots), and the
  shared values after (Deep Compression Figure 4);
* :func:`streams_png`: the distributions of the shared-weight index and of the
  relative-index (gap) symbols (Figure 5);
* :func:`stages_png`: size and accuracy after each stage (Figure 1).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..atomic import write_bytes_atomic


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: Path) -> Path:
    """Render ``fig`` and write it atomically."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    write_bytes_atomic(path, buf.getvalue())
    return path


def weights_png(path: Path, name: str, before: np.ndarray | None, initial_centroids: np.ndarray | None,
                labels: np.ndarray, codebook: np.ndarray) -> Path:
    """Histograms of the kept weights before and after sharing, centroids marked."""
    fig = _figure(10, 3.6)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    kept_labels = labels[labels >= 0]
    if before is not None:
        kept_before = before[labels >= 0] if before.shape == labels.shape else before[before != 0]
        left.hist(kept_before, bins=100, color="tab:blue", alpha=0.8, label="weights")
    else:
        left.text(0.5, 0.6, "weights before sharing not recorded\n(quantize stage came from the cache)",
                  ha="center", transform=left.transAxes, fontsize=8)
    if initial_centroids is not None and initial_centroids.size:
        left.plot(initial_centroids, np.zeros_like(initial_centroids), "x", color="tab:green",
                  label="centroids after k-means")
    left.plot(codebook, np.zeros_like(codebook), ".", color="tab:red", label="final shared values")
    left.set(title=f"{name}: before sharing", xlabel="weight value", ylabel="count")
    left.legend(fontsize=7)
    counts = np.bincount(kept_labels.astype(np.int64), minlength=codebook.size) if kept_labels.size else \
        np.zeros(codebook.size, dtype=np.int64)
    span = float(codebook.max() - codebook.min()) if codebook.size > 1 else 1.0
    right.bar(codebook, counts, width=max(span / max(4 * codebook.size, 1), 1e-6), color="tab:red")
    right.set(title=f"{name}: after sharing ({codebook.size} values)", xlabel="shared value", ylabel="count")
    return save_png(fig, path)


def streams_png(path: Path, name: str, kept_labels: np.ndarray, codebook_size: int,
                gap_symbols: np.ndarray | None, index_bits: int | None) -> Path:
    """Bar charts of the shared-weight index and the gap-symbol distributions."""
    fig = _figure(10, 3.4)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    counts = np.bincount(kept_labels.astype(np.int64), minlength=max(codebook_size, 1))
    left.bar(np.arange(counts.size), counts, width=1.0, color="tab:blue")
    left.set(title=f"{name}: shared-weight index", xlabel="index", ylabel="count")
    if gap_symbols is not None and index_bits:
        n_sym = 1 << int(index_bits)
        gaps = np.bincount(gap_symbols.astype(np.int64), minlength=n_sym)
        colors = ["tab:orange"] * (n_sym - 1) + ["tab:gray"]
        right.bar(np.arange(n_sym), gaps, width=1.0, color=colors)
        right.set(title=f"{name}: relative index ({index_bits} bits; grey = filler)", xlabel="gap symbol",
                  ylabel="count")
    else:
        right.text(0.5, 0.5, "no gap stream (every block kept)", ha="center", transform=right.transAxes)
        right.set(title=f"{name}: relative index")
    return save_png(fig, path)


def stages_png(path: Path, labels: Sequence[str], sizes: Sequence[int], top1: Sequence[float | None]) -> Path:
    """Size (bars, log scale) and top-1 (line) after each stage."""
    fig = _figure(7, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(labels))
    ax.bar(x, sizes, color="tab:blue", alpha=0.7)
    ax.set_yscale("log")
    ax.set_xticks(x, labels, rotation=20, fontsize=8)
    ax.set_ylabel("bytes")
    scored = [(i, 100 * t) for i, t in enumerate(top1) if t is not None]
    if scored:
        acc = ax.twinx()
        acc.plot([i for i, _ in scored], [t for _, t in scored], "o-", color="tab:red")
        acc.set_ylabel("top-1 (%)", color="tab:red")
    ax.set_title("size and accuracy after each stage")
    return save_png(fig, path)
