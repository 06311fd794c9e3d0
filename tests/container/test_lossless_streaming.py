"""Issue #17 item 3 for ``--lossless``: one tensor in memory at a time, a progress bar, bounded peak RSS, clean errors."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import struct
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from deepcompress.cli.main import cli
from deepcompress.container import read_dcz
from deepcompress.errors import ChecksumError, ContainerError
from deepcompress.lossless import compress_lossless, decode_lossless

REPO = Path(__file__).resolve().parents[2]
ST_DTYPES = {"bfloat16": ("BF16", np.uint16), "float16": ("F16", np.float16), "float32": ("F32", np.float32),
             "int64": ("I64", np.int64)}


def _float_bits(x: np.ndarray, dtype: str) -> np.ndarray:
    """float32 values as ``dtype``'s storage (bfloat16: truncated bit patterns)."""
    if dtype == "bfloat16":
        return (x.view(np.uint32) >> 16).astype(np.uint16)
    return x.astype(ST_DTYPES[dtype][1])


def write_st(path: Path, tensors: dict[str, tuple[str, np.ndarray]], metadata: dict | None = None) -> None:
    """A safetensors file of ``{name: (dtype, storage array)}`` written without torch."""
    header: dict = {} if metadata is None else {"__metadata__": metadata}
    offset = 0
    for name, (dtype, arr) in tensors.items():
        header[name] = {"dtype": ST_DTYPES[dtype][0], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    text = json.dumps(header).encode()
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)) + text)
        for _, arr in tensors.values():
            fh.write(np.ascontiguousarray(arr).tobytes())


def st_digests(path: Path) -> dict[str, tuple[str, list[int], str]]:
    """(dtype, shape, sha256 of the bytes) of every tensor of a safetensors file."""
    raw = path.read_bytes()
    (n,) = struct.unpack_from("<Q", raw)
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], hashlib.sha256(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
                .hexdigest()) for k, v in header.items()}


