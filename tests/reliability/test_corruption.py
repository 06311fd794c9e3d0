"""Damage to a real compressed model (``deepcompress compress`` on digits) is always detected.

tests/container/test_dcz_exhaustive.py flips every bit of a small synthetic
file and one bit per byte of the codec golden file; this does every bit and
every truncation of a file the whole pipeline made (a few KB), and checks that
a reader told not to verify up front still never hands out damaged streams.
"""

from __future__ import annotations

import os
import random
import time

import pytest

from deepcompress.container import read_dcz
from deepcompress.errors import ChecksumError, ContainerError

from reliability_helpers import invoke

# exhaustive while it fits this budget (split 1:3 between truncations and flips), else a seeded sample
MAX_SECONDS = float(os.environ.get("DCZ_CORRUPTION_SECONDS", "30"))


@pytest.fixture(scope="module")
def real(digits_dcz) -> bytes:
    data = digits_dcz.read_bytes()
    assert 2000 < len(data) < 20000, len(data)
    read_dcz(data).decode_all()
    return data


def _refused(data: bytes, what: str) -> ContainerError:
    try:
        read_dcz(data)
    except ContainerError as exc:
        assert str(exc) and "\n" not in str(exc), f"{what}: {exc!r}"
        return exc
    raise AssertionError(f"{what}: the damaged file was accepted")


def _offsets(n: int, per_item_s: float, budget_s: float, seed: str) -> list[int]:
    """All of range(n) if that fits the budget, else a seeded sample that does."""
    if n * per_item_s <= budget_s:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), int(budget_s / per_item_s)))


def _time_per_read(data: bytes) -> float:
    t0 = time.perf_counter()
    for _ in range(20):
        read_dcz(data)
    return (time.perf_counter() - t0) / 20


def test_every_truncation_is_refused(real):
    offsets = _offsets(len(real), _time_per_read(real), MAX_SECONDS / 4, "trunc")
    print(f"truncations: {len(offsets)} of {len(real)} offsets")  # shown with pytest -s
    for n in offsets:
        exc = _refused(real[:n], f"truncated to {n} bytes")
        assert not isinstance(exc, ChecksumError) or n < 40, f"{n}: {exc}"  # a clear length error


@pytest.mark.slow
def test_every_single_bit_flip_is_refused(real):
    """8 flips per byte of the whole file; every one is refused with a one-line ContainerError."""
    per_byte = 8 * _time_per_read(real)
    buf = bytearray(real)
    classes = set()
    offsets = _offsets(len(real), per_byte, MAX_SECONDS * 3 / 4, "flip")
    print(f"bit flips: {8 * len(offsets)} of {8 * len(real)}")  # shown with pytest -s
    for i in offsets:
        for bit in range(8):
            buf[i] ^= 1 << bit
            classes.add(type(_refused(bytes(buf), f"bit {bit} of byte {i}")).__name__)
            buf[i] ^= 1 << bit
    assert bytes(buf) == real
    assert "ChecksumError" in classes


def test_unverified_reads_never_hand_out_damaged_streams(real):
    """With verify=False the tensor CRCs are checked when a tensor is first decoded."""
    dcz = read_dcz(real)
    spans = [(s.start, s.end) for name in dcz.tensor_names for s in dcz.sections(name) if s.length]
    rng = random.Random(7)
    for _ in range(400):
        start, end = rng.choice(spans)
        i = rng.randrange(start, end)
        damaged = bytearray(real)
        damaged[i] ^= 1 << rng.randrange(8)
        lazy = read_dcz(bytes(damaged), verify=False)  # the whole-file CRC is skipped too
        with pytest.raises(ChecksumError, match="tensor .* \\(bytes "):
            lazy.decode_all()


def test_appended_bytes_and_polyglots_are_refused(real):
    for tail in (b"\0" * 8, b"PK\x05\x06" + b"\0" * 18, b"\x80\x02}q\x00.", real):
        _refused(real + tail, f"{len(tail)} bytes appended")


def test_cli_reports_damage_in_one_line(real, tmp_path):
    path = tmp_path / "damaged.dcz"
    damaged = bytearray(real)
    damaged[len(real) // 2] ^= 0x10
    path.write_bytes(bytes(damaged))
    for args in (["inspect", path], ["decode", path, "-o", tmp_path / "dense.pt"], ["simulate", path]):
        code, stdout, stderr = invoke(args)
        assert code == 3, (args, stderr)
        assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
        assert "CRC32" in stderr and not stdout
    assert not (tmp_path / "dense.pt").exists()
