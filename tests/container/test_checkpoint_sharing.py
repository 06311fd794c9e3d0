"""A checkpoint naming no architecture, weight-shared data-free: ``compress model.safetensors`` / ``decode -o``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from test_lossless_streaming import _float_bits, st_digests, write_st

from deepcompress.checkpoint_sharing import ShareSettings, compress_shared
from deepcompress.cli.main import cli
from deepcompress.container import read_dcz
from deepcompress.errors import ConfigError
from deepcompress.lossless import SHARED_KEY, decode_lossless

torch = pytest.importorskip("torch")
st_torch = pytest.importorskip("safetensors.torch")


def _checkpoint(dtype: str) -> dict[str, tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    w = lambda *shape: (dtype, _float_bits(rng.standard_normal(shape, dtype=np.float32) * np.float32(0.05), dtype))
    return {
        "embed.weight": w(300, 32),
        "layers.0.attn.weight": w(96, 32),
        "layers.0.conv.weight": w(16, 8, 3, 3),
        "layers.0.norm.weight": w(32),  # 1-D: exact
        "tiny.weight": w(8, 8),  # below min_elements: exact
        "steps": ("int64", np.array([3, 4], dtype=np.int64)),
    }


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
@pytest.mark.parametrize("bits", [None, 3])
def test_round_trip_shares_the_matrices_and_keeps_the_rest_exact(tmp_path, dtype, bits):
    src = tmp_path / "m.safetensors"
    ckpt = _checkpoint(dtype)
    write_st(src, ckpt, metadata={"format": "pt"})
    done = compress_shared(src, tmp_path / "m.dcz", ShareSettings(bits=bits))
    shared = {"embed.weight", "layers.0.attn.weight", "layers.0.conv.weight"}
    assert set(done.bits) == shared and done.kinds["quantized"] == 3
    assert all(b == 3 for b in done.bits.values()) if bits else all(2 <= b <= 8 for b in done.bits.values())
    decode_lossless(tmp_path / "m.dcz", tmp_path / "back.safetensors")
    before, after = st_digests(src), st_digests(tmp_path / "back.safetensors")
    assert list(after) == list(before)  # names and order
    assert {k: v[:2] for k, v in after.items()} == {k: v[:2] for k, v in before.items()}  # dtypes, shapes
    for name in set(before) - shared:
        assert after[name] == before[name]  # exact
    back = st_torch.load_file(tmp_path / "back.safetensors")
    dcz = read_dcz(tmp_path / "m.dcz")
    for name in shared:
        orig = st_torch.load_file(src)[name].double()
        got = back[name].double()
        values = torch.unique(got)
        assert values.numel() <= 2 ** done.bits[name]
        rel = float((got - orig).norm() / orig.norm())
        assert rel <= (ShareSettings().max_error if bits is None else 0.35), (name, rel)
        assert dcz.meta(name)["kind"] == "quantized"
    assert dcz.extra["dtypes"] == {n: dtype for n in shared}


def test_same_bytes_at_any_thread_count(tmp_path, monkeypatch):
    from deepcompress.codecs import parallel

    src = tmp_path / "m.safetensors"
    write_st(src, _checkpoint("bfloat16"))
    outs = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(parallel, "threads", lambda t=threads: t)
        outs.append(compress_shared(src, tmp_path / f"m{threads}.dcz").output.read_bytes())
    assert outs[0] == outs[1] == outs[2]


def test_load_state_dict_gives_the_source_dtypes(tmp_path):
    import deepcompress

    src = tmp_path / "m.pt"
    g = torch.Generator().manual_seed(0)
    state = {"a.weight": torch.randn(64, 40, generator=g).to(torch.bfloat16), "a.bias": torch.randn(64).half(),
             "b.weight": torch.randn(32, 64, generator=g)}
    torch.save({"state_dict": state, "epoch": 3}, src)
    compress_shared(src, tmp_path / "m.dcz", ShareSettings(bits=4))
    back = deepcompress.load_state_dict(tmp_path / "m.dcz")
    assert {k: (v.dtype, tuple(v.shape)) for k, v in back.items()} == {k: (v.dtype, tuple(v.shape))
                                                                       for k, v in state.items()}
    assert torch.equal(back["a.bias"], state["a.bias"])
    assert torch.unique(back["a.weight"]).numel() <= 16


def test_settings_are_checked():
    for bad in ({"bits": 0}, {"bits": 9}, {"bits": True}, {"max_error": 0}, {"max_error": float("nan")},
                {"init": "random"}, {"min_elements": 0}):
        with pytest.raises(ConfigError):
            ShareSettings(**bad)


def _run(args):
    return CliRunner().invoke(cli, args)


def test_cli_compress_of_a_checkpoint_without_architecture(tmp_path):
    src = tmp_path / "m.safetensors"
    write_st(src, _checkpoint("bfloat16"))
    r = _run(["compress", str(src)])
    assert r.exit_code == 0, r.output
    assert "weight-shared" in r.stdout and (tmp_path / "m.dcz").is_file()
    r = _run(["compress", str(src), "-o", str(tmp_path / "j.dcz"), "--bits", "4", "--json"])
    summary = json.loads(r.stdout)
    assert set(summary["bits"].values()) == {4} and summary["file_bytes"] == (tmp_path / "j.dcz").stat().st_size
    r = _run(["compress", str(src), "-o", str(tmp_path / "e.dcz"), "--max-error", "0.3", "--json"])
    loose = json.loads(r.stdout)
    assert loose["file_bytes"] < summary["file_bytes"] or max(loose["bits"].values()) <= 4
    r = _run(["decode", str(tmp_path / "m.dcz"), "-o", str(tmp_path / "back.safetensors")])
    assert r.exit_code == 0, r.output
    assert list(st_digests(tmp_path / "back.safetensors")) == list(st_digests(src))
    info = _run(["inspect", str(tmp_path / "j.dcz"), "--json"])
    assert info.exit_code == 0 and "embed.weight" in info.stdout


@pytest.mark.parametrize("args,match", [
    (["--data", "digits"], "retraining on --data needs the model"),
    (["--sparsity", "0.5"], "--sparsity needs the model"),
    (["--granularity", "kernel"], "--granularity needs the model"),
    (["--bits", "conv=8,fc=5"], "one number of bits"),
    (["--bits", "12"], "one number of bits"),
])
def test_cli_refuses_what_needs_a_model_in_one_line(tmp_path, args, match):
    src = tmp_path / "m.safetensors"
    write_st(src, _checkpoint("float32"))
    r = _run(["compress", str(src), "-o", str(tmp_path / "x.dcz"), *args])
    assert r.exit_code == 2 and match in r.output and "Traceback" not in r.output
    assert not (tmp_path / "x.dcz").exists()


def test_max_error_is_refused_for_a_model_with_an_architecture(tmp_path, digits_lenet300):
    r = _run(["compress", str(digits_lenet300), "-o", str(tmp_path / "x.dcz"), "--max-error", "0.1"])
    assert r.exit_code == 2 and "--max-error goes with a checkpoint" in r.output


def test_a_checkpoint_file_is_evaluated_and_loaded_through_a_named_architecture(tmp_path, digits_lenet300):
    """A .dcz without an architecture: `eval --arch` builds it, `load(model=)` fills it, and `module.`
    prefixes of a DataParallel checkpoint are dropped; without either, one line says what to give."""
    import deepcompress
    from deepcompress.models import build_model

    state = {f"module.{k}": v for k, v in torch.load(digits_lenet300, weights_only=True)["state_dict"].items()}
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "dp.pt")
    compress_shared(tmp_path / "dp.pt", tmp_path / "dp.dcz", ShareSettings(bits=8))
    model = deepcompress.load(tmp_path / "dp.dcz", model=build_model("lenet300", in_features=64))
    assert isinstance(model, torch.nn.Module)
    r = _run(["eval", str(tmp_path / "dp.dcz"), "--arch", "lenet300", "--arch-kwargs", '{"in_features": 64}',
              "--data", "digits", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["top1"] > 0.8
    r = _run(["eval", str(tmp_path / "dp.dcz"), "--data", "digits"])
    assert r.exit_code != 0 and "--arch" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_sliced_decode_of_shared_tensors_writes_the_same_file(tmp_path, monkeypatch, dtype):
    """Weight-shared tensors above ``SLICED_BYTES`` go to the output a lookup slice at a time, in their recorded
    dtype: the same file as decoding them whole."""
    from deepcompress import lossless
    from deepcompress.codecs import tensor as T

    src = tmp_path / "m.safetensors"
    write_st(src, _checkpoint(dtype))
    compress_shared(src, tmp_path / "m.dcz", ShareSettings(bits=4))
    decode_lossless(tmp_path / "m.dcz", tmp_path / "whole.safetensors")
    monkeypatch.setattr(lossless, "SLICED_BYTES", 2000)
    monkeypatch.setattr(T, "LOOKUP_SLICE", 1000)
    decode_lossless(tmp_path / "m.dcz", tmp_path / "sliced.safetensors")
    assert (tmp_path / "sliced.safetensors").read_bytes() == (tmp_path / "whole.safetensors").read_bytes()


def _row_scaled(dtype: str, rows: int = 64, cols: int = 48) -> dict[str, tuple[str, np.ndarray]]:
    """A matrix whose rows differ in scale by 100x (what per-group codebooks are for), and a bias."""
    rng = np.random.default_rng(5)
    scale = np.geomspace(0.001, 0.1, rows).astype(np.float32)[:, None]
    w = rng.standard_normal((rows, cols), dtype=np.float32) * scale
    return {"fc.weight": (dtype, _float_bits(w, dtype)),
            "fc.bias": (dtype, _float_bits(rng.standard_normal(rows, dtype=np.float32), dtype))}


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_group_size_gives_each_group_of_rows_its_codebook(tmp_path, dtype):
    """``group_size=G``: one codebook per G rows (the header says so), every decoded row takes at most 2**bits
    values of its group's codebook, the error falls well below one codebook's on rows of unequal scale, and the
    settings are recorded; a matrix of at most G rows keeps one codebook."""
    src = tmp_path / "m.safetensors"
    write_st(src, _row_scaled(dtype))
    one = compress_shared(src, tmp_path / "one.dcz", ShareSettings(bits=3))
    grouped = compress_shared(src, tmp_path / "g.dcz", ShareSettings(bits=3, group_size=8))
    dcz = read_dcz(tmp_path / "g.dcz")
    assert dcz.meta("fc.weight")["groups"] == 8 and "grouped_codebook" in dcz.header["required_features"]
    assert dcz.extra[SHARED_KEY]["sharing"]["group_size"] == 8
    assert "groups" not in read_dcz(tmp_path / "one.dcz").meta("fc.weight")
    orig = st_torch.load_file(src)["fc.weight"].double()
    errors, small = {}, {}
    for name, done in (("one", one), ("g", grouped)):
        decode_lossless(done.output, tmp_path / f"{name}.safetensors")
        got = st_torch.load_file(tmp_path / f"{name}.safetensors")["fc.weight"].double()
        errors[name] = float((got - orig).norm() / orig.norm())
        small[name] = float((got[:8] - orig[:8]).norm() / orig[:8].norm())  # the 8 rows of smallest scale
        if name == "g":
            for g in range(8):
                assert torch.unique(got[8 * g:8 * g + 8]).numel() <= 8
    assert errors["g"] < 0.85 * errors["one"], errors
    assert small["g"] < 0.25 < 0.9 < small["one"], small  # one codebook rounds the small rows to nearly nothing
    wide = compress_shared(src, tmp_path / "w.dcz", ShareSettings(bits=3, group_size=64))
    assert "groups" not in read_dcz(wide.output).meta("fc.weight")


def test_grouped_sharing_spills_with_the_same_bytes(tmp_path, monkeypatch):
    """A large grouped tensor's labels are made a group part at a time and coded into a spill file: the same
    file as in memory, with groups cutting across the coder's chunks."""
    from deepcompress.codecs import buffers, chunked

    src = tmp_path / "m.safetensors"
    write_st(src, _row_scaled("bfloat16", rows=700, cols=1000))
    settings = ShareSettings(bits=None, group_size=48)
    expected = compress_shared(src, tmp_path / "memory.dcz", settings).output.read_bytes()
    monkeypatch.setattr(buffers, "RELEASE_BYTES", 1 << 20)
    monkeypatch.setattr(chunked, "CHUNK", 1 << 17)
    (tmp_path / "out").mkdir()
    assert compress_shared(src, tmp_path / "out" / "s.dcz", settings).output.read_bytes() == expected


def test_cli_group_size(tmp_path, digits_lenet300):
    src = tmp_path / "m.safetensors"
    write_st(src, _row_scaled("float32"))
    r = _run(["compress", str(src), "-o", str(tmp_path / "g.dcz"), "--bits", "4", "--group-size", "16"])
    assert r.exit_code == 0, r.output
    assert "one codebook per 16 rows" in r.stdout
    assert read_dcz(tmp_path / "g.dcz").meta("fc.weight")["groups"] == 16
    for args, match in ((["--lossless"], "--group-size is weight sharing"),
                        (["--group-size", "0"], "0 is not in the range")):
        r = _run(["compress", str(src), "-o", str(tmp_path / "x.dcz"), "--group-size", "16", *args])
        assert r.exit_code == 2 and match in r.output and "Traceback" not in r.output
    r = _run(["compress", str(digits_lenet300), "-o", str(tmp_path / "x.dcz"), "--group-size", "16"])
    assert r.exit_code == 2 and "--group-size goes with a checkpoint naming no architecture" in r.output
    assert not (tmp_path / "x.dcz").exists()
