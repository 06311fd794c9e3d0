"""The bad-input catalogue (docs/bad_inputs.md): every bad input gets one ``error:`` line and a non-zero exit.

Each case runs the CLI in-process from a folder of prepared bad files (paths
are relative, so the messages are the ones a user sees); a few run as real
processes to show that nothing but the one line reaches stderr. ``early``
cases fail before any work, so the error is the only line on stderr; the
others may print progress first, and the error line is then the last one.

Regenerate the table of docs/bad_inputs.md (it prints Markdown)::

    cd /work/main && OPENBLAS_NUM_THREADS=1 /work/venv/bin/python tests/reliability/test_bad_inputs.py
"""

from __future__ import annotations

import os
import pickle
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reliability_helpers import FUZZ_SCRIPT, invoke, load_script  # noqa: E402


@dataclass(frozen=True)
class Case:
    id: str
    what: str  # the bad input, for the docs table
    args: tuple[str, ...]
    code: int  # expected exit code
    expect: str  # a substring of the error line
    early: bool = True  # fails before any work: the error line is all of stderr


C = Case
CASES: list[Case] = [
    C("missing-dcz", "missing file (inspect)", ("inspect", "missing.dcz"), 2, "does not exist"),
    C("missing-model", "missing model file (compress)", ("compress", "missing.pt", "-o", "o.dcz"), 2, "does not exist"),
    C("dir-dcz", "a directory instead of a file (inspect)", ("inspect", "adir"), 2, "is a directory"),
    C("dir-model", "a directory instead of a model (eval)", ("eval", "adir", "--data", "digits"), 2, "is a directory"),
    C("empty-dcz", "empty file (inspect)", ("inspect", "empty.dcz"), 2, "is empty"),
    C("empty-model", "empty model file (compress)", ("compress", "empty.pt", "-o", "o.dcz"), 2, "is empty"),
    C("text-model", "a text file as the model", ("compress", "notes.txt", "-o", "o.dcz"), 2, "not a PyTorch file"),
    C("text-dcz", "a text file given to inspect", ("inspect", "notes.txt"), 3, "not a .dcz file"),
    C("png-model", "a PNG image as the model", ("eval", "image.png", "--data", "digits"), 2, "not a PyTorch file"),
    C("png-dcz", "a PNG image given to inspect", ("inspect", "image.png"), 3, "bad magic 89504e47"),
    C("dcz-to-train", "a .dcz given to train (as the architecture)", ("train", "m.dcz", "--data", "digits"), 2,
      "unknown architecture 'm.dcz'"),
    C("pt-to-inspect", "a .pt checkpoint given to inspect", ("inspect", "m.pt"), 3, "looks like a zip archive"),
    C("pt-to-simulate", "a .pt checkpoint given to simulate", ("simulate", "m.pt"), 3, "not a .dcz file"),
    C("unknown-arch", "unknown architecture (train)", ("train", "nosuch", "--data", "digits"), 2,
      "unknown architecture 'nosuch'"),
    C("state-dict-no-arch", "a plain state_dict without --arch, to retrain on --data",
      ("compress", "sd.pt", "--data", "digits", "-o", "o.dcz"), 2, "retraining on --data needs the model"),
    C("state-dict-no-arch-prune", "a plain state_dict without --arch, asked to prune",
      ("compress", "sd.pt", "--sparsity", "0.5", "-o", "o.dcz"), 2, "--sparsity needs the model"),
    C("unknown-arch-sd", "unknown --arch for a state_dict", ("compress", "sd.pt", "--arch", "nosuch", "-o", "o.dcz"), 2,
      "unknown architecture 'nosuch'"),
    C("arch-import-missing", "--arch import path that does not exist",
      ("compress", "sd.pt", "--arch", "nosuchpkg.mod:Net", "-o", "o.dcz"), 2, "cannot import 'nosuchpkg.mod'"),
    C("arch-not-module", "--arch naming something that is not an nn.Module",
      ("compress", "sd.pt", "--arch", "os.path:join", "-o", "o.dcz"), 2, "not an nn.Module subclass"),
    C("arch-kwargs-misfit", "arch kwargs that do not fit the weights",
      ("compress", "sd.pt", "--arch", "lenet300", "--arch-kwargs", '{"in_features": 100}', "-o", "o.dcz"), 2,
      "shape mismatch: layers.0.weight (300, 64) vs (300, 100)"),
    C("arch-default-misfit", "weights for another input size (no kwargs)",
      ("compress", "sd.pt", "--arch", "lenet300", "-o", "o.dcz"), 2, "do not fit architecture lenet300"),
    C("arch-kwargs-unknown", "an arch kwarg the architecture does not take",
      ("compress", "sd.pt", "--arch", "lenet300", "--arch-kwargs", '{"bogus": 1}', "-o", "o.dcz"), 2,
      "takes no argument(s) ['bogus']"),
    C("arch-kwargs-negative", "an impossible layer size in arch kwargs",
      ("compress", "sd.pt", "--arch", "lenet300", "--arch-kwargs", '{"hidden": [-1, 5]}', "-o", "o.dcz"), 2,
      "cannot build 'lenet300'"),
    C("arch-kwargs-json", "bad JSON in --arch-kwargs",
      ("compress", "sd.pt", "--arch", "lenet300", "--arch-kwargs", "{in_features: 64", "-o", "o.dcz"), 2,
      "--arch-kwargs is not valid JSON"),
    C("arch-kwargs-list", "--arch-kwargs that is JSON but not an object",
      ("train", "lenet300", "--data", "digits", "--arch-kwargs", "[64]"), 2, "must be a JSON object"),
    C("sparsity-one", "sparsity 1.0 (outside [0, 1))", ("compress", "m.pt", "--sparsity", "1.0", "-o", "o.dcz"), 2,
      "sparsity must be in [0, 1)"),
    C("sparsity-negative", "negative sparsity", ("compress", "m.pt", "--sparsity", "-0.1", "-o", "o.dcz"), 2,
      "sparsity must be in [0, 1)"),
    C("sparsity-text", "sparsity that is not a number", ("compress", "m.pt", "--sparsity", "lots", "-o", "o.dcz"), 2,
      "--sparsity: bad value 'lots'"),
    C("sparsity-unknown-layer", "sparsity for a layer the model does not have",
      ("compress", "m.pt", "--sparsity", "nosuch.layer=0.5", "-o", "o.dcz"), 2, "not a compressible layer",
      early=True),
    C("bits-nine", "bits 9 (outside 1..8)", ("compress", "m.pt", "--bits", "9", "-o", "o.dcz"), 2,
      "bits must be from 1 to 8"),
    C("bits-zero", "bits 0", ("compress", "m.pt", "--bits", "fc=0", "-o", "o.dcz"), 2, "bits must be"),
    C("granularity-unknown", "unknown granularity", ("compress", "m.pt", "--granularity", "blocks", "-o", "o.dcz"), 2,
      "unknown granularity 'blocks'"),
    C("granularity-impossible", "granularity impossible for a layer (--fc-granularity kernel)",
      ("compress", "m.pt", "--fc-granularity", "kernel", "-o", "o.dcz"), 2, "impossible for a Linear weight",
      early=True),
    C("block-zero", "a block with a zero dimension", ("compress", "m.pt", "--block", "0x4", "-o", "o.dcz"), 2,
      "bad block shape '0x4'"),
    C("index-bits-zero", "--index-bits 0", ("compress", "m.pt", "--index-bits", "0", "-o", "o.dcz"), 2,
      "index bits must be auto or 1..8"),
    C("index-bits-nine", "--index-bits 9", ("compress", "m.pt", "--index-bits", "9", "-o", "o.dcz"), 2,
      "index bits must be auto or 1..8"),
    C("data-unknown", "a data spec pointing nowhere", ("compress", "m.pt", "--data", "nowhere", "-o", "o.dcz"), 2,
      "unknown data spec 'nowhere'"),
    C("data-mnist-missing", "mnist:DIR where DIR does not exist",
      ("train", "lenet300", "--data", "mnist:no/such/dir"), 2, "MNIST folder no/such/dir does not exist"),
    C("data-function-missing", "module:function that does not exist",
      ("eval", "m.pt", "--data", "os:no_such_function"), 2, "os has no function 'no_such_function'"),
    C("output-under-file", "unwritable output: a path under a regular file",
      ("compress", "m.pt", "-o", "notes.txt/o.dcz"), 2, "notes.txt"),
    C("output-under-file-train", "unwritable output for train (checked before training)",
      ("train", "lenet300", "--data", "digits", "-o", "notes.txt/m2.pt"), 2, "output folder notes.txt"),
    C("output-no-folder", "output in a folder that does not exist", ("compress", "m.pt", "-o", "nodir/o.dcz"), 2,
      "output folder nodir does not exist"),
    C("output-is-dir", "output path that is a directory", ("decode", "m.dcz", "-o", "adir"), 2, "is a directory"),
    C("output-is-input", "output that would overwrite the input model", ("compress", "m.pt", "-o", "m.pt"), 2,
      "would overwrite the input model"),
    C("dcz-corrupt", "a corrupt .dcz (one bit flipped)", ("inspect", "corrupt.dcz"), 3, "CRC32"),
    C("dcz-corrupt-eval", "a corrupt .dcz given to eval", ("eval", "corrupt.dcz", "--data", "digits"), 3, "CRC32"),
    C("dcz-truncated", "a truncated .dcz", ("inspect", "truncated.dcz"), 3, "file truncated"),
    C("dcz-truncated-decode", "a truncated .dcz given to decode", ("decode", "truncated.dcz", "-o", "dense.pt"), 3,
      "file truncated"),
    C("dcz-trailing", "a .dcz with bytes appended", ("inspect", "trailing.dcz"), 3, "has extra bytes"),
    C("dcz-newer", "a .dcz from a newer version (format 2.0)", ("inspect", "newer.dcz"), 3,
      "made by a newer version of deepcompress (format 2.0); upgrade"),
    C("dcz-feature", "a .dcz requiring an unknown feature", ("inspect", "feature.dcz"), 3,
      "unknown required feature 'sparse-v9'"),
    C("dcz-outside-class", "a .dcz naming a class outside the zoo, without --trust-arch",
      ("eval", "outside.dcz", "--data", "digits"), 2, "--trust-arch"),
    C("recipe-bad-toml", "bad TOML recipe", ("compress", "m.pt", "--recipe", "bad.toml", "-o", "o.dcz"), 2,
      "is not valid TOML"),
    C("recipe-missing", "recipe file that does not exist", ("compress", "m.pt", "--recipe", "none.toml", "-o", "o.dcz"),
      2, "recipe none.toml does not exist"),
    C("recipe-unknown-stage", "recipe with an unknown stage type",
      ("compress", "m.pt", "--recipe", "unknown_stage.toml", "-o", "o.dcz"), 2, "unknown stage type 'shrink'"),
    C("recipe-order", "recipe with a wrong stage order (finetune before quantize)",
      ("compress", "m.pt", "--recipe", "order.toml", "--data", "digits", "-o", "o.dcz"), 4,
      "stage 1 'finetune' needs codebooks"),
    C("recipe-after-encode", "recipe with a stage after encode",
      ("compress", "m.pt", "--recipe", "after_encode.toml", "-o", "o.dcz"), 4, "encode must be the last stage",
      early=True),
    C("pickle-payload", "a pickle with a code-execution payload", ("compress", "evil.pt", "-o", "o.dcz"), 2,
      "--trust-pickle"),
    C("zip-bomb", "a zip bomb as the model", ("eval", "bomb.pt", "--data", "digits"), 2, "possible zip bomb"),
    C("negative-epochs", "negative --epochs", ("train", "lenet300", "--data", "digits", "--epochs", "-1"), 2,
      "-1 is not in the range x>=0"),
    C("sensitivity-levels", "sensitivity levels outside (0, 1)",
      ("sensitivity", "m.pt", "--data", "digits", "--sparsities", "0.5,1.5", "-o", "sens"), 2,
      "every level must lie in (0, 1), got 1.5"),
    C("simulate-pes", "simulate with --pes 0", ("simulate", "m.dcz", "--pes", "0"), 2, "--pes must be >= 1"),
    C("missing-option", "a required option left out (eval without --data)", ("eval", "m.pt"), 2,
      "Missing option '--data'"),
    C("unknown-command", "unknown command", ("frobnicate",), 2, "No such command 'frobnicate'"),
    C("unknown-option", "unknown option", ("inspect", "m.dcz", "--verbose"), 2, "No such option '--verbose'"),
    C("decode-onto-input", "decode onto its own input", ("decode", "m.dcz", "-o", "m.dcz"), 2,
      "is the input file", early=True),
    C("compress-onto-link", "compress onto a hard link of its input", ("compress", "m.pt", "-o", "m_link.pt"), 2,
      "would overwrite the input model", early=True),
    C("shape-mismatch", "data whose inputs do not fit the model (10x10 images for an 8x8 model)",
      ("compress", "m.pt", "--data", "wrong_shape:loaders", "-o", "o.dcz"), 2,
      "the model does not fit the data", early=True),
    C("shape-mismatch-eval", "eval on data whose inputs do not fit the model",
      ("eval", "m.pt", "--data", "wrong_shape:loaders"), 2, "the model does not fit the data", early=True),
    C("cache-under-file", "a stage-cache folder that cannot be created (under a regular file)",
      ("compress", "m.pt", "--data", "digits", "--work-dir", "notes.txt/work", "-o", "o.dcz"), 2,
      "cannot write to stage cache folder notes.txt/work", early=True),
    C("sparsity-auto-no-data", "--sparsity auto without --data",
      ("compress", "m.pt", "--sparsity", "auto", "-o", "o.dcz"), 2, "--sparsity auto needs --data", early=True),
    C("output-device", "an output that is a device (/dev/null)", ("compress", "m.pt", "-o", "/dev/null"), 2,
      "is not a regular file"),
    C("nested-beside-loose", "a .pt with tensors at its top level beside a nested state dict (one would be lost)",
      ("compress", "nested.pt", "--lossless", "-o", "o.dcz"), 2, "holds tensors at its top level"),
    C("sparse-tensor", "a checkpoint holding a sparse tensor", ("compress", "sparse.pt", "-o", "o.dcz"), 2,
      "is a sparse_coo tensor"),
    C("lossless-with-bits", "--lossless with an option it would ignore",
      ("compress", "sd.pt", "--lossless", "--bits", "4", "-o", "o.dcz"), 2, "--bits does not go with --lossless"),
    C("frozen-torchscript", "a frozen TorchScript archive (weights are graph constants)",
      ("compress", "frozen.jit", "-o", "o.dcz"), 2, "this TorchScript model has no parameters"),
]

