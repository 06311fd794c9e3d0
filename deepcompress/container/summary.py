"""The ``inspect`` report: per-layer sizes and bit counts of a ``.dcz`` file.

Per compressed layer it gives the columns of Deep Compression's Tables 2-5:

- ``n_weights``: weights in the layer; ``density``: ``n_nonzero / n_weights``;
- ``weight_bits_pq``: bits per weight after quantization (``bits``; 32 for
  unquantized float values);
- ``weight_bits_pqh``: coded bits of the weight stream (``index`` for
  quantized layers, ``values`` for float ones) per kept weight;
- ``index_bits_pq``: bits of one relative index (``index_bits``; for an N:M
  layer whose positions are pattern ids, the id's bits over the N weights it places);
- ``index_bits_pqh``: coded bits of the ``gap`` stream (or the N:M ``pattern``
  stream) per kept weight, as the paper counts (fillers are paid for, not counted);
- ``bytes``: the layer's stream bytes (its codebook included); ``compress_rate``: ``bytes / (4 *
  n_weights)``.

Tensors stored exactly in their own dtype (kind ``dense`` or ``split_float``)
are listed apart, each with its ``codec`` (``split_float``, or the ``data``
stream's ``zstd`` / ``raw``), ``bits_per_weight`` (stream bits per element)
against ``dtype_bits``; ``float_totals`` sums them per float dtype (a
``compress --lossless`` file is all of this kind).

Every byte of the file is accounted for: the sum of the layers' bytes, the
dense tensors' bytes and ``overhead_bytes`` (preamble, header, padding,
trailer) is ``file_bytes``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..blocks import block_size
from . import format as fmt
from .api import DczFile

WEIGHT_STREAMS = ("index", "values")
FLOAT_BITS = {"float8_e4m3fn": 8, "float8_e5m2": 8, "bfloat16": 16, "float16": 16, "float32": 32, "float64": 64}
GAP_STREAM = "gap"
PATTERN_STREAM = "pattern"  # N:M positions as pattern ids (codecs/nmpattern.py)


def left_dense_lines(reasons: Any) -> list[str]:
    """``left dense: a, b, c, ... (n tensors): reason`` for each reason -> names of tensors stored exactly."""
    out = []
    for reason, names in reasons.items():
        shown = ", ".join(map(str, names[:3])) + (f", ... ({len(names)} tensors)" if len(names) > 3 else "")
        out.append(f"left dense: {shown}: {reason}")
    return out


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _shape(meta: dict[str, Any]) -> list[int] | None:
    shape = meta.get("shape")
    if isinstance(shape, list) and all(_int(d) is not None and d >= 0 for d in shape):
        return list(shape)
    return None


def _kept_weights(meta: dict[str, Any], shape: list[int] | None) -> int | None:
    """``n_kept_blocks`` times the block size (the meta stores only the block count)."""
    kept, block = _int(meta.get("n_kept_blocks")), meta.get("block")
    if kept is None or shape is None or not isinstance(block, list) or len(block) != len(shape):
        return None
    if not all(_int(b) is not None and b >= 1 for b in block):
        return None
    return kept * block_size(block)


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or not den:
        return None
    return num / den


def _codecs(meta: dict[str, Any], streams: list[str]) -> dict[str, str | None]:
    info = meta.get("streams")
    out: dict[str, str | None] = {}
    for name in streams:
        rec = info.get(name) if isinstance(info, dict) else None
        codec = rec.get("codec") if isinstance(rec, dict) else None
        out[name] = codec if isinstance(codec, str) else None
    return out


def summarize(dcz: DczFile, *, validate: bool = True) -> dict[str, Any]:
    """The report of ``dcz`` as a JSON-able dict (see the module docstring).

    With ``validate`` every tensor's meta is first checked by the codecs'
    ``validate_meta`` (raising CodecError on a bad one); without it, values
    that are missing or of the wrong type show as None.
    """
    if validate:
        dcz.validate_all()
    extra = dcz.extra if isinstance(dcz.extra, dict) else {}
    layer_kind = {n: k for k, names in _dict(extra.get("layer_kinds")).items() if isinstance(names, list)
                  for n in names}
    tied = {a: c for a, c in _dict(extra.get("tied")).items() if isinstance(c, str)}
    layers: list[dict[str, Any]] = []
    dense: list[dict[str, Any]] = []
    n_parameters = 0
    stream_total = 0
    for name in dcz.tensor_names:
        meta = dcz.meta(name)
        sizes = dcz.stream_sizes(name)
        n_bytes = sum(sizes.values())
        stream_total += n_bytes
        shape = _shape(meta)
        n_elements = math.prod(shape) if shape is not None else None
        n_parameters += n_elements or 0
        codecs = _codecs(meta, list(sizes))
        if meta.get("kind") in ("dense", "split_float"):  # stored exactly in their own dtype
            dense.append({
                "name": name, "shape": shape, "dtype": meta.get("dtype"), "n_elements": n_elements,
                "kind": meta.get("kind"), "codec": _exact_codec(meta.get("kind"), codecs),
                "bits_per_weight": _ratio(8 * n_bytes, n_elements),
                "dtype_bits": FLOAT_BITS.get(meta.get("dtype")) if isinstance(meta.get("dtype"), str) else None,
                "bytes": n_bytes, "codecs": codecs, "stream_bytes": sizes,
            })
            continue
        kind = meta.get("kind")
        n_weights = n_elements
        n_nonzero = _kept_weights(meta, shape)
        weight_stream = next((s for s in WEIGHT_STREAMS if s in sizes), None)
        bits = _int(meta.get("bits"))
        layers.append({
            "name": name,
            "shape": shape,
            "kind": kind,
            "layer_kind": layer_kind.get(name),
            "tied": sorted(a for a, c in tied.items() if c == name),
            "granularity": meta.get("granularity"),
            "n_weights": n_weights,
            "n_nonzero": n_nonzero,
            "density": _ratio(n_nonzero, n_weights),
            "weight_bits_pq": 32 if kind == "float" else bits,
            "weight_bits_pqh": _ratio(8 * sizes[weight_stream], n_nonzero) if weight_stream else None,
            "index_bits_pq": _int(meta.get("index_bits")) if "nm" not in meta else _nm_bits(meta["nm"]),
            "index_bits_pqh": next((_ratio(8 * sizes[s], n_nonzero) for s in (GAP_STREAM, PATTERN_STREAM)
                                    if s in sizes), None),
            "bytes": n_bytes,
            "compress_rate": _ratio(n_bytes, 4 * n_weights if n_weights is not None else None),
            "n_fillers": _int(meta.get("n_fillers", 0)),
            "codecs": codecs,
            "stream_bytes": sizes,
        })
    layout = dcz.layout
    padding = layout.header_padding + layout.data_length - stream_total
    overhead = {
        "preamble": fmt.PREAMBLE_SIZE,
        "header": layout.header_length,
        "padding": padding,
        "trailer": fmt.TRAILER_SIZE,
    }
    dense_bytes = 4 * n_parameters
    input_bytes = _int(extra.get("input_bytes"))
    return {
        "input_bytes": input_bytes,
        "input_ratio": _ratio(input_bytes, dcz.file_bytes),
        "tied": tied,
        "dense_reasons": {r: n for r, n in _dict(extra.get("dense")).items() if isinstance(n, list)},
        "format_version": f"{layout.major}.{layout.minor}",
        "tool_version": dcz.tool_version,
        "file_bytes": dcz.file_bytes,
        "n_parameters": n_parameters,
        "dense_bytes": dense_bytes,
        "compression_ratio": _ratio(dense_bytes, dcz.file_bytes),
        "layers": layers,
        "layer_totals": _totals(layers),
        "dense_tensors": dense,
        "float_totals": _float_totals(dense),
        "overhead_bytes": sum(overhead.values()),
        "overhead": overhead,
        "arch": dcz.arch,
        "recipe": dcz.recipe,
        "metrics": dcz.metrics,
        "extra": dcz.extra,
    }


def _exact_codec(kind: Any, codecs: dict[str, str | None]) -> str | None:
    """``split_float`` for that kind; for ``dense``, its ``data`` stream's codec (``zstd`` or ``raw``)."""
    return "split_float" if kind == "split_float" else codecs.get("data")


