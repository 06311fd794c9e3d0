"""Assemble docs/benchmarks.md from the per-topic sections in docs/benchmarks/*.md.

Run: python benchmarks/collect_docs.py
Each section file is written by (or from) the benchmark script it names, with the
command and date beside every number; this script only concatenates them.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ORDER = ["baselines", "mnist", "pruning", "quantize", "codecs", "load", "eie", "sweep", "reliability"]

HEAD = """# Benchmarks

Every figure here comes from a script in `benchmarks/` that anyone can rerun; the
exact command and the date stand beside each number. Speed figures are ratios
against a reference measured in the same run. The machine: 2 cores, 24 GiB, no
GPU, Python 3.11, torch 2.13.0+cpu. Most runs on 2026-11-23 shared the machine
with other jobs (load average 4-10), which inflates wall times; the codec, load
and sparse-inference runs of 2026-12-02 had it to themselves. Same-run ratios are
the figures to trust.

This file is assembled by `python benchmarks/collect_docs.py` from `docs/benchmarks/*.md`.
"""


def main() -> None:
    folder = REPO / "docs" / "benchmarks"
    files = {p.stem: p for p in folder.glob("*.md")}
    ordered = [files.pop(k) for k in ORDER if k in files] + [files[k] for k in sorted(files)]
    parts = [HEAD]
    for path in ordered:
        text = path.read_text().strip()
        parts.append(f"<!-- from docs/benchmarks/{path.name} -->\n{text}\n")
    (REPO / "docs" / "benchmarks.md").write_text("\n".join(parts))
    print(f"wrote docs/benchmarks.md from {len(ordered)} sections")


if __name__ == "__main__":
    main()
