"""Golden files: a fresh write equals the stored bytes literally, and the stored files read back.

If a deliberate format or codec change breaks these, regenerate with
``PYTHONPATH=. python tests/container/make_golden.py`` and review the diff.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dcz_samples import (
    GOLDEN_DIR, GOLDEN_TOOL_VERSION, bfloat16_bytes, bfloat16_samples, float8_bytes, float8_samples, split_float_bytes, split_float_samples, PAIRS_ARCH, REAL_ARCH, REAL_METRICS, REAL_RECIPE, SYNTHETIC_ARCH, pairs_bytes,
    pairs_samples, real_bytes, real_samples, synthetic_bytes, synthetic_tensors,
)

from deepcompress.container import read_dcz

REPO = Path(__file__).resolve().parents[2]


def test_synthetic_golden_bytes():
    assert synthetic_bytes() == (GOLDEN_DIR / "synthetic.dcz").read_bytes()


def test_codecs_golden_bytes():
    assert real_bytes() == (GOLDEN_DIR / "codecs.dcz").read_bytes()


def test_pairs_golden_bytes_and_feature():
    """A file with a huffman_pairs stream lists the feature; files without one list none."""
    assert pairs_bytes() == (GOLDEN_DIR / "pairs.dcz").read_bytes()
    f = read_dcz(GOLDEN_DIR / "pairs.dcz")
    assert f.header["required_features"] == ["compact_sections", "huffman_pairs"] and f.arch == PAIRS_ARCH
    assert f.meta("fc.weight")["streams"]["index"]["codec"] == "huffman_pairs"
    _, arrays = pairs_samples()
    decoded = f.decode_all()
    for name, expected in arrays.items():
        assert decoded[name].tobytes() == expected.tobytes(), name
    assert read_dcz(GOLDEN_DIR / "codecs.dcz").header["required_features"] == ["compact_sections"]


def test_bfloat16_golden_bytes_and_feature():
    """A dense bfloat16 tensor lists the feature and decodes to its uint16 bit patterns."""
    assert bfloat16_bytes() == (GOLDEN_DIR / "bfloat16.dcz").read_bytes()
    f = read_dcz(GOLDEN_DIR / "bfloat16.dcz")
    assert f.header["required_features"] == ["bfloat16", "compact_sections"]
    assert f.meta("fc.weight")["dtype"] == "bfloat16" and f.meta("fc.bias")["dtype"] == "float32"
    _, arrays = bfloat16_samples()
    decoded = f.decode_all()
    for name, expected in arrays.items():
        assert decoded[name].dtype == expected.dtype and decoded[name].tobytes() == expected.tobytes(), name


def test_float8_golden_bytes_and_feature():
    """Dense float8 tensors list the feature and decode to their uint8 bit patterns; torch views them back."""
    assert float8_bytes() == (GOLDEN_DIR / "float8.dcz").read_bytes()
    f = read_dcz(GOLDEN_DIR / "float8.dcz")
    assert f.header["required_features"] == ["compact_sections", "float8"]
    assert f.meta("q.weight")["dtype"] == "float8_e4m3fn" and f.meta("q.scale")["dtype"] == "float8_e5m2"
    assert f.meta("q.weight")["streams"]["data"]["codec"] == "zstd"
    _, arrays = float8_samples()
    decoded = f.decode_all()
    for name, expected in arrays.items():
        assert decoded[name].dtype == expected.dtype and decoded[name].tobytes() == expected.tobytes(), name


def test_split_float_golden_bytes_and_feature():
    """split_float tensors (bf16, fp16, fp32 with zero low bits and with escapes) list the feature and
    decode bit for bit."""
    assert split_float_bytes() == (GOLDEN_DIR / "split_float.dcz").read_bytes()
    f = read_dcz(GOLDEN_DIR / "split_float.dcz")
    assert f.header["required_features"] == ["compact_sections", "split_float"]
    kinds = {name: f.meta(name)["kind"] for name in f.tensor_names}
    assert kinds == {"bf16.weight": "split_float", "fp16.weight": "split_float", "fp32.weight": "split_float",
                     "wide.weight": "split_float", "fc.bias": "dense"}
    assert f.meta("fp32.weight")["zero_bits"] == 7 and f.meta("wide.weight")["n_escapes"] > 0
    _, arrays = split_float_samples()
    decoded = f.decode_all()
    for name, expected in arrays.items():
        assert decoded[name].dtype == expected.dtype and decoded[name].tobytes() == expected.tobytes(), name


def test_nm_pattern_golden_bytes_and_feature():
    """2:4 and 4:8 layers store their positions as pattern ids, list the feature and decode exactly."""
    from dcz_samples import nm_bytes, nm_samples

    assert nm_bytes() == (GOLDEN_DIR / "nm_pattern.dcz").read_bytes()
    f = read_dcz(GOLDEN_DIR / "nm_pattern.dcz")
    assert f.header["required_features"] == ["compact_sections", "nm_pattern"]
    assert f.meta("conv.weight")["nm"] == [2, 4] and f.meta("fc.weight")["nm"] == [4, 8]
    assert "gap" not in f.meta("conv.weight")["streams"] and "pattern" in f.meta("fc.weight")["streams"]
    _, arrays = nm_samples()
    decoded = f.decode_all()
    for name, expected in arrays.items():
        assert decoded[name].tobytes() == expected.tobytes(), name


def test_grouped_codebook_golden_bytes_and_feature():
    """Per-group codebooks: the file lists the feature, and each weight decodes to its row group's codebook."""
    from dcz_samples import grouped_bytes, grouped_samples

    assert grouped_bytes() == (GOLDEN_DIR / "grouped_codebook.dcz").read_bytes()
    f = read_dcz(GOLDEN_DIR / "grouped_codebook.dcz")
    assert f.header["required_features"] == ["compact_sections", "grouped_codebook"]
    assert f.meta("fc.weight")["groups"] == 3 and f.meta("conv.weight")["groups"] == 2
    _, arrays = grouped_samples()
    decoded = f.decode_all()
    for name, expected in arrays.items():
        assert decoded[name].tobytes() == expected.tobytes(), name
        labels, codebook = f.decode_labels(name)
        assert codebook[labels].tobytes() == expected.tobytes(), name


