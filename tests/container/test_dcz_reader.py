"""The reader against hostile files: each rule of docs/format.md rejects its attack
with the right error class and a one-line message that names the place and the numbers."""

from __future__ import annotations

import copy
import io
import json
import pickle
import zipfile

import pytest
from dcz_samples import assemble, legacy, split, synthetic_bytes, zstd_frame

from deepcompress.codecs.encoded import EncodedTensor
from deepcompress.container import MAX_HEADER_BYTES, dumps_dcz, read_dcz
from deepcompress.container.api import UnknownTensorError
from deepcompress.errors import ChecksumError, ContainerError, InputFileError, UnsupportedVersionError


def _reject(data: bytes, cls: type[Exception] = ContainerError, match: str = "") -> ContainerError:
    with pytest.raises(cls, match=match) as info:
        read_dcz(data)
    message = str(info.value)
    assert message and "\n" not in message and len(message) < 400
    return info.value


@pytest.fixture()
def parts():
    header, data = split(synthetic_bytes())
    return header, data


@pytest.fixture()
def old(parts):
    """The sample in the section layout of files written before ``compact_sections``."""
    header, data = parts
    return legacy(header, data), data


def test_assembler_matches_writer(parts):
    """The test-side assembler is a faithful second implementation (so crafted files differ only where meant)."""
    assert assemble(*parts) == synthetic_bytes()


# --- preamble ------------------------------------------------------------------------------------


def test_bad_magic_and_lookalikes():
    good = synthetic_bytes()
    _reject(b"PK\x03\x04" + good[4:], match="zip archive")
    _reject(b"\x80\x04" + good[2:], match="pickle")
    _reject(b'{"a": 1}' + good[8:], match="JSON")
    # text-mode damage: CRLF turned into LF
    _reject(good.replace(b"\r\n", b"\n", 1), match="text-mode")
    _reject(good[:5], match="too short")
    _reject(b"", match="too short")


def test_newer_major_version_is_refused(parts):
    err = _reject(assemble(*parts, major=2, minor=3), UnsupportedVersionError, "major version")
    assert "made by a newer version of deepcompress (format 2.3)" in str(err) and "upgrade" in str(err)


def test_older_major_version_is_refused(parts):
    _reject(assemble(*parts, major=0, minor=9), UnsupportedVersionError, "format 0.9 is not supported")


def test_newer_minor_version_is_read(parts):
    """Minor versions only add optional things: a 1.7 file without unknown required features reads."""
    header, data = parts
    header = dict(header, some_future_optional_field={"x": 1})
    f = read_dcz(assemble(header, data, minor=7))
    assert f.format_version == (1, 7) and f.tensor_names == ["fc1.weight", "fc1.bias", "empty"]


def test_unknown_required_feature(parts):
    header, data = parts
    header["required_features"] = ["sparse-ans-v2"]
    err = _reject(assemble(header, data, minor=4), UnsupportedVersionError, "'sparse-ans-v2'")
    assert str(err) == ("unknown required feature 'sparse-ans-v2': made by a newer version of deepcompress; "
                        "upgrade (this release reads format 1.0 with the features: bfloat16, compact_sections, float8, grouped_codebook, "
                        "huffman_pairs, nm_pattern, split_float)")


def test_pair_codec_needs_its_feature_listed(monkeypatch):
    """A huffman_pairs stream in a file that does not list the feature is refused; a reader that does
    not know the feature (an older release) refuses the file as newer instead of misreading it."""
    from dcz_samples import GOLDEN_DIR, assemble, split

    from deepcompress.container import format as fmt

    golden = (GOLDEN_DIR / "pairs.dcz").read_bytes()
    header, data = split(golden)
    header["required_features"] = []
    _reject(assemble(header, data), match="streams use huffman_pairs but 'required_features' does not list it")
    monkeypatch.setattr(fmt, "KNOWN_FEATURES", frozenset())
    err = _reject(golden, UnsupportedVersionError, "'huffman_pairs'")
    assert "upgrade" in str(err)