def _model(dtype: str, n: int = 6, seed: int = 0) -> dict[str, tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = {f"layers.{i}.weight": (dtype, _float_bits(rng.standard_normal((64, 80 + 16 * i), dtype=np.float32)
                                                        * np.float32(0.02), dtype)) for i in range(n)}
    out["norm.weight"] = (dtype, _float_bits(np.ones(64, dtype=np.float32), dtype))
    return out


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_cli_round_trip_sha256_of_every_tensor(tmp_path, dtype):
    src = tmp_path / "m.safetensors"
    write_st(src, _model(dtype), metadata={"format": "pt"})
    r = CliRunner().invoke(cli, ["compress", str(src), "--lossless", "-o", str(tmp_path / "m.dcz"), "--progress"])
    assert r.exit_code == 0, r.output
    assert "compress" in r.stderr and "B/s" in r.stderr and "7/7 tensors" in r.stderr  # the bar: bytes, rate, tensors
    r = CliRunner().invoke(cli, ["decode", str(tmp_path / "m.dcz"), "-o", str(tmp_path / "b.safetensors"), "--progress"])
    assert r.exit_code == 0, r.output
    assert "decode" in r.stderr and "B/s" in r.stderr and "7/7 tensors" in r.stderr
    assert st_digests(tmp_path / "b.safetensors") == st_digests(src)
    kinds = {read_dcz(tmp_path / "m.dcz").meta(f"layers.{i}.weight")["kind"] for i in range(6)}
    assert kinds == {"split_float"}


def test_no_progress_bar_by_default_off_a_terminal(tmp_path):
    src = tmp_path / "m.safetensors"
    write_st(src, _model("bfloat16", 2))
    r = CliRunner().invoke(cli, ["compress", str(src), "--lossless", "-o", str(tmp_path / "m.dcz")])
    assert r.exit_code == 0 and "B/s" not in r.stderr
    r = CliRunner().invoke(cli, ["decode", str(tmp_path / "m.dcz"), "-o", str(tmp_path / "b.safetensors"),
                                 "--no-progress"])
    assert r.exit_code == 0 and "B/s" not in r.stderr


def _error_line(r) -> str:
    assert r.exit_code != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_progress_flag_needs_a_checkpoint_run(tmp_path, digits_lenet300):
    src = tmp_path / "m.safetensors"
    write_st(src, _model("bfloat16", 1))
    line = _error_line(CliRunner().invoke(cli, ["compress", str(digits_lenet300), "--progress", "-o",
                                                str(tmp_path / "x.dcz")]))
    assert "--lossless" in line and not (tmp_path / "x.dcz").exists()
    r = CliRunner().invoke(cli, ["compress", str(src), "--progress", "-o", str(tmp_path / "s.dcz")])
    assert r.exit_code == 0 and "B/s" in r.stderr  # a checkpoint naming no architecture: weight-shared
    compress_lossless(src, tmp_path / "m.dcz")
    line = _error_line(CliRunner().invoke(cli, ["decode", str(tmp_path / "m.dcz"), "-o", str(tmp_path / "x.pt"),
                                                "--progress"]))
    assert "--progress" in line and not (tmp_path / "x.pt").exists()


def _listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_bad_inputs_fail_in_one_line_and_write_nothing(tmp_path):
    src = tmp_path / "m.safetensors"
    write_st(src, _model("float32", 3))
    # a safetensors file cut inside its last tensor
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(src.read_bytes()[:-100])
    before = _listing(tmp_path)
    line = _error_line(CliRunner().invoke(cli, ["compress", str(cut), "--lossless", "-o", str(tmp_path / "c.dcz")]))
    assert line.startswith("error:") and "cut.safetensors" in line
    assert _listing(tmp_path) == before  # no output, no spool file left behind
    # a .dcz with one flipped byte in the data area, and one cut short
    compress_lossless(src, tmp_path / "m.dcz")
    data = bytearray((tmp_path / "m.dcz").read_bytes())
    data[len(data) // 2] ^= 0x10
    (tmp_path / "flip.dcz").write_bytes(bytes(data))
    (tmp_path / "short.dcz").write_bytes(bytes(data[: len(data) // 2]))
    before = _listing(tmp_path)
    for bad, what in (("flip.dcz", "CRC32"), ("short.dcz", "truncated")):
        line = _error_line(CliRunner().invoke(cli, ["decode", str(tmp_path / bad), "-o", str(tmp_path / "o.safetensors")]))
        assert line.startswith("error:") and what in line and bad in line
        assert _listing(tmp_path) == before


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_compress_holds_a_bounded_number_of_tensors(tmp_path, monkeypatch, threads):
    """With one codec thread each tensor is garbage before the next is encoded; with T threads at most
    2T + 1 earlier tensors (in flight on the pool, or with the writer) are alive. The bytes are the same."""
    import threading

    import deepcompress.codecs.tensor as tensor_mod
    from deepcompress.codecs import parallel

    src = tmp_path / "m.safetensors"
    write_st(src, _model("bfloat16", 8))
    real = tensor_mod.encode_dense
    refs: list[tuple[weakref.ref, weakref.ref | None]] = []
    alive_at_call: list[int] = []
    lock = threading.Lock()

    def spy(name, arr, **kw):
        with lock:
            gc.collect()
            alive_at_call.append(sum(a() is not None or (e is not None and e() is not None) for a, e in refs))
            i = len(refs)
            refs.append((weakref.ref(arr.base if arr.base is not None else arr), None))
        et = real(name, arr, **kw)
        with lock:
            refs[i] = (refs[i][0], weakref.ref(et))
        return et

    monkeypatch.setattr(tensor_mod, "encode_dense", spy)
    monkeypatch.setattr(parallel, "threads", lambda: threads)
    done = compress_lossless(src, tmp_path / "m.dcz")
    assert done.n_tensors == 9 and len(alive_at_call) == 9
    if threads == 1:
        assert alive_at_call == [0] * 9  # nothing of an earlier tensor is still referenced
    else:
        assert max(alive_at_call) <= 2 * threads + 1
    monkeypatch.setattr(tensor_mod, "encode_dense", real)
    monkeypatch.setattr(parallel, "threads", lambda: 1)
    compress_lossless(src, tmp_path / "one.dcz")
    assert (tmp_path / "m.dcz").read_bytes() == (tmp_path / "one.dcz").read_bytes()


@pytest.mark.parametrize("threads", [1, 2])
def test_decode_holds_a_bounded_number_of_tensors_and_releases_their_pages(tmp_path, monkeypatch, threads):
    import threading

    from deepcompress.codecs import parallel
    from deepcompress.container.api import DczFile

    src = tmp_path / "m.safetensors"
    write_st(src, _model("float16", 8))
    compress_lossless(src, tmp_path / "m.dcz")
    real_decode, real_release = DczFile.decode, DczFile.release
    decoded: list[weakref.ref] = []
    alive_at_call: list[int] = []
    released: list[str] = []
    lock = threading.Lock()

    def decode(self, name, **kw):
        with lock:
            gc.collect()
            alive_at_call.append(sum(r() is not None for r in decoded))
        arr = real_decode(self, name, **kw)
        with lock:
            decoded.append(weakref.ref(arr))
        return arr

    def release(self, name=None):
        released.append(name)
        real_release(self, name)

    monkeypatch.setattr(DczFile, "decode", decode)
    monkeypatch.setattr(DczFile, "release", release)
    monkeypatch.setattr(parallel, "threads", lambda: threads)
    decode_lossless(tmp_path / "m.dcz", tmp_path / "b.safetensors")
    if threads == 1:
        assert alive_at_call == [0] * 9
    else:
        assert max(alive_at_call) <= threads + 1
    assert sorted(released) == sorted(read_dcz(tmp_path / "m.dcz").tensor_names)  # each once, in any order
    assert st_digests(tmp_path / "b.safetensors") == st_digests(src)


def test_mapped_reader_verifies_in_chunks_and_reads_after_release(tmp_path, monkeypatch):
    import mmap

    from deepcompress.container import reader

    src = tmp_path / "m.safetensors"
    write_st(src, _model("float32", 4))
    compress_lossless(src, tmp_path / "m.dcz")
    monkeypatch.setattr(reader, "CRC_CHUNK_BYTES", 4096)
    f = read_dcz(tmp_path / "m.dcz")
    assert isinstance(f._data, mmap.mmap)
    name = f.tensor_names[0]
    before = f.decode(name).tobytes()
    f.release(name)
    f.release()
    assert f.decode(name).tobytes() == before  # dropped pages come back from the file
    data = bytearray((tmp_path / "m.dcz").read_bytes())
    last = f.sections(f.tensor_names[-1])[-1]
    data[last.end - 1] ^= 1  # the last byte of the last section: found by chunked checks too
    (tmp_path / "bad.dcz").write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="CRC32"):
        read_dcz(tmp_path / "bad.dcz")
    assert reader.crc32_range(memoryview(bytes(data)), 0, len(data)) == __import__("zlib").crc32(bytes(data))
    with pytest.raises(ContainerError):
        read_dcz(bytes(data[:-1]))


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child of pytest reports pytest's peak
PEAK_SCRIPT = """
import sys
from deepcompress.lossless import compress_lossless, decode_lossless
step, src, dst = sys.argv[1:]
(compress_lossless if step == "compress" else decode_lossless)(src, dst)
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


def _peak_kib(step: str, src: Path, dst: Path) -> int:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, step, str(src), str(dst)], env=env,
                         capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux's /proc/self/status (VmHWM)")
def test_peak_rss_grows_with_the_largest_tensor_not_the_checkpoint(tmp_path):
    """A 144 MiB checkpoint of 18 tensors of 8 MiB: compress and decode stay within N/4 above a run on the
    first 6 tensors (as many as the codec threads hold in flight with 2 threads, 2 x 2 + 1, plus one).

    Holding the checkpoint (or its encoded form, ~0.66 N) would add far more than N/4; streaming adds a
    constant (allocator and page-cache slack). Memory, not time, is measured (VmHWM of a child).
    """
    rng = np.random.default_rng(0)
    shape = (4100, 1024)  # just over 8 MiB of bf16, so the zstd candidate takes its fast large-tensor level
    big = {f"t.{i}": ("bfloat16", _float_bits(rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02),
                                              "bfloat16")) for i in range(18)}
    write_st(tmp_path / "big.safetensors", big)
    write_st(tmp_path / "one.safetensors", {f"t.{i}": big[f"t.{i}"] for i in range(6)})
    n_kib = (tmp_path / "big.safetensors").stat().st_size // 1024
    del big
    for step, (src, dst), (bsrc, bdst) in (
        ("compress", ("big.safetensors", "big.dcz"), ("one.safetensors", "one.dcz")),
        ("decode", ("big.dcz", "big_back.safetensors"), ("one.dcz", "one_back.safetensors")),
    ):
        base = _peak_kib(step, tmp_path / bsrc, tmp_path / bdst)
        peak = _peak_kib(step, tmp_path / src, tmp_path / dst)
        assert peak - base < n_kib // 4, f"{step}: {peak - base} KiB above a one-tensor run for a {n_kib} KiB file"
    assert st_digests(tmp_path / "big_back.safetensors") == st_digests(tmp_path / "big.safetensors")


@pytest.mark.parametrize("case", ["normal", "zeros", "uniform_bits"])
def test_large_float_tensor_choice_is_the_full_comparison(case):
    """Above 8 MiB encode_dense skips the dense candidate on an estimate; the choice must equal the full one."""
    from deepcompress.codecs import streams
    from deepcompress.codecs.encoded import EncodedTensor
    from deepcompress.codecs.tensor import _stored_cost, encode_dense, encode_split_float

    rng = np.random.default_rng(1)
    n = (streams.ZSTD_LARGE_BYTES // 2) + 4096
    arr = {"normal": _float_bits(rng.standard_normal(n, dtype=np.float32) * np.float32(0.02), "bfloat16"),
           "zeros": np.zeros(n, dtype=np.uint16),
           "uniform_bits": rng.integers(0, 1 << 16, n, dtype=np.uint16)}[case]
    got = encode_dense("w", arr, dtype="bfloat16")
    split = encode_split_float("w", arr, dtype="bfloat16")
    dmeta, ddata = streams.encode_items(arr, fast=True)
    dense = EncodedTensor(meta={"name": "w", "kind": "dense", "shape": [n], "dtype": "bfloat16",
                                "streams": {"data": dmeta}}, streams={"data": ddata})
    want = split if _stored_cost(split) < _stored_cost(dense) else dense
    assert got.meta == want.meta
    assert {k: bytes(v) for k, v in got.streams.items()} == {k: bytes(v) for k, v in want.streams.items()}


def test_inspect_shows_codec_and_bits_per_weight_of_exact_floats(tmp_path):
    """Issue #17 item 5: split_float and zstd float tensors with their codec and bits per weight, torch-free."""
    src = tmp_path / "m.safetensors"
    model = _model("bfloat16", 2)
    model["zeros"] = ("float32", np.zeros((64, 64), dtype=np.float32))  # zstd beats split_float here
    write_st(src, model)
    compress_lossless(src, tmp_path / "m.dcz")
    code = (
        "import json, sys\n"
        "from click.testing import CliRunner\n"
        "from deepcompress.cli.inspect_cmd import inspect_cmd\n"
        "r = CliRunner().invoke(inspect_cmd, [sys.argv[1], '--json'])\n"
        "t = CliRunner().invoke(inspect_cmd, [sys.argv[1]])\n"
        "assert r.exit_code == 0 and t.exit_code == 0, r.output + t.output\n"
        "print(json.dumps({'json': json.loads(r.output), 'text': t.output, 'torch': 'torch' in sys.modules}))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = json.loads(subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.dcz")], env=env,
                                    capture_output=True, text=True, check=True).stdout)
    assert out["torch"] is False
    rows = {t["name"]: t for t in out["json"]["dense_tensors"]}
    f = read_dcz(tmp_path / "m.dcz")
    for name, row in rows.items():
        n_bytes = sum(f.stream_sizes(name).values())
        assert row["bits_per_weight"] == pytest.approx(8 * n_bytes / row["n_elements"])
    assert rows["layers.0.weight"]["codec"] == "split_float" and rows["layers.0.weight"]["dtype_bits"] == 16
    assert 8 < rows["layers.0.weight"]["bits_per_weight"] < 16
    assert rows["zeros"]["codec"] == "zstd" and rows["zeros"]["dtype_bits"] == 32
    assert rows["zeros"]["bits_per_weight"] < 1
    totals = out["json"]["float_totals"]
    assert totals["bfloat16"]["codecs"] == {"split_float": 2, "zstd": 1}  # norm.weight (all ones): zstd
    assert totals["bfloat16"]["n_weights"] == sum(r["n_elements"] for r in rows.values() if r["dtype"] == "bfloat16")
    assert totals["float32"] == {"n_tensors": 1, "n_weights": 4096, "bytes": rows["zeros"]["bytes"],
                                 "dtype_bits": 32, "codecs": {"zstd": 1},
                                 "bits_per_weight": 8 * rows["zeros"]["bytes"] / 4096}
    text = out["text"]
    line = next(ln for ln in text.splitlines() if ln.startswith("layers.0.weight"))
    assert "split_float" in line and f"{rows['layers.0.weight']['bits_per_weight']:.2f} of 16" in line
    assert "bfloat16 stored exactly: 3 tensors" in text and "codecs: 2 split_float, 1 zstd" in text


def test_progress_bar_is_erased_when_decoding_fails(tmp_path, monkeypatch):
    from deepcompress.container.api import DczFile

    src = tmp_path / "m.safetensors"
    write_st(src, _model("float16", 3))
    compress_lossless(src, tmp_path / "m.dcz")
    real = DczFile.decode
    last = read_dcz(tmp_path / "m.dcz").tensor_names[-1]

    def decode(self, name, **kw):  # the last tensor fails while the bar is on screen
        if name == last:
            raise ContainerError(f"tensor {name!r}: digest mismatch")
        return real(self, name, **kw)

    monkeypatch.setattr(DczFile, "decode", decode)
    r = CliRunner().invoke(cli, ["decode", str(tmp_path / "m.dcz"), "-o", str(tmp_path / "o.safetensors"),
                                 "--progress"])
    assert r.exit_code != 0 and not (tmp_path / "o.safetensors").exists()
    assert "decode:" in r.stderr and "/4 tensors" in r.stderr  # the bar was drawn ...
    visible = r.stderr.split("\r")[-1].strip()  # ... and erased: a terminal shows the error line alone
    assert visible == f"error: tensor {last!r}: digest mismatch"


@pytest.mark.parametrize("threads", [1, 2])
def test_huge_tensors_are_written_a_slice_at_a_time(tmp_path, monkeypatch, threads):
    """Tensors of at least ``SLICED_BYTES`` go from the decoder to the file slice by slice (``decode_into``), the
    others a few at a time in parallel (``decode_each``): the same file as before, in the original order."""
    from deepcompress import lossless
    from deepcompress.codecs import floatsplit, parallel
    from deepcompress.container.api import DczFile

    monkeypatch.setattr(parallel, "threads", lambda: threads)
    rng = np.random.default_rng(3)
    tensors = {"a": ("float32", np.ones(7, dtype=np.float32))}
    for i, n in enumerate((300_000, 5_000, 400_000, 260_000, 3_000)):
        tensors[f"w{i}"] = ("bfloat16", _float_bits(rng.standard_normal(n, dtype=np.float32) * np.float32(0.02),
                                                     "bfloat16").reshape(-1, 1000 if n % 1000 == 0 else 1))
    tensors["z"] = ("int64", np.arange(5, dtype=np.int64))
    src = tmp_path / "m.safetensors"
    write_st(src, tensors)
    compress_lossless(src, tmp_path / "m.dcz")
    decode_lossless(tmp_path / "m.dcz", tmp_path / "whole.safetensors")
    monkeypatch.setattr(lossless, "SLICED_BYTES", 500_000)
    monkeypatch.setattr(floatsplit, "DECODE_SLICE", 50_000)
    sliced: dict[str, int] = {}
    real = DczFile.decode_into

    def decode_into(self, name, sink, **kw):
        def counting(part):
            sliced[name] = sliced.get(name, 0) + 1
            sink(part)
        return real(self, name, counting, **kw)

    monkeypatch.setattr(DczFile, "decode_into", decode_into)
    decode_lossless(tmp_path / "m.dcz", tmp_path / "b.safetensors")
    assert set(sliced) == {"w0", "w2", "w3"} and max(sliced.values()) >= 2  # (slices are whole groups of Huffman blocks)
    assert (tmp_path / "b.safetensors").read_bytes() == (tmp_path / "whole.safetensors").read_bytes()
    assert st_digests(tmp_path / "b.safetensors") == st_digests(src)


def test_a_corrupt_huge_tensor_leaves_no_output(tmp_path, monkeypatch):
    """The slices of a huge tensor reach the output before its digest is checked: a wrong digest must still
    raise and leave nothing behind (the output is written atomically)."""
    import deepcompress.container as container
    from deepcompress import lossless
    from deepcompress.codecs import floatsplit

    rng = np.random.default_rng(4)
    src = tmp_path / "m.safetensors"
    write_st(src, {"w": ("bfloat16", _float_bits(rng.standard_normal(400_000, dtype=np.float32) * np.float32(0.02),
                                                 "bfloat16").reshape(400, 1000))})
    compress_lossless(src, tmp_path / "m.dcz")
    monkeypatch.setattr(lossless, "SLICED_BYTES", 1000)
    monkeypatch.setattr(floatsplit, "DECODE_SLICE", 50_000)
    real_read = container.read_dcz

    def read_with_a_wrong_digest(path, **kw):
        f = real_read(path, **kw)
        f._entry("w").meta["digest"] = "0" * 16
        return f

    monkeypatch.setattr(container, "read_dcz", read_with_a_wrong_digest)
    with pytest.raises(ContainerError, match="digest"):
        decode_lossless(tmp_path / "m.dcz", tmp_path / "b.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.dcz", "m.safetensors"]


# a checkpoint that is one tensor: decode holds slices of it, not the tensor (issue #17 item 3, any N)
ONE_TENSOR_PEAK = """
import sys
import deepcompress.lossless as L
if sys.argv[3] == "whole":
    L.SLICED_BYTES = 1 << 62
L.decode_lossless(sys.argv[1], sys.argv[2])
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux's /proc/self/status (VmHWM)")
def test_decode_of_a_one_tensor_checkpoint_holds_slices_not_the_tensor(tmp_path):
    """A 128 MiB checkpoint that is one bfloat16 tensor: decoding to safetensors peaks less than N/2 above a 2 MiB
    one (measured about 0.27 N: a few 8 MiB slices, the coded exponents, pages of the stream being read), where
    decoding the tensor whole first peaks above N."""
    rng = np.random.default_rng(0)
    for name, n in (("big", 64 << 20), ("small", 1 << 20)):
        x = rng.standard_normal(n, dtype=np.float32) * np.float32(0.02)
        write_st(tmp_path / f"{name}.safetensors", {"emb": ("bfloat16", _float_bits(x, "bfloat16").reshape(-1, 1024))})
        del x
        compress_lossless(tmp_path / f"{name}.safetensors", tmp_path / f"{name}.dcz")
    n_kib = (tmp_path / "big.safetensors").stat().st_size // 1024
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="2")

    def peak(name: str, how: str) -> int:
        out = subprocess.run([sys.executable, "-c", ONE_TENSOR_PEAK, str(tmp_path / f"{name}.dcz"),
                              str(tmp_path / f"{name}_{how}.safetensors"), how], env=env, capture_output=True,
                             text=True, check=True)
        return int(out.stdout.split()[-1])

    base = peak("small", "sliced")
    sliced, whole = peak("big", "sliced") - base, peak("big", "whole") - base
    assert sliced < n_kib // 2 < n_kib < whole, (sliced, whole, n_kib)
    assert st_digests(tmp_path / "big_sliced.safetensors") == st_digests(tmp_path / "big.safetensors")


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_large_tensors_spill_their_streams_with_the_same_bytes(tmp_path, monkeypatch, dtype, shared):
    """A large memory-mapped tensor's streams are coded a part at a time into spill files in the output's
    folder (never whole in memory): the file is byte for byte the one written from memory, decodes to the
    source, and no spill file is left behind."""
    from deepcompress.checkpoint_sharing import compress_shared
    from deepcompress.codecs import buffers, chunked, spill

    rng = np.random.default_rng(3)
    src = tmp_path / "m.safetensors"
    write_st(src, {"embed.weight": (dtype, _float_bits(rng.standard_normal((700, 1000), dtype=np.float32)
                                                        * np.float32(0.02), dtype)),
                   "norm.weight": (dtype, _float_bits(np.ones(1000, dtype=np.float32), dtype))})

    def run(out):
        done = compress_shared(src, out) if shared else compress_lossless(src, out)
        assert done.n_tensors == 2
        return out.read_bytes()

    expected = run(tmp_path / "memory.dcz")
    made: list[int] = []
    real = spill.Spilled.__init__

    def counting(self, file):
        made.append(1)
        real(self, file)

    monkeypatch.setattr(spill.Spilled, "__init__", counting)
    monkeypatch.setattr(buffers, "RELEASE_BYTES", 1 << 20)
    monkeypatch.setattr(chunked, "CHUNK", 1 << 17)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert run(out_dir / "spilled.dcz") == expected
    assert len(made) == (1 if shared else 2 if dtype == "bfloat16" else 4)  # index; exponent, mantissa (, lows)
    assert sorted(p.name for p in out_dir.iterdir()) == ["spilled.dcz"]
    decode_lossless(out_dir / "spilled.dcz", tmp_path / "back.safetensors")
    if not shared:
        assert st_digests(tmp_path / "back.safetensors") == st_digests(src)
