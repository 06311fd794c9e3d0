"""The granularity sweep's results (Mao et al. 2017): measured points, summary, tables and plots.

The sweep itself runs in :mod:`deepcompress.pipeline.sweep`; this module only
reads what it produced (the ``.dcz`` files and their histories). Per point the
sweep records the top-1 after pruning and retraining (the
accuracy curve), the top-1 of the written file, the conv layers' storage
(P+Q estimate and the real P+Q+H stream bytes, indices included), the file
size, and the conv layers' memory references under
:mod:`~deepcompress.report.memrefs`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import write_bytes_atomic
from ..errors import ConfigError
from ..granularity import parse_granularity
from .memrefs import SCNN, ZERO, MemRefs, ScnnArray, conv_memory_refs

DEFAULT_GRANULARITIES = ("element", "vector", "kernel", "filter")


def parse_granularities(text: str) -> tuple[str, ...]:
    """``"element,kernel"`` -> ``("element", "kernel")``; ConfigError on an unknown or repeated name."""
    names = tuple(part.strip() for part in str(text).split(",") if part.strip())
    if not names:
        raise ConfigError("--granularity: empty list; use element, vector, kernel, filter, channel or N:M such as 2:4")
    for name in names:
        parse_granularity(name)
    if len(set(names)) != len(names):
        raise ConfigError(f"--granularity lists a granularity twice: {text!r}")
    return names


def parse_sparsities(text: str) -> tuple[float, ...]:
    """``"0.5,0.7"`` -> sorted fractions in [0, 1); ConfigError otherwise."""
    try:
        values = [float(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--sparsity: expected comma-separated fractions in [0, 1), got {text!r}") from None
    if not values:
        raise ConfigError("--sparsity: empty list")
    bad = [v for v in values if not (0.0 <= v < 1.0) or not math.isfinite(v)]
    if bad:
        raise ConfigError(f"--sparsity: {bad[0]} is not a fraction in [0, 1)")
    if len(set(values)) != len(values):
        raise ConfigError(f"--sparsity lists a value twice: {text!r}")
    return tuple(sorted(values))


@dataclass
class SweepPoint:
    """One (granularity, conv sparsity) point."""

    granularity: str
    sparsity: float
    conv_weights: int
    conv_kept: int
    conv_kept_blocks: int
    top1_pruned: float | None  # after prune (+ retrain), before quantization
    top1_final: float | None  # of the written file
    file_bytes: int
    dense_bytes: int
    conv_pq_bytes: int  # estimate: bits x kept + index bits x entries + codebook (docs/reports.md)
    conv_pqh_bytes: int  # the conv layers' real stream bytes in the file
    conv_dense_bytes: int
    memrefs: MemRefs
    dcz: str

    @property
    def conv_density(self) -> float:
        return self.conv_kept / max(self.conv_weights, 1)

    def row(self, baseline: float | None) -> dict[str, Any]:
        """A flat CSV/JSON row."""
        def drop(top1: float | None) -> float | None:
            return None if top1 is None or baseline is None else round(100 * (baseline - top1), 4)

        return {
            "granularity": self.granularity, "sparsity": self.sparsity,
            "conv_density": round(self.conv_density, 6), "conv_weights": self.conv_weights,
            "conv_kept": self.conv_kept, "conv_kept_blocks": self.conv_kept_blocks,
            "top1_pruned": self.top1_pruned, "top1_final": self.top1_final,
            "drop_pp_pruned": drop(self.top1_pruned), "drop_pp_final": drop(self.top1_final),
            "file_bytes": self.file_bytes, "file_ratio": round(self.dense_bytes / max(self.file_bytes, 1), 4),
            "conv_pq_bytes": self.conv_pq_bytes, "conv_pqh_bytes": self.conv_pqh_bytes,
            "conv_ratio_pqh": round(self.conv_dense_bytes / max(self.conv_pqh_bytes, 1), 4),
            **{f"mem_{k}": v for k, v in self.memrefs.to_json().items()},
            "dcz": self.dcz,
        }


@dataclass
class SweepResult:
    """The points of a sweep, its baseline and settings, and the derived per-granularity summary."""

    baseline_top1: float | None
    points: list[SweepPoint]
    settings: dict[str, Any]
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        return [p.row(self.baseline_top1) for p in self.points]


def _pct(top1: float | None) -> str:
    return "-" if top1 is None else f"{100 * top1:.2f}%"


def measure_point(dcz: Any, path: Path, granularity: str, sparsity: float, convs: list[str],
             geometry: dict[str, dict[str, Any]], history: list[dict[str, Any]], dense: int, *,
             array: ScnnArray = SCNN) -> SweepPoint:
    from ..container.summary import summarize
    from .sizes import layer_sizes

    summary = summarize(dcz)
    by_name = {row["name"]: row for row in summary["layers"]}
    weights = kept = blocks = pq = pqh = 0
    refs = ZERO
    for name in convs:
        meta = dcz.meta(name)
        est = layer_sizes(dcz, name)
        weights += est["n_weights"]
        kept += est["n_kept"]
        blocks += est["n_kept_blocks"]
        pq += est["pq_bytes"]
        pqh += by_name[name]["bytes"]
        geo = geometry[name]
        mask = dcz.decode_mask(name)
        refs = refs + conv_memory_refs(mask, meta["block"], geo["in_hw"], geo["out_hw"],
                                       **array.layer_params(mask.shape, geo["out_hw"]),
                                       stride=geo.get("stride", (1, 1)), name=name)
    scored = [h for h in history if "top1" in h and h["stage"] != "baseline"]
    pruned = [h for h in scored if h["stage"] in ("prune", "retrain")]
    return SweepPoint(
        granularity=granularity, sparsity=sparsity, conv_weights=weights, conv_kept=kept, conv_kept_blocks=blocks,
        top1_pruned=pruned[-1]["top1"] if pruned else None, top1_final=scored[-1]["top1"] if scored else None,
        file_bytes=dcz.file_bytes, dense_bytes=dense, conv_pq_bytes=pq, conv_pqh_bytes=pqh,
        conv_dense_bytes=4 * weights, memrefs=refs, dcz=str(path),
    )


def _within(top1: float | None, baseline: float | None, tolerance_pp: float) -> bool:
    return top1 is not None and baseline is not None and 100 * (baseline - top1) <= tolerance_pp + 1e-9


def summarize_sweep(result: SweepResult) -> dict[str, Any]:
    """Per granularity: the no-loss sparsity, the point used at equal accuracy, and ratios against element.

    * ``no_loss_sparsity``: the highest grid sparsity such that it and every
      lower one keep the pruned top-1 within ``tolerance_pp`` of the baseline
      (None if the lowest already fails);
    * ``at_threshold``: the highest grid sparsity (same contiguous rule) whose
      *file* keeps top-1 within the tolerance, with its conv storage, file
      size and memory references;
    * ``memrefs_vs_element``: per grid sparsity, total memory references
      relative to element granularity at the same sparsity.
    """
    tol = float(result.settings.get("tolerance_pp", 0.1))
    base = result.baseline_top1
    by_g: dict[str, list[SweepPoint]] = {}
    for p in result.points:
        by_g.setdefault(p.granularity, []).append(p)
    element = {p.sparsity: p for p in by_g.get("element", [])}
    out: dict[str, Any] = {}
    for g, pts in by_g.items():
        pts = sorted(pts, key=lambda p: p.sparsity)
        no_loss = _last_contiguous(pts, lambda p: _within(p.top1_pruned, base, tol))
        at = _last_contiguous(pts, lambda p: _within(p.top1_final, base, tol))
        entry: dict[str, Any] = {
            "no_loss_sparsity": no_loss.sparsity if no_loss else None,
            "no_loss_conv_density": round(no_loss.conv_density, 6) if no_loss else None,
            "memrefs_vs_element": {
                f"{p.sparsity:g}": round(p.memrefs.total / element[p.sparsity].memrefs.total, 4)
                for p in pts if p.sparsity in element and element[p.sparsity].memrefs.total
            },
            "memrefs_window_vs_element": {
                f"{p.sparsity:g}": round(p.memrefs.total_window / element[p.sparsity].memrefs.total_window, 4)
                for p in pts if p.sparsity in element and element[p.sparsity].memrefs.total_window
            },
            "at_threshold": None,
        }
        if at is not None:
            entry["at_threshold"] = {
                "sparsity": at.sparsity, "top1_final": at.top1_final, "conv_pq_bytes": at.conv_pq_bytes,
                "conv_pqh_bytes": at.conv_pqh_bytes, "conv_ratio_pqh": round(at.conv_dense_bytes / max(at.conv_pqh_bytes, 1), 3),
                "file_bytes": at.file_bytes, "file_ratio": round(at.dense_bytes / max(at.file_bytes, 1), 3),
                "memrefs_total": at.memrefs.total, "memrefs_total_window": at.memrefs.total_window,
            }
        out[g] = entry
    ref = out.get("element", {}).get("at_threshold")
    for g, entry in out.items():
        at = entry["at_threshold"]
        if ref and at:
            entry["at_threshold"]["conv_bytes_vs_element"] = round(at["conv_pqh_bytes"] / ref["conv_pqh_bytes"], 4)
            entry["at_threshold"]["memrefs_vs_element"] = round(at["memrefs_total"] / ref["memrefs_total"], 4)
            entry["at_threshold"]["memrefs_window_vs_element"] = round(
                at["memrefs_total_window"] / ref["memrefs_total_window"], 4)
    return out


def _last_contiguous(points: list[SweepPoint], ok: Callable[[SweepPoint], bool]) -> SweepPoint | None:
    best = None
    for p in points:
        if not ok(p):
            break
        best = p
    return best


# ------------------------------------------------------------------------------ outputs


def write_sweep(result: SweepResult, out_dir: str | Path) -> list[Path]:
    """Write ``sweep.csv``, ``sweep.json``, ``sweep.md`` and the PNG plots into ``out_dir``."""
    out = Path(out_dir)
    rows = result.rows()
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["granularity"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    paths = [out / "sweep.csv", out / "sweep.json", out / "sweep.md"]
    write_bytes_atomic(paths[0], buf.getvalue().encode())
    write_bytes_atomic(paths[1], (json.dumps(sweep_to_json(result), indent=2, sort_keys=True) + "\n").encode())
    plots = _plots(result, out)
    write_bytes_atomic(paths[2], format_sweep_markdown(result, [p.name for p in plots]).encode())
    return paths + plots


def _plots(result: SweepResult, out: Path) -> list[Path]:
    from .plots import _figure, save_png

    by_g: dict[str, list[SweepPoint]] = {}
    for p in result.points:
        by_g.setdefault(p.granularity, []).append(p)
    base = result.baseline_top1
    tol = float(result.settings.get("tolerance_pp", 0.1))

    fig = _figure(6.5, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    for g, pts in by_g.items():
        pts = sorted(pts, key=lambda p: p.sparsity)
        xs = [1 - p.conv_density for p in pts]
        ax.plot(xs, [100 * (p.top1_pruned or 0) for p in pts], "o-", label=g)
    if base is not None:
        ax.axhline(100 * base, color="k", ls="--", lw=0.8, label="baseline")
        ax.axhspan(100 * base - tol, 100 * base, color="k", alpha=0.08, label=f"within {tol:g} pp")
    ax.set(xlabel="conv-layer sparsity (fraction of weights pruned)", ylabel="top-1 after pruning + retraining (%)",
           title="accuracy vs sparsity by granularity")
    ax.legend(fontsize=8)
    acc = save_png(fig, out / "accuracy_vs_sparsity.png")

    fig = _figure(6.5, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    for g, pts in by_g.items():
        pts = sorted(pts, key=lambda p: p.sparsity)
        ax.plot([1 - p.conv_density for p in pts], [p.conv_pqh_bytes / 1024 for p in pts], "o-", label=g)
    ax.set(xlabel="conv-layer sparsity", ylabel="conv layers in the file (KiB, indices included)",
           title="storage of the conv layers (P+Q+H)")
    ax.legend(fontsize=8)
    size = save_png(fig, out / "conv_storage.png")

    fig = _figure(6.5, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    grans = list(by_g)
    sparsities = sorted({p.sparsity for p in result.points})
    width = 0.8 / max(len(grans), 1)
    lookup = {(p.granularity, p.sparsity): p for p in result.points}
    for i, g in enumerate(grans):
        for j, s in enumerate(sparsities):
            p = lookup.get((g, s))
            if p is None:
                continue
            r = p.memrefs
            x = j + (i - (len(grans) - 1) / 2) * width
            bottom = 0.0
            for part, color in (("weights", "tab:blue"), ("index", "tab:orange"), ("activations", "tab:green"),
                                ("outputs", "tab:gray")):
                value = getattr(r, part) / 1e6
                ax.bar(x, value, width, bottom=bottom, color=color, edgecolor="white", lw=0.3,
                       label=part if (i, j) == (0, 0) else None)
                bottom += value
            ax.plot([x], [r.total_window / 1e6], marker="_", color="k", markersize=10, ls="none",
                    label="total, window reuse" if (i, j) == (0, 0) else None)
            ax.text(x, bottom, g[0].upper(), ha="center", va="bottom", fontsize=6)
    ax.set_xticks(range(len(sparsities)), [f"{s:g}" for s in sparsities])
    ax.set(xlabel="conv sparsity (E=element, V=vector, K=kernel, F=filter, C=channel)",
           ylabel="memory references (millions)", title="conv memory references (SCNN-like model)")
    ax.legend(fontsize=8)
    mem = save_png(fig, out / "memory_refs.png")
    return [acc, size, mem]


def format_sweep_markdown(result: SweepResult, plot_names: Sequence[str] = ()) -> str:
    """The sweep table and the per-granularity summary as Markdown."""
    s = result.settings
    base = result.baseline_top1
    lines = [
        "# Granularity sweep",
        "",
        f"Baseline top-1 {_pct(base)} on `{s['data']}`; conv layers pruned at each granularity and sparsity, "
        f"fc layers at element granularity, sparsity {s['fc_sparsity']:g}; {s['retrain_epochs']} retraining "
        f"epoch(s), bits {s['bits']}, {s['finetune_epochs']} fine-tuning epoch(s), seed {s['seed']}; "
        f"{result.seconds:.0f} s.",
        "",
        "| granularity | sparsity | conv density | top-1 pruned | top-1 file | conv bytes (P+Q+H) | file bytes | "
        "ratio | mem refs | vs element | mem refs (window) | vs element |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in result.points:
        entry = result.summary.get(p.granularity, {})
        rel = entry.get("memrefs_vs_element", {}).get(f"{p.sparsity:g}")
        rel_w = entry.get("memrefs_window_vs_element", {}).get(f"{p.sparsity:g}")
        lines.append(
            f"| {p.granularity} | {p.sparsity:g} | {100 * p.conv_density:.1f}% | {_pct(p.top1_pruned)} | "
            f"{_pct(p.top1_final)} | {p.conv_pqh_bytes:,} | {p.file_bytes:,} | "
            f"{p.dense_bytes / max(p.file_bytes, 1):.1f}x | {p.memrefs.total:,} | "
            f"{'-' if rel is None else f'{rel:.2f}'} | {p.memrefs.total_window:,} | "
            f"{'-' if rel_w is None else f'{rel_w:.2f}'} |"
        )
    lines += [
        "",
        f"## Per granularity (no loss = within {s['tolerance_pp']:g} pp of the baseline)",
        "",
        "| granularity | no-loss sparsity | at the threshold: sparsity | conv bytes | vs element | file ratio (x) | "
        "mem refs vs element | (window) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g, e in result.summary.items():
        at = e["at_threshold"] or {}
        fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
        lines.append(
            f"| {g} | {fmt(e['no_loss_sparsity'], 'g')} | {fmt(at.get('sparsity'), 'g')} | "
            f"{fmt(at.get('conv_pqh_bytes'), ',')} | {fmt(at.get('conv_bytes_vs_element'), '.2f')} | "
            f"{fmt(at.get('file_ratio'), '.1f')} | {fmt(at.get('memrefs_vs_element'), '.2f')} | "
            f"{fmt(at.get('memrefs_window_vs_element'), '.2f')} |"
        )
    lines += ["", "Memory references of the conv layers (docs/memory_model.md): weights + index + activations + "
              "outputs, SCNN-like Cartesian product; \"window\": the optimistic count where each kept block reuses "
              "its input window; dense activations in both."]
    if plot_names:
        lines += [""] + [f"![{Path(n).stem}]({n})" for n in plot_names]
    return "\n".join(lines) + "\n"


def sweep_to_json(result: SweepResult) -> dict[str, Any]:
    """The sweep as one JSON-able dict (what ``sweep.json`` holds)."""
    return {"baseline_top1": result.baseline_top1, "settings": result.settings, "seconds": result.seconds,
            "points": result.rows(), "summary": result.summary}


__all__ = ["SweepPoint", "SweepResult", "measure_point", "parse_granularities", "parse_sparsities", "summarize_sweep",
           "sweep_to_json", "write_sweep"]