@pytest.mark.parametrize("feature,golden_name", [
    ("bfloat16", "bfloat16.dcz"),  # a dense bfloat16 tensor
    ("split_float", "split_float.dcz"),  # split_float tensors
    ("nm_pattern", "nm_pattern.dcz"),  # N:M positions as pattern ids
])
def test_a_feature_must_be_listed_and_an_older_reader_refuses_it(monkeypatch, feature, golden_name):
    """A file using the feature without listing it is refused as invalid; a reader that does not know the
    feature (an older release) refuses the file as newer instead of misreading it."""
    from dcz_samples import GOLDEN_DIR, assemble, split

    from deepcompress.container import format as fmt

    golden = (GOLDEN_DIR / golden_name).read_bytes()
    header, data = split(golden)
    header["required_features"] = []
    _reject(assemble(header, data), match=f"use {feature} but 'required_features' does not list it")
    monkeypatch.setattr(fmt, "KNOWN_FEATURES", fmt.KNOWN_FEATURES - {feature})
    err = _reject(golden, UnsupportedVersionError, f"'{feature}'")
    assert "upgrade" in str(err)


def test_oversized_declared_header(parts):
    header, data = parts
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    _reject(assemble(raw, data, header_length=MAX_HEADER_BYTES + 1), match=f"exceeds the {MAX_HEADER_BYTES}")
    _reject(assemble(raw, data, header_length=2**64 - 1), match="exceeds")


def test_header_length_past_eof(parts):
    header, data = parts
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    total = len(assemble(raw, data))
    _reject(assemble(raw, data, header_length=total), match=f"runs past the end of the file \\({total} bytes\\)")


def test_header_length_shorter_than_header(parts):
    header, data = parts
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    _reject(assemble(raw, data, header_length=len(raw) - 8), ChecksumError, "header")


# --- header encoding (plain or one zstd frame) ------------------------------------------------------


def test_plain_and_zstd_headers_read_the_same(parts):
    header, data = parts
    plain, packed = assemble(header, data, encoding="plain"), assemble(header, data, encoding="zstd")
    assert len(packed) < len(plain)
    a, b = read_dcz(plain), read_dcz(packed)
    assert a.header == b.header == header and (a.layout.header_encoding, b.layout.header_encoding) == (0, 1)


def test_writer_keeps_a_header_plain_when_zstd_does_not_pay():
    """zstd only when smaller and within the 64x ratio readers accept; else the JSON itself."""
    from deepcompress.container.header import pack_header

    assert pack_header(b'{"a":1}') == (b'{"a":1}', 0)
    spaces = b'{"a":' + b" " * 100_000 + b"1}"
    assert pack_header(spaces) == (spaces, 0)
    text = json.dumps({"k": [str(i) for i in range(500)]}).encode()
    stored, encoding = pack_header(text)
    assert encoding == 1 and len(stored) < len(text) <= 64 * len(stored)
    f = read_dcz(dumps_dcz([EncodedTensor({"name": "w"}, {"data": b"abc"})], extra={"pad": " " * 10**5}))
    assert f.layout.header_encoding == 0 and f.extra == {"pad": " " * 10**5}


def test_unknown_header_encoding_or_reserved_bits(parts):
    _reject(assemble(*parts, encoding_field=2), UnsupportedVersionError, "unknown header encoding 2.*upgrade")
    _reject(assemble(*parts, reserved=1), UnsupportedVersionError, "reserved 1")


def test_plain_header_with_a_wrong_decoded_length(parts):
    _reject(assemble(*parts, encoding="plain", decoded_length=10), match="plain header of .* decoded length of 10")


def test_zstd_bomb_is_refused_before_decompressing(parts):
    """64 MiB of spaces compress to a few KB: the ratio cap refuses the frame without inflating it."""
    import tracemalloc

    text = b"{" + b" " * (64 * 2**20 - 2) + b"}"
    frame = zstd_frame(text)
    bomb = assemble(text, b"", encoding="zstd", stored=frame)
    tracemalloc.start()
    try:
        _reject(bomb, match=f"decoded length {len(text)} exceeds {64 * len(frame)} bytes")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20
    over = b'{"a":"' + bytes(range(33, 127)) * 10 + b'"}'
    _reject(assemble(over, b"", encoding="zstd", decoded_length=2**26 + 1), match="exceeds")


def test_zstd_header_lies(parts):
    header, data = parts
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    frame = zstd_frame(text)
    _reject(assemble(header, data, encoding="zstd", decoded_length=len(text) - 1), match="frame declares")
    _reject(assemble(header, data, encoding="zstd", stored=frame + b"\0"), match="corrupt zstd frame")
    _reject(assemble(header, data, encoding="zstd", stored=frame[:-3]), match="corrupt zstd frame")
    _reject(assemble(header, data, encoding="zstd", stored=b"not a zstd frame"), match="not a zstd frame")
    import zstandard

    unsized = zstandard.ZstdCompressor(level=3, write_content_size=False).compress(text)
    _reject(assemble(header, data, encoding="zstd", stored=unsized), match="frame declares -1 bytes")


