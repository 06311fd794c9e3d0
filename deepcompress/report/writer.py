"""Writing the compression report beside a ``.dcz`` file: Markdown, JSON and PNG plots.

For ``model.dcz`` the files are ``model.report.md``, ``model.report.json`` and
``model.report/*.png`` (definitions in docs/reports.md).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_bytes_atomic
from ..errors import OutputError
from .collector import ReportCollector
from .sizes import model_sizes, stage_size_models

REPORT_VERSION = 1


def report_paths(out: str | os.PathLike[str], dcz_path: str | os.PathLike[str]) -> tuple[Path, Path, Path]:
    """(markdown, json, plot folder) for ``out``: a folder (existing, or named with a trailing slash), the
    ``.dcz`` path itself, or a prefix."""
    p = Path(out)
    if p.is_dir() or str(out).endswith(("/", os.sep)):
        prefix = p / Path(dcz_path).stem
    elif p.suffix == ".dcz":
        prefix = p.with_suffix("")
    else:
        prefix = p
    return (prefix.with_name(prefix.name + ".report.md"), prefix.with_name(prefix.name + ".report.json"),
            prefix.with_name(prefix.name + ".report"))


def _history(result: Any, dcz: Any) -> list[dict[str, Any]]:
    if result is not None and getattr(result, "history", None):
        return [dict(h) for h in result.history]
    metrics = dcz.metrics or {}
    return [dict(h) for h in metrics.get("history") or []]


def stage_rows(history: list[dict[str, Any]], sizes: dict[str, int]) -> list[dict[str, Any]]:
    """One row per stage: its accuracy and the size model (and bytes) that describes the network then."""
    models = stage_size_models([h["stage"] for h in history])
    rows, last_top1 = [], None
    for record, model in zip(history, models):
        top1 = record.get("top1")
        exact = False
        if top1 is None and record["stage"] == "encode":
            top1, exact = last_top1, True  # the file decodes to exactly the last evaluated weights
        last_top1 = top1 if top1 is not None else last_top1
        rows.append({
            "stage": record["stage"], "top1": top1,
            "error_pct": None if top1 is None else round(100.0 * (1.0 - top1), 6),
            "size_model": model, "bytes": sizes[model],
            "compression_ratio": sizes["dense"] / max(sizes[model], 1), "accuracy_of_decoded_file": exact,
        })
    return rows


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _plots(dcz: Any, layers: list[dict[str, Any]], collector: ReportCollector | None, folder: Path) -> list[Path]:
    from ..codecs import relindex
    from .plots import streams_png, weights_png

    out: list[Path] = []
    for layer in layers:
        name = layer["name"]
        if layer["kind"] != "quantized":
            continue
        labels, codebook = dcz.decode_labels(name)
        before = collector.before_sharing.get(name) if collector and collector.before_sharing else None
        initial = collector.initial_centroids.get(name) if collector else None
        out.append(weights_png(folder / f"{_safe(name)}_weights.png", name, before, initial, labels, codebook))
        gaps = None
        if layer["index_bits"]:
            kept = relindex.kept_blocks(labels >= 0, layer["block"], name)
            gaps, _ = relindex.encode_gaps(kept, int(layer["index_bits"]))
        out.append(streams_png(folder / f"{_safe(name)}_streams.png", name, labels[labels >= 0], int(codebook.size),
                               gaps, layer["index_bits"]))
    return out


def write_report(out: str | os.PathLike[str], collector: ReportCollector | None, dcz_path: str | os.PathLike[str],
                 compress_result: Any = None, *, plots: bool = True) -> list[Path]:
    """Write ``*.report.md``, ``*.report.json`` and ``*.report/*.png`` for ``dcz_path``; returns the paths.

    ``out`` is a folder, the ``.dcz`` path itself or a path prefix.
    ``collector`` (may be None) adds the weights before sharing to the plots;
    ``compress_result`` (a :class:`~deepcompress.compression.CompressResult`,
    may be None) gives the per-stage accuracy, else the file's metrics do.
    """
    from ..container import read_dcz
    from .plots import stages_png

    md_path, json_path, folder = report_paths(out, dcz_path)
    dcz = read_dcz(dcz_path)
    if str(out).endswith(("/", os.sep)):  # a folder named with a trailing slash: made if new
        try:
            md_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create report folder {md_path.parent}: {exc.strerror}") from None
    measured = model_sizes(dcz)
    sizes, layers, summary = measured["sizes"], measured["layers"], measured["summary"]
    history = _history(compress_result, dcz)
    rows = stage_rows(history, sizes) if history else []
    written: list[Path] = []
    plot_paths: list[Path] = []
    if plots:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create report folder {folder}: {exc.strerror}") from None
        plot_paths = _plots(dcz, layers, collector, folder)
        if rows:
            plot_paths.insert(0, stages_png(folder / "stages.png", [r["stage"] for r in rows],
                                            [r["bytes"] for r in rows], [r["top1"] for r in rows]))
    report = {
        "report_version": REPORT_VERSION,
        "file": str(dcz_path),
        "file_bytes": dcz.file_bytes,
        "sizes": sizes,
        "compression_ratio": {k: sizes["dense"] / max(v, 1) for k, v in sizes.items()},
        # the input's bytes in its own dtypes (a float16/bfloat16 model: half of "dense", which is float32)
        "input_bytes": summary.get("input_bytes"),
        "input_ratio": summary.get("input_ratio"),
        "other_tensor_bytes": measured["other_tensor_bytes"],
        "stages": rows,
        "layers": layers,
        "overhead_bytes": summary["overhead_bytes"],
        "recipe": summary.get("recipe"),
        "timings": list(getattr(compress_result, "timings", []) or []),
        "stages_ran": collector.ran if collector is not None else None,
        "weights_before_sharing_recorded": bool(collector and collector.before_sharing),
        "plots": [str(p.relative_to(md_path.parent)) for p in plot_paths],
        "left_dense": summary.get("dense_reasons") or {},
        "tied": summary.get("tied") or {},
    }
    write_bytes_atomic(json_path, (json.dumps(report, indent=2, sort_keys=True, default=_jsonable) + "\n").encode())
    write_bytes_atomic(md_path, format_markdown(report, Path(dcz_path).name).encode())
    written += [md_path, json_path, *plot_paths]
    return written


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _f(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_markdown(report: dict[str, Any], file_name: str) -> str:
    """The report as Markdown (tables of stages and layers, links to the plots)."""
    s = report["sizes"]
    given = report.get("input_bytes")
    as_given = (f"As given (its own dtypes) {given:,} bytes -> file {s['P+Q+H']:,} bytes "
                f"({report['input_ratio']:.1f}x smaller); " if given and given != s["dense"] and report.get("input_ratio")
                else "")
    lines = [
        f"# Compression report: {file_name}",
        "",
        f"{as_given}{'d' if as_given else 'D'}ense float32 {s['dense']:,} bytes -> file {s['P+Q+H']:,} bytes "
        f"({report['compression_ratio']['P+Q+H']:.1f}x smaller). Size models are defined in docs/reports.md.",
        "",
        "## After each stage (Deep Compression Figure 1)",
        "",
        "| stage | top-1 | error | size model | bytes | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["stages"]:
        top1 = _f(None if r["top1"] is None else 100 * r["top1"], ".2f")
        note = " (decoded file)" if r["accuracy_of_decoded_file"] else ""
        lines.append(f"| {r['stage']} | {top1}%{note} | {_f(r['error_pct'], '.2f')}% | {r['size_model']} | "
                     f"{r['bytes']:,} | {r['compression_ratio']:.1f}x |")
    lines += [
        "",
        f"Sizes: dense {s['dense']:,}, P {s['P']:,}, P+Q {s['P+Q']:,}, P+Q+H {s['P+Q+H']:,} bytes "
        f"(other tensors {report['other_tensor_bytes']:,} bytes raw in P and P+Q; "
        f"container overhead {report['overhead_bytes']:,} bytes in P+Q+H).",
        "",
        "## Per layer",
        "",
        "| layer | shape | granularity | weights | kept | W bits P+Q | W bits P+Q+H | idx bits P+Q | "
        "idx bits P+Q+H | P bytes | P+Q bytes | P+Q+H bytes | rate P+Q+H |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for layer in report["layers"]:
        lines.append(
            f"| {layer['name']} | {'x'.join(map(str, layer['shape']))} | {layer['granularity']} | "
            f"{layer['n_weights']:,} | {_f(None if layer['density'] is None else 100 * layer['density'], '.1f')}% | "
            f"{layer['bits']} | {_f(layer['weight_bits_pqh'], '.2f')} | {layer['index_bits'] or '-'} | "
            f"{_f(layer['index_bits_pqh'], '.2f')} | {layer['p_bytes']:,} | {layer['pq_bytes']:,} | "
            f"{layer['pqh_bytes']:,} | {_f(None if layer['compress_rate_pqh'] is None else 100 * layer['compress_rate_pqh'], '.2f')}% |"
        )
    if report.get("tied"):
        lines += ["", "## Shared (tied) parameters", "", "| name | stored as |", "|---|---|"]
        lines += [f"| {alias} | {canonical} |" for alias, canonical in report["tied"].items()]
    if report.get("left_dense"):
        lines += ["", "## Left dense", "", "| why | tensors |", "|---|---|"]
        lines += [f"| {why} | {', '.join(names)} |" for why, names in report["left_dense"].items()]
    if report["plots"]:
        lines += ["", "## Plots", ""]
        if not report["weights_before_sharing_recorded"]:
            lines += ["(The weights before sharing were not recorded: the stages before quantize came from the "
                      "cache.)", ""]
        lines += [f"![{Path(p).stem}]({p})" for p in report["plots"]]
    return "\n".join(lines) + "\n"


def finish_report(collector: ReportCollector | None, output_path: str | os.PathLike[str],
                  result: Any, *, plots: bool = False) -> list[Path]:
    """Write the report beside ``output_path`` (the ``.dcz`` just written by :func:`~deepcompress.compression.compress`)."""
    return write_report(output_path, collector, output_path, result, plots=plots)