OLD_GOLDEN_DIR = GOLDEN_DIR / "before_compact_sections"


@pytest.mark.parametrize("name", sorted(p.name for p in OLD_GOLDEN_DIR.glob("*.dcz")))
def test_files_written_before_compact_sections_still_read(name):
    """The golden files as written before ``compact_sections`` (each section's offset, length and CRC32)
    read, verify and decode exactly as today's: same header otherwise, same tensors, metas and stream bytes."""
    old, new = read_dcz(OLD_GOLDEN_DIR / name), read_dcz(GOLDEN_DIR / name)
    assert old.header["required_features"] == [f for f in new.header["required_features"] if f != "compact_sections"]
    assert {k: v for k, v in old.header.items() if k not in ("tensors", "required_features")} == \
           {k: v for k, v in new.header.items() if k not in ("tensors", "required_features")}
    assert old.tensor_names == new.tensor_names
    for tensor in new.tensor_names:
        assert old.meta(tensor) == new.meta(tensor)
        assert {k: bytes(v) for k, v in old.streams(tensor).items()} == {k: bytes(v) for k, v in new.streams(tensor).items()}
    if name != "synthetic.dcz":  # the synthetic sample's metas are not codec-valid
        a, b = old.decode_all(), new.decode_all()
        assert all(a[k].tobytes() == b[k].tobytes() for k in b)
    assert (OLD_GOLDEN_DIR / name).stat().st_size > (GOLDEN_DIR / name).stat().st_size


def test_synthetic_golden_reads_back():
    f = read_dcz(GOLDEN_DIR / "synthetic.dcz")
    assert f.tool_version == GOLDEN_TOOL_VERSION and f.arch == SYNTHETIC_ARCH
    for tensor in synthetic_tensors():
        assert f.meta(tensor.name) == tensor.meta
        assert {k: bytes(v) for k, v in f.streams(tensor.name).items()} == dict(tensor.streams)


