"""Exhaustive damage of a small file: every truncation and every single-bit flip is detected.

CRC32 detects every single-bit error and every burst of up to 32 bits in what it
covers; every byte of a .dcz file is covered by a checksum, a fixed value
(magic, end marker) or the zero-padding rule, so none may slip through.
"""

from __future__ import annotations

import pytest
from dcz_samples import GOLDEN_DIR, assemble, split, synthetic_bytes

from deepcompress.container import read_dcz
from deepcompress.errors import ChecksumError, ContainerError


@pytest.fixture(scope="module", params=["zstd", "plain"])
def small(request) -> bytes:
    """The synthetic file with its header stored as the writer does (zstd) and as plain JSON."""
    data = synthetic_bytes() if request.param == "zstd" else assemble(*split(synthetic_bytes()), encoding="plain")
    assert read_dcz(data).layout.header_encoding == (1 if request.param == "zstd" else 0)
    assert 300 <= len(data) <= 1024, "keep the exhaustive file small"
    return data


def _check_rejected(data: bytes, what: str) -> None:
    try:
        read_dcz(data)
    except ContainerError as exc:
        message = str(exc)
        assert message and "\n" not in message, f"{what}: message {message!r}"
    else:
        raise AssertionError(f"{what}: damaged file was accepted")


def test_every_truncation_is_rejected(small):
    for n in range(len(small)):
        _check_rejected(small[:n], f"truncated to {n} bytes")


def _unchecksummed_bytes(data: bytes) -> set[int]:
    """Offsets guarded by a fixed value or the zero rule rather than a checksum."""
    f = read_dcz(data)
    lay = f.layout
    fixed = set(range(8)) | set(range(len(data) - 8, len(data) - 4))  # magic, end marker
    fixed |= set(range(40 + lay.header_length, lay.data_start))  # header padding
    covered = {i for n in f.tensor_names for s in f.sections(n) for i in range(s.start, s.end)}
    fixed |= set(range(lay.data_start, lay.data_start + lay.data_length)) - covered  # section padding
    return fixed


def test_every_single_bit_flip_is_rejected(small):
    """Each flip is refused; a flip in checksummed bytes is reported as a ChecksumError."""
    fixed = _unchecksummed_bytes(small)
    buf = bytearray(small)
    for i in range(len(buf)):
        for bit in range(8):
            buf[i] ^= 1 << bit
            what = f"bit {bit} of byte {i} flipped"
            with pytest.raises(ContainerError) as info:
                read_dcz(bytes(buf))
            assert "\n" not in str(info.value), what
            if i not in fixed:
                assert isinstance(info.value, ChecksumError), f"{what}: {info.value}"
            buf[i] ^= 1 << bit
    read_dcz(bytes(buf))  # restored: still fine


def test_every_byte_of_the_codec_golden_is_protected():
    """One flip per byte of the larger golden file (the exhaustive bit test covers the small one)."""
    data = bytearray((GOLDEN_DIR / "codecs.dcz").read_bytes())
    for i in range(len(data)):
        data[i] ^= 1 << (i % 8)
        _check_rejected(bytes(data), f"byte {i} damaged")
        data[i] ^= 1 << (i % 8)


def test_burst_errors_are_rejected(small):
    """Bursts of up to 32 bits (here: 2-4 whole bytes set to a different value) anywhere."""
    for width in (2, 3, 4):
        for i in range(0, len(small) - width + 1):
            damaged = bytearray(small)
            for j in range(i, i + width):
                damaged[j] ^= 0xA5
            _check_rejected(bytes(damaged), f"burst of {width} bytes at {i}")