def _float_totals(dense: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per float dtype, over the exactly stored tensors: tensors, weights, bytes, bits per weight, codecs used."""
    out: dict[str, dict[str, Any]] = {}
    for t in dense:
        if t["dtype"] not in FLOAT_BITS or t["n_elements"] is None:
            continue
        row = out.setdefault(t["dtype"], {"n_tensors": 0, "n_weights": 0, "bytes": 0,
                                          "dtype_bits": FLOAT_BITS[t["dtype"]], "codecs": {}})
        row["n_tensors"] += 1
        row["n_weights"] += t["n_elements"]
        row["bytes"] += t["bytes"]
        codec = t["codec"] or "?"
        row["codecs"][codec] = row["codecs"].get(codec, 0) + 1
    for row in out.values():
        row["bits_per_weight"] = _ratio(8 * row["bytes"], row["n_weights"])
    return dict(sorted(out.items()))


def _totals(layers: list[dict[str, Any]]) -> dict[str, Any]:
    def total(key: str) -> int | None:
        values = [layer[key] for layer in layers]
        return sum(values) if values and None not in values else None

    def stream_bits(streams: tuple[str, ...]) -> int | None:
        out = 0
        for layer in layers:
            found = [layer["stream_bytes"][s] for s in streams if s in layer["stream_bytes"]]
            if not found:
                return None
            out += 8 * found[0]
        return out if layers else None

    n_weights, n_nonzero, n_bytes = total("n_weights"), total("n_nonzero"), total("bytes")
    weighted_pq = None
    if layers and n_nonzero and all(l["weight_bits_pq"] is not None and l["n_nonzero"] is not None for l in layers):
        weighted_pq = sum(l["weight_bits_pq"] * l["n_nonzero"] for l in layers) / n_nonzero
    index_pq = None
    if layers and n_nonzero and all(l["index_bits_pq"] is not None and l["n_nonzero"] is not None for l in layers):
        index_pq = sum(l["index_bits_pq"] * l["n_nonzero"] for l in layers) / n_nonzero
    return {
        "n_weights": n_weights,
        "n_nonzero": n_nonzero,
        "density": _ratio(n_nonzero, n_weights),
        "weight_bits_pq": weighted_pq,
        "weight_bits_pqh": _ratio(stream_bits(WEIGHT_STREAMS), n_nonzero),
        "index_bits_pq": index_pq,
        "index_bits_pqh": _ratio(stream_bits((GAP_STREAM, PATTERN_STREAM)), n_nonzero),
        "bytes": n_bytes,
        "compress_rate": _ratio(n_bytes, 4 * n_weights if n_weights is not None else None),
        "n_fillers": total("n_fillers"),
    }


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    if spec == "%":
        return f"{100 * value:.1f}%" if value >= 0.001 else f"{100 * value:.3f}%"
    if spec == "b":
        return f"{value:.2f}" if isinstance(value, float) else str(value)
    if spec == "shape":
        return "x".join(str(d) for d in value) if value else "scalar"
    if spec == "codecs":
        return " ".join(f"{k}:{v or '?'}" for k, v in value.items()) or "-"
    return str(value)


def _bits_of(bits: float | None, dtype_bits: int | None) -> str:
    """``10.57 of 16`` (stored bits per weight, of the dtype's bits), or ``-``."""
    if bits is None:
        return "-"
    return f"{bits:.2f}" + (f" of {dtype_bits}" if dtype_bits else "")


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) if i in (0, len(cells) - 1) else c.rjust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _layer_row(layer: dict[str, Any], label: str | None = None) -> list[str]:
    tied = f" (= {', '.join(layer['tied'])})" if label is None and layer.get("tied") else ""
    return [
        (label or layer["name"]) + tied,
        _fmt(layer.get("layer_kind")) if label is None else "",
        _fmt(layer.get("shape"), "shape") if label is None else "",
        _fmt(layer.get("granularity")) if label is None else "",
        _fmt(layer["n_weights"]),
        _fmt(layer["density"], "%"),
        _fmt(layer["weight_bits_pq"], "b"),
        _fmt(layer["weight_bits_pqh"], "b"),
        _fmt(layer["index_bits_pq"], "b"),
        _fmt(layer["index_bits_pqh"], "b"),
        _fmt(layer["bytes"]),
        _fmt(layer["compress_rate"], "%"),
        _fmt(layer["n_fillers"]),
        _fmt(layer.get("codecs"), "codecs") if label is None else "",
    ]


def format_summary(summary: dict[str, Any]) -> str:
    """Render :func:`summarize`'s dict as a plain-text report."""
    out = [
        f".dcz format {summary['format_version']}, written by deepcompress {summary['tool_version']}",
        "",
    ]
    headers = ["layer", "type", "shape", "granularity", "weights", "density", "W bits P+Q", "W bits P+Q+H",
               "idx bits P+Q", "idx bits P+Q+H", "bytes", "rate", "fillers", "codecs"]
    rows = [_layer_row(layer) for layer in summary["layers"]]
    if summary["layers"]:
        rows.append(_layer_row(summary["layer_totals"], "total"))
    out += _table(headers, rows) if rows else ["(no compressed layers)"]
    if summary["dense_tensors"]:
        out += ["", *_table(["dense tensor", "shape", "dtype", "codec", "bytes", "bits/weight", "streams"], [
            [t["name"], _fmt(t["shape"], "shape"), _fmt(t.get("dtype")), _fmt(t.get("codec")), _fmt(t["bytes"]),
             _bits_of(t.get("bits_per_weight"), t.get("dtype_bits")), _fmt(t["codecs"], "codecs")]
            for t in summary["dense_tensors"]
        ])]
    for dtype, row in summary.get("float_totals", {}).items():
        codecs = ", ".join(f"{n} {c}" for c, n in sorted(row["codecs"].items()))
        out.append(f"{dtype} stored exactly: {row['n_tensors']} tensors, {row['n_weights']} weights, "
                   f"{_bits_of(row['bits_per_weight'], row['dtype_bits'])} bits/weight"
                   + (f" ({100 * row['bits_per_weight'] / row['dtype_bits']:.1f}% of the dtype's bits)"
                      if row["bits_per_weight"] is not None else "") + f"; codecs: {codecs}")
    ratio = summary["compression_ratio"]
    ov = summary["overhead"]
    out += [
        "",
        f"file bytes          {summary['file_bytes']}",
        f"dense float32 bytes {summary['dense_bytes']}  ({summary['n_parameters']} parameters)",
        f"compression ratio   {ratio:.1f}x (against float32)" if ratio is not None else "compression ratio   -",
        f"overhead bytes      {summary['overhead_bytes']}  (preamble {ov['preamble']}, header {ov['header']}, "
        f"padding {ov['padding']}, trailer {ov['trailer']})",
    ]
    if summary.get("input_bytes") and summary["input_bytes"] != summary["dense_bytes"]:
        out.insert(-1, f"input bytes         {summary['input_bytes']}  (its own dtypes; "
                       f"{summary['input_ratio']:.1f}x against them)")
    for alias, canonical in summary.get("tied", {}).items():
        out.append(f"shared: {alias} is {canonical} (tied; stored once)")
    out += left_dense_lines(summary.get("dense_reasons", {}))
    for key in ("arch", "recipe", "metrics", "extra"):
        if summary.get(key) is not None:
            out.append(f"{key + ':':<20}{json.dumps(summary[key], sort_keys=True)}")
    return "\n".join(out)


def _nm_bits(nm: Any) -> float | None:
    """Bits of one N:M pattern id per weight it places (``ceil(log2(C(M, N))) / N``); None if malformed."""
    if not (isinstance(nm, list) and len(nm) == 2 and all(isinstance(v, int) for v in nm) and 1 <= nm[0] < nm[1]):
        return None
    n, m = nm
    return max(1, (math.comb(m, n) - 1).bit_length()) / n