def test_codecs_golden_decodes_to_the_source_arrays():
    f = read_dcz(GOLDEN_DIR / "codecs.dcz")
    tensors, arrays = real_samples()
    assert f.tensor_names == list(arrays) == [t.name for t in tensors]
    assert (f.arch, f.recipe, f.metrics) == (REAL_ARCH, REAL_RECIPE, REAL_METRICS)
    decoded = f.decode_all()
    for name, expected in arrays.items():
        assert decoded[name].dtype == expected.dtype and decoded[name].shape == expected.shape
        assert np.array_equal(decoded[name], expected), name
    codecs = {s["codec"] for name in f.tensor_names for s in f.meta(name)["streams"].values()}
    assert f.layout.header_encoding == 1, "the golden header is stored as zstd"
    assert codecs == {"raw", "huffman", "zstd"}


def test_golden_files_cover_every_codec():
    """Together the golden files exercise every stream codec the encoder can pick (from the registry)."""
    from deepcompress.codecs.streams import CODECS

    used = set()
    for path in sorted(GOLDEN_DIR.glob("*.dcz")):
        f = read_dcz(path)
        used |= {s["codec"] for name in f.tensor_names for s in f.meta(name).get("streams", {}).values()}
    assert used >= set(CODECS), f"no golden file uses {sorted(set(CODECS) - used)}"


@pytest.mark.parametrize("seed", ["0", "12345"])
def test_bytes_do_not_depend_on_hash_seed(seed):
    """Determinism across processes: no set or hash order leaks into the file."""
    code = "import sys; sys.path.insert(0, 'tests/container'); import dcz_samples as s; " \
           "sys.stdout.buffer.write(s.real_bytes() + s.synthetic_bytes())"
    env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, check=True).stdout
    assert out == real_bytes() + synthetic_bytes()


def test_masks_and_labels_of_the_golden():
    f = read_dcz(GOLDEN_DIR / "codecs.dcz")
    _, arrays = real_samples()
    mask = f.decode_mask("conv.weight")
    assert mask.dtype == bool and mask.shape == (4, 3, 3, 3)
    assert np.array_equal(mask.all(axis=(2, 3)), mask.any(axis=(2, 3))), "kernel granularity keeps whole kernels"
    labels, codebook = f.decode_labels("fc.weight")
    assert np.array_equal(np.where(labels >= 0, codebook[labels], 0), arrays["fc.weight"])
    assert np.array_equal(f.decode_mask("fc.weight"), labels >= 0)


def _with_meta(edit) -> bytes:
    import copy

    from dcz_samples import assemble, split

    header, data = split((GOLDEN_DIR / "codecs.dcz").read_bytes())
    header = copy.deepcopy(header)
    edit(header["tensors"][3])  # big.weight
    return assemble(header, data)


def test_lying_meta_is_refused_before_allocation():
    """A consistent meta claiming 2**32 weights (or more than the caller's cap) over a few hundred
    stream bytes fails validation, allocating nothing big."""
    import tracemalloc

    from deepcompress.errors import CodecError

    def resize(rows, cols):
        def edit(record):
            record["meta"].update(shape=[rows, cols])
        return edit

    huge = read_dcz(_with_meta(resize(2**16, 2**16)))
    big = read_dcz(_with_meta(resize(2**10, 2**11)))
    tracemalloc.start()
    try:
        with pytest.raises(CodecError, match="big.weight.*limit 2147483648"):
            huge.decode("big.weight")
        with pytest.raises(CodecError, match="big.weight"):
            huge.decode_all()
        with pytest.raises(CodecError, match="big.weight.*limit 1000000"):
            big.decode_all(max_elements=10**6)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20  # against 8 GiB for the declared tensor


def test_sections_must_match_the_meta_streams():
    """A section the codec meta does not declare (or lacks) is refused before decoding."""
    from deepcompress.errors import CodecError

    def drop_gap(record):
        del record["meta"]["streams"]["gap"]

    with pytest.raises(CodecError, match="big.weight"):
        read_dcz(_with_meta(drop_gap)).decode("big.weight")


def test_decode_all_caps_the_total():
    f = read_dcz(GOLDEN_DIR / "codecs.dcz")
    total = sum(int(np.prod(f.meta(n)["shape"])) for n in f.tensor_names)
    assert len(f.decode_all(max_elements=total)) == len(f.tensor_names)
    from deepcompress.errors import ContainerError

    with pytest.raises(ContainerError, match=f"hold {total} elements in all, more than the limit {total - 1}"):
        f.decode_all(max_elements=total - 1)