SUBPROCESS_CASES = ["dcz-corrupt", "arch-kwargs-json", "pickle-payload"]


# --------------------------------------------------------------------------- the folder of bad files


def _png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0\0")) + chunk(b"IEND", b"")


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


STAGES = {
    "order.toml": [("finetune", "epochs = 1"), ("quantize", "bits = 5"), ("encode", "")],
    "after_encode.toml": [("prune", "sparsity = 0.9"), ("quantize", "bits = 5"), ("encode", ""),
                          ("prune", "sparsity = 0.95")],
    "unknown_stage.toml": [("shrink", "")],
    "prune_after_quantize.toml": [("quantize", "bits = 5"), ("prune", "sparsity = 0.9"), ("encode", "")],
}


def build_folder(folder: Path, model: Path, dcz: Path) -> Path:
    """Every bad file the catalogue uses, in ``folder``."""
    import torch

    fuzz = load_script(FUZZ_SCRIPT, "fuzz_dcz")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(model, folder / "m.pt")
    shutil.copy(dcz, folder / "m.dcz")
    torch.save(torch.load(model, weights_only=True)["state_dict"], folder / "sd.pt")
    (folder / "adir").mkdir(exist_ok=True)
    (folder / "empty.dcz").write_bytes(b"")
    (folder / "empty.pt").write_bytes(b"")
    (folder / "notes.txt").write_text("these are not model weights\n")
    (folder / "image.png").write_bytes(_png())
    good = dcz.read_bytes()
    damaged = bytearray(good)
    damaged[len(good) // 2] ^= 0x04
    (folder / "corrupt.dcz").write_bytes(bytes(damaged))
    (folder / "truncated.dcz").write_bytes(good[: len(good) * 2 // 3])
    (folder / "trailing.dcz").write_bytes(good + b"\0" * 16)
    parts = fuzz.split(good)
    (folder / "newer.dcz").write_bytes(fuzz.seal(parts.header_text, parts.data, preamble=parts.preamble_size,
                                                 major=2, minor=0))
    header = parts.header
    header["required_features"] = ["sparse-v9"]
    (folder / "feature.dcz").write_bytes(fuzz.reseal(parts, header))
    header = parts.header
    header["arch"] = {"import": "nosuch_models.zoo:Net", "kwargs": {}}
    (folder / "outside.dcz").write_bytes(fuzz.reseal(parts, header))
    (folder / "bad.toml").write_text('[[stage]\ntype = "prune"\n')
    os.link(folder / "m.pt", folder / "m_link.pt")
    (folder / "wrong_shape.py").write_text(
        "import torch\n"
        "from torch.utils.data import DataLoader, TensorDataset\n\n\n"
        "def loaders():\n"
        "    data = TensorDataset(torch.zeros(8, 1, 10, 10), torch.zeros(8, dtype=torch.long))\n"
        "    return DataLoader(data, batch_size=4), DataLoader(data, batch_size=4)\n"
    )
    for name, stages in STAGES.items():
        (folder / name).write_text("".join(f'[[stage]]\ntype = "{t}"\n{body}\n' for t, body in stages))
    torch.save({"enc.weight": torch.randn(8, 8), "ema": {"enc.weight": torch.randn(8, 8)}}, folder / "nested.pt")
    torch.save({"w": torch.eye(4).to_sparse()}, folder / "sparse.pt")
    frozen = torch.jit.freeze(torch.jit.script(torch.nn.Sequential(torch.nn.Linear(4, 4)).eval()))
    torch.jit.save(frozen, folder / "frozen.jit")
    with open(folder / "evil.pt", "wb") as fh:
        pickle.dump({"state_dict": _Payload()}, fh, protocol=4)
    with zipfile.ZipFile(folder / "bomb.pt", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", b"\0" * (64 << 20))
    return folder


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory, digits_lenet300, digits_dcz) -> Path:
    return build_folder(tmp_path_factory.mktemp("bad") / "work", digits_lenet300, digits_dcz)


def check(case: Case, code: int, stderr: str) -> str:
    """Assert the contract; return the error line."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and "Warning" not in stderr, stderr
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr
    line = errors[0]
    assert "internal error" not in line, line
    assert code == case.code, (code, line)
    assert case.expect in line, line
    if case.early:
        assert len(lines) == 1, stderr
    return line


def test_catalogue_is_big_enough():
    assert len(CASES) >= 25 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, bad_folder, monkeypatch):
    monkeypatch.chdir(bad_folder)
    before = set(os.listdir(bad_folder))
    code, stdout, stderr = invoke(list(case.args))
    check(case, code, stderr)
    assert not (bad_folder / "PWNED").exists()
    created = set(os.listdir(bad_folder)) - before - {"o.dcz.work"}  # an empty stage cache folder may appear
    assert not created, f"a failed command left {sorted(created)}"


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_bad_input_in_a_real_process(case_id, bad_folder):
    """The installed entry point: stderr is the one line, nothing else (no warning, no traceback)."""
    case = next(c for c in CASES if c.id == case_id)
    proc = subprocess.run([sys.executable, "-m", "deepcompress.cli", *case.args], cwd=bad_folder,
                          capture_output=True, text=True, timeout=300)
    line = check(case, proc.returncode, proc.stderr)
    assert proc.stderr == line + "\n"
    assert not (bad_folder / "PWNED").exists()  # the pickle case: its payload did not run


def test_recipe_prune_after_quantize_is_refused_before_work(bad_folder, monkeypatch):
    monkeypatch.chdir(bad_folder)
    code, _, stderr = invoke(["compress", "m.pt", "--recipe", "prune_after_quantize.toml", "-o", "pq.dcz"])
    assert code == 4 and not (bad_folder / "pq.dcz").exists(), stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: stage 2 'prune'"), stderr


# --------------------------------------------------------------------------- the docs table


def markdown_table(folder: Path) -> str:
    rows = ["| # | bad input | command | exit | stderr (the whole of it, unless marked) |", "|---|---|---|---|---|"]
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        for n, case in enumerate(CASES, 1):
            code, _, stderr = invoke(list(case.args))
            line = check(case, code, stderr)
            cmd = " ".join(f"'{a}'" if (" " in a or "{" in a or "[" in a) else a for a in case.args)
            note = "" if case.early else " (last line; notices come first)"
            cells = [str(n), case.what, f"`deepcompress {cmd}`", str(code), f"`{line}`{note}"]
            rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    finally:
        os.chdir(cwd)
    return "\n".join(rows)


def main() -> None:
    import tempfile

    from deepcompress.checkpoint import save_checkpoint
    from deepcompress.zoo_training import train_model

    root = Path(tempfile.mkdtemp(prefix="bad-inputs-"))
    model, record, metrics, cfg = train_model("lenet300", "digits", epochs=8, seed=0, lr=0.05, batch_size=64,
                                              optimizer="sgd", weight_decay=5e-4, arch_kwargs={}, progress=False)
    save_checkpoint(root / "lenet300_digits.pt", model, record, metrics=metrics)
    code, _, stderr = invoke(["compress", root / "lenet300_digits.pt", "-o", root / "lenet300_digits.dcz", "--data",
                              "digits", "--retrain-epochs", "1", "--finetune-epochs", "1", "--no-cache"])
    assert code == 0, stderr
    folder = build_folder(root / "work", root / "lenet300_digits.pt", root / "lenet300_digits.dcz")
    print(markdown_table(folder))
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