def test_zstd_header_is_held_to_the_json_rules():
    """Decompression changes nothing about what a header may contain."""
    _reject(assemble(b'{"a":1,"a":2}' + b" " * 200, b"", encoding="zstd"), match="duplicate JSON key 'a'")
    _reject(assemble(b'{"x":NaN}' + b" " * 200, b"", encoding="zstd"), match="constant NaN")


# --- header JSON ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b'{"a":1,"a":2}', "duplicate JSON key 'a'"),
        (b'{"tensors":[{"meta":{"name":"x","name":"y"}}]}', "duplicate JSON key 'name'"),
        (b'{"x":NaN}', "constant NaN"),
        (b'{"x":-Infinity}', "constant -Infinity"),
        (b'{"x":1e999}', "overflows"),
        (b'{"x":' + b"9" * 5000 + b"}", "invalid JSON"),
        (b"[" * 100000 + b"]" * 100000, "invalid JSON|nested deeper"),
        (b'{"a":' * 70 + b"1" + b"}" * 70, "nested deeper than 64"),
        (b"[1,2]", "top level is a JSON list"),
        (b'{"a":1', "invalid JSON at byte"),
        (b'{"a":"\xff"}', "invalid UTF-8 at byte 6"),
        (b'\xef\xbb\xbf{"a":1}', "invalid JSON"),
    ],
)
def test_hostile_json(raw, match):
    _reject(assemble(raw, b""), ContainerError, match)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda h: h.pop("tool"), "'tool' must be an object"),
        (lambda h: h.update(required_features="x"), "list of strings"),
        (lambda h: h.update(recipe=[1]), "'recipe' must be an object or null"),
        (lambda h: h.update(arch={"name": "a", "import": "m:C"}), "exactly one of"),
        (lambda h: h.update(arch={"import": "__import__('os').system('x')"}), "package.module:Class"),
        (lambda h: h.update(tensors={}), "'tensors' must be a list"),
        (lambda h: h["tensors"].append(5), "tensor #3 is not an object"),
        (lambda h: h["tensors"][0].pop("sections"), "tensor #0 needs objects"),
        (lambda h: h["tensors"][1]["meta"].update(name=""), "tensor #1 has no valid name"),
        (lambda h: h["tensors"][1]["meta"].update(name="fc1.weight"), "duplicate tensor name 'fc1.weight'"),
        (lambda h: h.update(data_length=-8), "'data_length' must be a non-negative multiple of 8"),
        (lambda h: h.update(data_length=True), "'data_length'"),
        (lambda h: h.update(data_length=12.0), "'data_length'"),
    ],
)
def test_bad_header_fields(parts, edit, match):
    header, data = copy.deepcopy(parts)
    edit(header)
    _reject(assemble(header, data), ContainerError, match)


# --- sections and sizes ---------------------------------------------------------------------------


def _sec(header, tensor=0, stream="index"):
    return header["tensors"][tensor]["sections"][stream]


# Files written before ``compact_sections`` (each section's offset, length and CRC32) are still read, and held
# to the same rules.

def test_old_layout_reads_the_same(parts, old):
    new = read_dcz(assemble(*parts))
    got = read_dcz(assemble(*old))
    assert got.tensor_names == new.tensor_names
    for name in new.tensor_names:
        assert {k: bytes(v) for k, v in got.streams(name).items()} == {k: bytes(v) for k, v in new.streams(name).items()}


def test_overlapping_sections(old):
    header, data = old
    _sec(header)["offset"] = 0  # "gap" is first at 0..3, "index" should start at 8
    _reject(assemble(header, data), match="'fc1.weight' stream 'index': offset 0 overlaps the previous section")


def test_out_of_order_sections(old):
    header, data = old
    _sec(header, 0, "gap")["offset"], _sec(header)["offset"] = _sec(header)["offset"], _sec(header, 0, "gap")["offset"]
    _reject(assemble(header, data), match="stream 'gap': offset 8 leaves a hole")


