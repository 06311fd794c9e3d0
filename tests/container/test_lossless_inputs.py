"""What ``compress`` (lossless and data-free weight sharing) takes from a checkpoint, and what it refuses up front:
every refusal is one line, exit 2, no output file."""

from __future__ import annotations

import json
import os
import signal
import struct

import pytest

torch = pytest.importorskip("torch")
st_torch = pytest.importorskip("safetensors.torch")

from click.testing import CliRunner  # noqa: E402

from deepcompress.cli.main import cli  # noqa: E402


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _refused(r, out, *words):
    assert r.exit_code == 2, r.output
    line = r.output.strip()
    assert "\n" not in line and "Traceback" not in line, line
    for w in words:
        assert w in line, line
    assert not out.exists()


@pytest.mark.parametrize("lossless", [True, False])
def test_top_level_tensors_beside_a_nested_state_dict_are_not_dropped(tmp_path, lossless):
    src, out = tmp_path / "m.pt", tmp_path / "m.dcz"
    torch.save({"enc.weight": torch.randn(64, 64), "enc.bias": torch.randn(64),
                "ema": {"enc.weight": torch.randn(4, 4)}}, src)
    _refused(_run("compress", src, *(["--lossless"] if lossless else []), "-o", out), out,
             "top level", "'enc.weight'", "'ema'")


def test_a_scalar_beside_the_state_dict_is_metadata(tmp_path):
    src, out = tmp_path / "m.pt", tmp_path / "m.dcz"
    torch.save({"model": {"w": torch.randn(8, 8)}, "step": torch.tensor(3)}, src)
    r = _run("compress", src, "--lossless", "-o", out)
    assert r.exit_code == 0, r.output
    import deepcompress

    assert list(deepcompress.load_state_dict(out)) == ["w"]


@pytest.mark.parametrize("case", ["sparse", "meta", "qint8", "empty_name"])
@pytest.mark.parametrize("lossless", [True, False])
def test_tensors_a_dcz_cannot_hold_are_refused_before_any_work(tmp_path, case, lossless):
    tensor = {"sparse": lambda: torch.eye(4).to_sparse(), "meta": lambda: torch.empty(4, 4, device="meta"),
              "qint8": lambda: torch.quantize_per_tensor(torch.randn(4, 4), 0.1, 0, torch.qint8),
              "empty_name": lambda: torch.randn(4, 4)}[case]()
    src, out = tmp_path / "m.pt", tmp_path / "m.dcz"
    torch.save({"w": torch.randn(8, 8), ("" if case == "empty_name" else "x"): tensor}, src)
    word = {"sparse": "sparse_coo", "meta": "meta device", "qint8": "qint8", "empty_name": "named ''"}[case]
    _refused(_run("compress", src, *(["--lossless"] if lossless else []), "-o", out), out, word)


def test_an_empty_safetensors_name_is_refused(tmp_path):
    src, out = tmp_path / "m.safetensors", tmp_path / "m.dcz"
    st_torch.save_file({"": torch.randn(3), "w": torch.randn(3)}, src)
    _refused(_run("compress", src, "--lossless", "-o", out), out, "named ''")


def test_a_safetensors_dimension_numpy_cannot_hold_is_refused(tmp_path):
    src, out = tmp_path / "m.safetensors", tmp_path / "m.dcz"
    text = json.dumps({"a": {"dtype": "F32", "shape": [2**70, 0], "data_offsets": [0, 0]}}).encode()
    src.write_bytes(struct.pack("<Q", len(text)) + text)
    _refused(_run("compress", src, "--lossless", "-o", out), out, "bad shape")


@pytest.mark.parametrize("flag", [["--bits", "4"], ["--sparsity", "0.5"], ["--data", "digits"], ["--distill"],
                                  ["--max-error", "0.01"], ["--seed", "3"], ["--arch", "lenet300"]])
def test_lossless_refuses_options_it_would_ignore(tmp_path, flag):
    src, out = tmp_path / "m.safetensors", tmp_path / "m.dcz"
    st_torch.save_file({"w": torch.randn(8, 8)}, src)
    _refused(_run("compress", src, "--lossless", *flag, "-o", out), out, flag[0], "--lossless")


@pytest.mark.parametrize("what", ["pickle", "dcz", "directory"])
def test_lossless_says_what_the_input_is(tmp_path, what):
    out = tmp_path / "o.dcz"
    if what == "pickle":
        src = tmp_path / "m.pt"
        torch.save({"w": torch.randn(2), "obj": _Opaque()}, src)
        words = ("pickled Python objects",)
    elif what == "dcz":
        st_torch.save_file({"w": torch.randn(8, 8)}, tmp_path / "m.safetensors")
        assert _run("compress", tmp_path / "m.safetensors", "--lossless", "-o", tmp_path / "m.dcz").exit_code == 0
        src, words = tmp_path / "m.dcz", ("already a .dcz",)
    else:
        src, words = tmp_path, ("is a directory",)
    _refused(_run("compress", src, "--lossless", "-o", out), out, *words)


