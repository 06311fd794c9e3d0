"""Regenerate the golden ``.dcz`` files in tests/container/golden/ (deterministically).

    cd /work/main && PYTHONPATH=. /work/venv/bin/python tests/container/make_golden.py

Writes ``synthetic.dcz`` (container only: arbitrary stream bytes),
``codecs.dcz`` (tensors of every kind encoded by deepcompress.codecs from seeded
data) and ``pairs.dcz`` (a layer whose index stream is ``huffman_pairs``, so the
file lists that required feature) and ``bfloat16.dcz`` (a dense bfloat16 tensor: the
``bfloat16`` feature) and ``split_float.dcz`` (float tensors of kind ``split_float``: the
``split_float`` feature) and ``nm_pattern.dcz`` (2:4 and 4:8 layers whose positions are N:M
pattern ids: the ``nm_pattern`` feature) and ``grouped_codebook.dcz`` (weight-shared layers with one codebook
per group of rows: the ``grouped_codebook`` feature) and ``float8.dcz`` (dense float8 tensors: the ``float8``
feature). Headers carry a pinned tool version so the files change only when the
format or the codecs change. Rerun it after a deliberate change of either, and
review the diff of ``git diff --stat tests/container/golden``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dcz_samples import (  # noqa: E402
    GOLDEN_DIR, bfloat16_bytes, float8_bytes, grouped_bytes, nm_bytes, pairs_bytes, real_bytes, split_float_bytes, synthetic_bytes,
)

from deepcompress.atomic import write_bytes_atomic  # noqa: E402

GOLDEN_FILES = {"synthetic.dcz": synthetic_bytes, "codecs.dcz": real_bytes, "pairs.dcz": pairs_bytes,
                "bfloat16.dcz": bfloat16_bytes, "split_float.dcz": split_float_bytes, "nm_pattern.dcz": nm_bytes,
                "grouped_codebook.dcz": grouped_bytes, "float8.dcz": float8_bytes}


def main() -> None:
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    for name, build in GOLDEN_FILES.items():
        data = build()
        write_bytes_atomic(GOLDEN_DIR / name, data)
        print(f"{GOLDEN_DIR / name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