def test_gapped_sections(old):
    header, data = old
    header["data_length"] += 8
    for t in range(1, 3):
        for sec in header["tensors"][t]["sections"].values():
            sec["offset"] += 8
    _reject(assemble(header, data + bytes(8)), match="'fc1.bias' stream 'data': offset 24 leaves a hole .*expected 16")


@pytest.mark.parametrize("layout", ["compact", "old"])
def test_data_area_longer_than_sections(parts, old, layout):
    header, data = parts if layout == "compact" else old
    header["data_length"] += 8
    _reject(assemble(header, data + bytes(8)), match="data area is 40 bytes but its sections end at 32")


@pytest.mark.parametrize("value", [-1, 2**64, 2**70, 1.5, True, None, "8"])
@pytest.mark.parametrize("field", ["offset", "length", "crc32"])
def test_negative_huge_or_mistyped_sizes(old, field, value):
    header, data = old
    _sec(header)[field] = value
    _reject(assemble(header, data), match=f"stream 'index': {field} .* is not an integer in 0..")


@pytest.mark.parametrize("value", [-1, 2**64, 1.5, True, None, "8", {"offset": 8, "length": 4, "crc32": 0}])
def test_compact_section_length_must_be_an_integer(parts, value):
    header, data = parts
    header["tensors"][0]["sections"]["index"] = value
    _reject(assemble(header, data), match="stream 'index': section length .* is not an integer in 0..32")


@pytest.mark.parametrize("value", [-1, 2**32, 1.5, True, None, "0"])
def test_compact_tensor_checksum_must_be_an_integer(parts, value):
    header, data = parts
    header["tensors"][1]["crc32"] = value
    _reject(assemble(header, data), match="tensor 'fc1.bias': 'crc32' .* is not an integer in 0..4294967295")
    del header["tensors"][1]["crc32"]
    _reject(assemble(header, data), match="tensor 'fc1.bias': 'crc32' None is not an integer")


def test_layouts_do_not_mix(parts, old):
    """A compact record in an old-layout file, or a tensor checksum without the feature, is refused."""
    header, data = old
    header["tensors"][1]["sections"]["data"] = 16
    _reject(assemble(header, data), match="'fc1.bias' stream 'data': section must be an object with exactly")
    header, data = old
    header["tensors"][1]["crc32"] = 0
    _reject(assemble(header, data), match="tensor 'fc1.bias': a tensor 'crc32' needs the 'compact_sections' feature")


@pytest.mark.parametrize("layout", ["compact", "old"])
def test_section_past_data_area(parts, old, layout):
    header, data = parts if layout == "compact" else old
    if layout == "compact":
        header["tensors"][2]["sections"]["data"] = 9
    else:
        _sec(header, 2, "data")["length"] = 9
    _reject(assemble(header, data), match="'empty' stream 'data': bytes 32..41 run past the data area \\(32 bytes\\)")


def test_section_record_shape(old):
    header, data = old
    _sec(header)["extra"] = 1
    _reject(assemble(header, data), match="exactly offset, length, crc32")


def test_bad_stream_name_in_header(parts):
    header, data = parts
    header["tensors"][2]["sections"] = {"d\u00e4ta": header["tensors"][2]["sections"]["data"]}
    _reject(assemble(header, data), match="invalid stream name")


def test_wrong_section_checksum(old):
    header, data = old
    _sec(header)["crc32"] ^= 1
    _reject(assemble(header, data), ChecksumError, "'fc1.weight' stream 'index' \\(bytes ")


def test_wrong_tensor_checksum(parts):
    """The tensor checksum covers its sections and the padding between them."""
    header, data = parts
    header["tensors"][0]["crc32"] ^= 1
    err = _reject(assemble(header, data), ChecksumError, "tensor 'fc1.weight' \\(bytes [0-9]+\\.\\.[0-9]+\\): CRC32 ")
    start, end = map(int, str(err).split("(bytes ")[1].split(")")[0].split(".."))
    assert end - start == 3 + 5 + 4  # "gap" (3 bytes), zero padding to 8, "index" (4 bytes)
    header, data = parts
    bad = bytearray(data)
    bad[3] = 7  # padding after "gap" (3 bytes) before "index": the layout check names it first
    _reject(assemble(header, bytes(bad)), match="padding before offset 8 is not zero")


