"""Fuzzing the .dcz reader (benchmarks/fuzz_dcz.py): a time-boxed run, and the re-sealer it relies on.

The contract on every mutated input: ``read_dcz(bytes)``, ``decode_all()`` and the
inspect summary raise only DeepCompressError subclasses (one-line messages),
take under 1 s of CPU, and allocate no more than a small multiple of the file
size plus the declared output of the tensors whose meta is valid.
"""

from __future__ import annotations

import os
import random
import tracemalloc
from collections import Counter

import pytest

from deepcompress.container import read_dcz
from deepcompress.errors import ChecksumError, CodecError, ContainerError, DeepCompressError

FUZZ_SECONDS = float(os.environ.get("DCZ_FUZZ_SECONDS", "20"))
FUZZ_SEED = int(os.environ.get("DCZ_FUZZ_SEED", "1"))


def _rebuilt(fuzz, data: bytes) -> bytes:
    p = fuzz.split(data)
    return fuzz.seal(p.header_text, p.data, preamble=p.preamble_size, major=p.major, minor=p.minor,
                     encoding=p.encoding)


def test_seal_rebuilds_every_seed_byte_for_byte(fuzz, corpus):
    """The re-sealer follows docs/format.md exactly: taking a valid file apart and sealing it again
    gives the writer's bytes (if the format changes, this fails first: update fuzz_dcz.seal)."""
    kinds = Counter()
    for name, data in corpus.seeds:
        assert _rebuilt(fuzz, data) == data, name
        kinds.update(t["meta"]["kind"] for t in fuzz.split(data).header["tensors"])
    from deepcompress.codecs.meta import KINDS

    assert set(kinds) == set(KINDS), "a seed per tensor kind"


def test_seal_rebuilds_a_compressed_model(fuzz, digits_dcz):
    data = digits_dcz.read_bytes()
    assert _rebuilt(fuzz, data) == data


def test_seed_granularities_cover_all(fuzz, corpus):
    grans = {t["meta"].get("granularity") for _, d in corpus.seeds for t in fuzz.split(d).header["tensors"]}
    assert {"element", "vector", "kernel", "filter", "channel"} <= grans


@pytest.mark.parametrize("kind", ["header", "header_text", "preamble", "streams"])
def test_resealed_mutations_get_past_the_checksums(fuzz, corpus, kind):
    """Re-sealed edits reach the semantic checks and the decoders instead of stopping at a CRC."""
    outcomes = Counter()
    mutator = {"header": fuzz.mutate_header, "header_text": fuzz.mutate_header_text,
               "preamble": fuzz.mutate_preamble, "streams": fuzz.mutate_streams}[kind]
    for i in range(150):
        rng = random.Random(f"reseal:{kind}:{i}")
        s = rng.randrange(len(corpus.seeds))
        status = fuzz.run_one(kind, mutator(rng, corpus.parts[s])).status
        assert not status.startswith("FAIL"), status
        outcomes[status] += 1
    # a header-length edit in the preamble moves the header's CRC window: some of those stay ChecksumErrors
    assert outcomes["error:ChecksumError"] <= 0.15 * sum(outcomes.values()), outcomes
    assert len(outcomes) >= 2, outcomes  # some accepted or refused in more than one way


def test_raw_mutations_are_caught_by_the_checksums(fuzz, corpus):
    outcomes = Counter()
    for i in range(300):
        rng = random.Random(f"raw:{i}")
        name, data = corpus.seeds[rng.randrange(len(corpus.seeds))]
        op, damaged = fuzz.mutate_raw(rng, data, corpus.seeds[0][1])
        if damaged == data:
            continue
        with pytest.raises(ContainerError):
            read_dcz(damaged)
        outcomes[op] += 1
    assert len(outcomes) == 6  # bitflip, byte, truncate, splice, insert, delete


def test_time_boxed_fuzz(fuzz, corpus):
    """The CI slice of the long run (benchmarks/fuzz_dcz.py --inputs 100000; docs/reliability.md)."""
    stats = fuzz.fuzz(corpus, seed=FUZZ_SEED, seconds=FUZZ_SECONDS, sample_every=10)
    report = fuzz.report(stats, FUZZ_SEED)
    assert stats.n_failures == 0, report
    assert stats.inputs >= 1000, report
    assert set(stats.by_kind) == set(fuzz.KINDS), report
    assert stats.max_cpu_s < fuzz.TIME_LIMIT_S, report
    assert stats.traced >= 50 and stats.max_peak_ratio <= 1.0, report
    assert stats.statuses["ok"] > 0 and stats.statuses["error:CodecError"] > 0, report


# --------------------------------------------------------------------------- huge declared sizes


def _edit_first_weight(fuzz, corpus, edit) -> bytes:
    """The fc seed with its first tensor's meta edited by ``edit(meta)``, every checksum recomputed."""
    parts = corpus.parts[0]
    header = parts.header
    edit(header["tensors"][0]["meta"])
    return fuzz.reseal(parts, header)


@pytest.mark.parametrize("shape", [[2**31, 2**31], [2**40], [-1, 64], [40.0, 64], [True, 64], [2] * 40])
def test_huge_or_wrong_shapes_refused_before_allocating(fuzz, corpus, shape):
    data = _edit_first_weight(fuzz, corpus, lambda m: m.update(shape=shape))
    tracemalloc.start()
    try:
        with pytest.raises(CodecError, match="shape"):
            read_dcz(data).decode_all()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * len(data) + 2**20


@pytest.mark.parametrize("field, value", [("data_length", 2**64), ("data_length", -8), ("data_length", 8.0),
                                          ("tensors", {"a": 1}), ("tool", None), ("arch", {"import": "os;rm"})])
def test_bad_top_level_fields_refused(fuzz, corpus, field, value):
    header = corpus.parts[0].header
    header[field] = value
    with pytest.raises(ContainerError) as info:
        read_dcz(fuzz.reseal(corpus.parts[0], header))
    assert not isinstance(info.value, ChecksumError)


@pytest.mark.parametrize("override", [{"header_length": 2**64 - 1}, {"header_length": 2**26 + 1},
                                      {"decoded_length": 2**32 - 1}, {"encoding_field": 7}, {"major": 2}])
def test_huge_preamble_fields_refused(fuzz, corpus, override):
    p = corpus.parts[0]
    fields = {"preamble": p.preamble_size, "major": p.major, "minor": p.minor, **override}
    with pytest.raises(ContainerError):
        read_dcz(fuzz.seal(p.header_text, p.data, **fields))


def test_an_all_pruned_giant_is_bounded_by_max_elements(fuzz, corpus):
    """A few hundred bytes may honestly declare a huge all-zero tensor (docs/format.md): it decodes
    when within ``max_elements`` (its output is the declared size) and is refused above it."""
    seed = next(i for i, (name, _) in enumerate(corpus.seeds) if name == "dense_dtypes_and_full")
    parts = corpus.parts[seed]
    header = parts.header
    record = next(t for t in header["tensors"] if t["meta"]["name"] == "none.weight")
    record["meta"].update(shape=[1024, 1024], block=[1, 1])
    data = fuzz.reseal(parts, header)
    assert len(data) < 8192
    dcz = read_dcz(data)
    tracemalloc.start()
    try:
        out = dcz.decode("none.weight", max_elements=2**20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.shape == (1024, 1024) and not out.any()
    assert peak <= fuzz.OUTPUT_FACTOR * out.nbytes + 16 * len(data) + 2**20
    with pytest.raises(DeepCompressError, match="limit|elements"):
        dcz.decode_all(max_elements=2**20 - 1)
