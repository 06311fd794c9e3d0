"""Sensitivity analysis: prune one layer at a time and watch the accuracy.

For each chosen layer and each tested sparsity the layer alone is pruned
one-shot (no retraining) from its *original* weights, the caller's
``evaluate_fn(model) -> top-1 accuracy in [0, 1]`` is called, and the weights
are restored exactly. The table writes to CSV and to a PNG (one curve per
layer). :func:`pick_sparsities` then picks, per layer, the highest tested
sparsity whose accuracy drop stays within a budget.

Accuracy drops are absolute fractions: ``max_accuracy_drop=0.001`` allows a
drop from 0.9850 to 0.9840, i.e. 0.1 percentage points (``0.1`` would allow
10 percentage points, not 0.1 points).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write, write_bytes_atomic
from ..errors import ConfigError, InputFileError
from ..granularity import Granularity
from .masks import GranularityLike, blocked_layers, layer_mask

DEFAULT_SPARSITIES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
CSV_COLUMNS = ("tensor", "kind", "granularity", "sparsity", "accuracy", "accuracy_drop")


@dataclass(frozen=True)
class SensitivityRow:
    tensor: str
    kind: str
    granularity: str
    sparsity: float
    accuracy: float


@dataclass
class SensitivityTable:
    """Accuracy of the model with one layer pruned, per (layer, sparsity)."""

    baseline: float
    rows: list[SensitivityRow] = field(default_factory=list)

    def layers(self) -> list[str]:
        """The tensors in the table, in first-seen order."""
        return list(dict.fromkeys(r.tensor for r in self.rows))

    def curve(self, tensor: str) -> list[tuple[float, float]]:
        """``(sparsity, accuracy)`` pairs of one tensor, by increasing sparsity."""
        return sorted((r.sparsity, r.accuracy) for r in self.rows if r.tensor == tensor)

    def to_csv_text(self) -> str:
        """CSV with a header; every layer also gets a sparsity-0 row holding the baseline."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for tensor in self.layers():
            first = next(r for r in self.rows if r.tensor == tensor)
            writer.writerow([tensor, first.kind, first.granularity, "0", f"{self.baseline:.6f}", "0.000000"])
            for r in sorted((r for r in self.rows if r.tensor == tensor), key=lambda r: r.sparsity):
                writer.writerow(
                    [r.tensor, r.kind, r.granularity, f"{r.sparsity:g}", f"{r.accuracy:.6f}",
                     f"{self.baseline - r.accuracy:.6f}"]
                )
        return buf.getvalue()

    def write_csv(self, path: str | Path) -> Path:
        """Write :meth:`to_csv_text` atomically; returns the path."""
        p = Path(path)
        with atomic_write(p) as fh:
            fh.write(self.to_csv_text().encode())
        return p

    @classmethod
    def read_csv(cls, path: str | Path) -> "SensitivityTable":
        """Read a table written by :meth:`write_csv`."""
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise InputFileError(f"cannot read sensitivity table {p}: {exc.strerror}") from None
        reader = csv.DictReader(io.StringIO(text))
        if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
            raise InputFileError(f"{p}: not a sensitivity table (columns {reader.fieldnames})")
        baseline = None
        rows = []
        for line in reader:
            s, acc = float(line["sparsity"]), float(line["accuracy"])
            if s == 0.0:
                baseline = acc
                continue
            rows.append(SensitivityRow(line["tensor"], line["kind"], line["granularity"], s, acc))
        if baseline is None:
            raise InputFileError(f"{p}: the table has no baseline (sparsity 0) rows")
        return cls(baseline, rows)

    def plot_png(self) -> bytes:
        """A PNG with one accuracy-vs-sparsity curve per layer (matplotlib, Agg canvas)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7.5, 4.8), dpi=110)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        for tensor in self.layers():
            pts = [(0.0, self.baseline)] + self.curve(tensor)
            ax.plot([100 * s for s, _ in pts], [100 * a for _, a in pts], marker="o", markersize=3, label=tensor)
        ax.axhline(100 * self.baseline, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xlabel("sparsity of the pruned layer (%)")
        ax.set_ylabel("top-1 accuracy (%)")
        grans = sorted({r.granularity for r in self.rows})
        ax.set_title(f"Pruning sensitivity, one layer at a time ({', '.join(grans)})")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", loc="lower left")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()

    def write_png(self, path: str | Path) -> Path:
        p = Path(path)
        write_bytes_atomic(p, self.plot_png())
        return p


def sensitivity(
    model: torch.nn.Module,
    evaluate_fn: Callable[[torch.nn.Module], float],
    granularity: GranularityLike = Granularity.ELEMENT,
    sparsities: Sequence[float] = DEFAULT_SPARSITIES,
    layers: Iterable[str] | None = None,
    *,
    fc_granularity: GranularityLike | None = None,
    norm: str = "l1",
    baseline: float | None = None,
    progress: Callable[[str, float, float], Any] | None = None,
) -> SensitivityTable:
    """Prune each layer alone at each sparsity, evaluate, restore; return the table.

    ``evaluate_fn`` must return top-1 accuracy in [0, 1]. ``baseline`` is
    measured with ``evaluate_fn`` unless given. ``progress(tensor, sparsity,
    accuracy)`` is called after each evaluation.
    """
    levels = sorted({float(s) for s in sparsities})
    if not levels or any(not 0.0 < s < 1.0 for s in levels):
        raise ConfigError(f"sensitivity sparsities must lie in (0, 1), got {list(sparsities)}")
    chosen = blocked_layers(model, granularity, fc_granularity, layers)
    if not chosen:
        raise ConfigError("sensitivity: the model has no compressible layers")
    if any(layer.pattern is not None for layer in chosen):
        raise ConfigError("sensitivity scans sparsities; an N:M pattern fixes the sparsity (use a granularity name)")
    base = _accuracy(evaluate_fn(model), "baseline") if baseline is None else _accuracy(baseline, "baseline")
    table = SensitivityTable(base)
    for layer in chosen:
        weight = layer.ref.weight
        saved = weight.detach().clone()
        try:
            for s in levels:
                mask = layer_mask(saved, s, layer.block, norm)
                with torch.no_grad():
                    weight.copy_(saved)
                    weight.masked_fill_(~mask, 0.0)
                acc = _accuracy(evaluate_fn(model), f"{layer.name} at {s}")
                table.rows.append(SensitivityRow(layer.name, layer.ref.kind, layer.label, s, acc))
                if progress is not None:
                    progress(layer.name, s, acc)
        finally:
            with torch.no_grad():
                weight.copy_(saved)
    return table


def _accuracy(value: Any, what: str) -> float:
    try:
        acc = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"evaluate_fn returned {value!r} for {what}; expected top-1 accuracy in [0, 1]") from None
    if not (0.0 <= acc <= 1.0) or math.isnan(acc):
        raise ConfigError(f"evaluate_fn returned {acc} for {what}; expected top-1 accuracy in [0, 1], not percent")
    return acc


def pick_sparsities(
    table: SensitivityTable,
    max_accuracy_drop: float = 0.001,
    baseline_accuracy: float | None = None,
    *,
    contiguous: bool = True,
) -> dict[str, float]:
    """Per tensor, the highest tested sparsity with ``baseline - accuracy <= max_accuracy_drop``.

    ``max_accuracy_drop`` is an absolute fraction (0.001 = 0.1 percentage
    points). ``baseline_accuracy`` defaults to the table's baseline. With
    ``contiguous`` (default) the search stops at the first sparsity over the
    budget, so a lucky noisy point beyond a failing one is not chosen; with
    ``contiguous=False`` any tested sparsity within the budget counts. A layer
    with no admissible sparsity gets 0.0.
    """
    budget = float(max_accuracy_drop)
    if not 0.0 <= budget < 1.0:
        raise ConfigError(f"max_accuracy_drop {budget} must be a fraction in [0, 1) (0.001 = 0.1 points)")
    base = table.baseline if baseline_accuracy is None else _accuracy(baseline_accuracy, "baseline_accuracy")
    picked: dict[str, float] = {}
    for tensor in table.layers():
        best = 0.0
        for s, acc in table.curve(tensor):
            if base - acc <= budget + 1e-12:
                best = s
            elif contiguous:
                break
        picked[tensor] = best
    return picked


def write_study(
    table: SensitivityTable,
    out_dir: str | Path,
    *,
    max_accuracy_drop: float,
    granularity: Any,
    fc_granularity: Any = None,
    norm: str = "l1",
) -> dict[str, Any]:
    """Write ``sensitivity.csv``, ``sensitivity.png`` and ``picks.json`` into the folder ``out_dir``.

    ``picks.json`` (returned as a dict) holds the baseline, the budget, the
    picks of :func:`pick_sparsities` and the matching ``--sparsity`` spec, and
    the granularity, fc granularity and norm the table was made with, as given.
    """
    out = Path(out_dir)
    picks = pick_sparsities(table, max_accuracy_drop)
    table.write_csv(out / "sensitivity.csv")
    table.write_png(out / "sensitivity.png")
    spec = ",".join(f"{name}={s:g}" for name, s in picks.items())
    summary = {"baseline_top1": table.baseline, "max_accuracy_drop": max_accuracy_drop, "picks": picks,
               "sparsity_spec": spec, "granularity": granularity,
               "fc_granularity": fc_granularity or granularity, "norm": norm}
    write_bytes_atomic(out / "picks.json", (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode())
    return summary


__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_SPARSITIES",
    "SensitivityRow",
    "SensitivityTable",
    "pick_sparsities",
    "sensitivity",
    "write_study",
]