def test_non_zero_padding(old):
    header, data = old
    stored = zstd_frame(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    assert len(stored) % 8, "the sample header must need padding"
    _reject(assemble(header, data, encoding="zstd", header_pad=b"\x01" + bytes(-len(stored) % 8 - 1)),
            match="header padding")
    bad = bytearray(data)
    bad[3] = 7  # padding after "gap" (3 bytes) before "index"
    _reject(assemble(header, bytes(bad)), match="padding before offset 8 is not zero")
    header, data = split(dumps_dcz([EncodedTensor({"name": "w"}, {"data": b"abc"})]))
    assert len(data) == 8
    _reject(assemble(header, data[:3] + b"\x00\x00\x00\x00\x01"), match="padding after the last section")


def test_extra_trailing_bytes():
    _reject(synthetic_bytes() + b"\x00", match="file has extra bytes")
    _reject(synthetic_bytes() + bytes(8), match="file has extra bytes")


def test_truncated_file():
    good = synthetic_bytes()
    _reject(good[:-1], match="file truncated")


def test_file_checksum_and_end_marker():
    good = bytearray(synthetic_bytes())
    good[-1] ^= 0x80
    _reject(bytes(good), ChecksumError, "whole file")
    good[-1] ^= 0x80
    good[-6] ^= 1
    _reject(bytes(good), ContainerError, "end marker")


# --- polyglots --------------------------------------------------------------------------------------


class _Boom:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", b"payload")
    return buf.getvalue()


def test_polyglots_are_rejected_and_nothing_runs(tmp_path):
    """A zip or a pickle glued to a valid file is refused, and the pickle is never loaded."""
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_Boom(marker))
    good = synthetic_bytes()
    _reject(good + _zip_bytes(), match="extra bytes")
    _reject(good + evil, match="extra bytes")
    _reject(_zip_bytes() + good, match="bad magic 504b0304")
    _reject(evil + good, match="pickle")
    assert not marker.exists()


# --- files and lookups --------------------------------------------------------------------------------


def test_path_errors(tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        read_dcz(tmp_path / "nope.dcz")
    with pytest.raises(InputFileError, match="is a directory"):
        read_dcz(tmp_path)
    (tmp_path / "empty.dcz").write_bytes(b"")
    with pytest.raises(InputFileError, match="is empty"):
        read_dcz(tmp_path / "empty.dcz")


def test_read_from_path_equals_bytes(tmp_path):
    path = tmp_path / "s.dcz"
    path.write_bytes(synthetic_bytes())
    a, b = read_dcz(path), read_dcz(str(path))
    c = read_dcz(synthetic_bytes())
    assert a.header == b.header == c.header and a.file_bytes == c.file_bytes == len(synthetic_bytes())


def test_accessors():
    f = read_dcz(synthetic_bytes())
    assert f.tensor_names == ["fc1.weight", "fc1.bias", "empty"]
    assert f.arch == {"name": "tiny", "kwargs": {"width": 4}}
    assert f.recipe["prune"] == {"sparsity": 0.65} and f.metrics == {"error_pct": 1.5} and f.extra is None
    assert {k: bytes(v) for k, v in f.streams("fc1.weight").items()} == {
        "gap": bytes([0x21, 0x43, 0x05]), "index": bytes([1, 2, 3, 0])}
    assert list(f.streams("fc1.weight")) == ["gap", "index"]
    assert f.stream_sizes("fc1.bias") == {"data": 16}
    meta = f.meta("fc1.weight")
    meta["bits"] = 99
    assert f.meta("fc1.weight")["bits"] == 2, "meta() returns a copy"
    with pytest.raises(UnknownTensorError, match="no tensor 'nope' .*fc1.weight, fc1.bias, empty"):
        f.meta("nope")
    with pytest.raises(KeyError):
        f.streams("nope")


@pytest.mark.parametrize("layout", ["compact", "old"])
def test_verify_false_defers_section_checks(parts, old, layout):
    """Without verify the header is trusted but a tensor's checksum is checked when it is first used."""
    header, data = parts if layout == "compact" else old
    where = "tensor 'fc1.weight' \\(bytes" if layout == "compact" else "'fc1.weight' stream 'index'"
    bad = bytearray(data)
    bad[8] ^= 1  # first byte of fc1.weight "index"
    damaged = assemble(header, bytes(bad))
    _reject(damaged, ChecksumError, where)
    f = read_dcz(damaged, verify=False)
    assert bytes(f.streams("fc1.bias")["data"]) == data[16:32]
    with pytest.raises(ChecksumError, match=where):
        f.streams("fc1.weight")