class _Opaque:
    pass


def test_inspect_states_the_ratio_against_a_half_precision_checkpoints_own_bytes(tmp_path):
    src, out = tmp_path / "m.safetensors", tmp_path / "m.dcz"
    st_torch.save_file({"w": torch.randn(256, 256).to(torch.bfloat16)}, src)
    assert _run("compress", src, "-o", out).exit_code == 0
    r = _run("inspect", out, "--json")
    summary = json.loads(r.output)
    assert summary["input_bytes"] == 256 * 256 * 2
    assert summary["input_ratio"] == pytest.approx(summary["compression_ratio"] / 2, rel=1e-6)


def test_float8_checkpoint_lists_its_feature(tmp_path):
    from deepcompress.container import read_dcz

    src, out = tmp_path / "m.safetensors", tmp_path / "m.dcz"
    st_torch.save_file({"w": torch.randn(64, 8).to(torch.float8_e4m3fn)}, src)
    assert _run("compress", src, "--lossless", "-o", out).exit_code == 0
    assert "float8" in read_dcz(out).header["required_features"]
    r = _run("inspect", out)
    assert r.exit_code == 0 and "float8_e4m3fn stored exactly" in r.output


def test_sigterm_unwinds_like_ctrl_c():
    from deepcompress.cli.main import _terminate_as_interrupt

    old = signal.getsignal(signal.SIGTERM)
    try:
        _terminate_as_interrupt()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0)  # the handler has run by the time the next bytecode does
    finally:
        signal.signal(signal.SIGTERM, old)


@pytest.mark.parametrize("lossless", [True, False])
def test_tied_tensors_of_a_state_dict_are_stored_once_and_given_back_tied(tmp_path, lossless):
    from safetensors import safe_open

    import deepcompress

    emb = torch.randn(64, 32)
    state = {"emb.weight": emb, "mid.weight": torch.randn(32, 32), "head.weight": emb, "out.weight": emb,
             "view.weight": emb.t()}  # a transpose is another view: stored on its own
    src, out = tmp_path / "t.pt", tmp_path / "t.dcz"
    torch.save(state, src)
    r = _run("compress", src, *(["--lossless"] if lossless else []), "-o", out, "--json")
    assert r.exit_code == 0, r.output
    unique = 4 * (64 * 32 * 2 + 32 * 32)
    assert json.loads(r.output.strip().splitlines()[-1])["input_bytes"] == unique
    back = deepcompress.load_state_dict(out)
    assert list(back) == list(state) or set(back) == set(state)
    assert back["head.weight"] is back["emb.weight"] and back["out.weight"] is back["emb.weight"]
    assert back["view.weight"] is not back["emb.weight"]
    if lossless:
        assert all(torch.equal(back[k], v) for k, v in state.items())
    shown = _run("inspect", out).output
    assert "shared: head.weight is emb.weight" in shown
    dec = _run("decode", out, "-o", tmp_path / "back.safetensors")
    assert dec.exit_code == 0, dec.output
    with safe_open(tmp_path / "back.safetensors", "pt") as f:
        assert set(f.keys()) == set(state)
        assert torch.equal(f.get_tensor("out.weight"), back["emb.weight"])
        assert torch.equal(f.get_tensor("view.weight"), back["view.weight"])


def test_checkpoint_mode_says_what_it_left_dense_and_writes_a_report_when_asked(tmp_path):
    src, out = tmp_path / "m.pt", tmp_path / "m.dcz"
    nan = torch.randn(128, 64)
    nan[3, 5] = float("nan")
    torch.save({"a.weight": torch.randn(128, 64), "b.weight": nan, "a.bias": torch.randn(128),
                "small.weight": torch.randn(8, 8), "steps": torch.arange(4)}, src)
    r = _run("compress", src, "-o", out)
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "m.report.md").exists()  # not by default for a checkpoint
    for line in ("left dense: b.weight: holds a NaN", "left dense: a.bias: 1-D",
                 "left dense: small.weight: fewer than 1024 elements", "left dense: steps: int64 values"):
        assert line in r.output, r.output
    assert "left dense: b.weight: holds a NaN" in _run("inspect", out).output
    r = _run("compress", src, "--report", "-o", tmp_path / "r.dcz")
    assert r.exit_code == 0 and (tmp_path / "r.report.md").is_file() and "report:" in r.output, r.output
