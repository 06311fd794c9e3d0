"""#15: the new user's set, data-free from the CLI with no flag beyond --arch: each architecture compresses,
round-trips exactly, keeps its embeddings / attention in-projections / recurrent weights compressed, and
reaches >= 4x against float32 with the defaults."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import deepcompress
from deepcompress.cli.main import cli

HERE = Path(__file__).parent
CASES = {
    "ResNet18": ("conv",),
    "MobileNetV2": ("conv",),
    "TiedGPT": ("embedding", "attention", "fc"),
    "BertLike": ("embedding", "attention", "fc"),
    "LSTMTagger": ("embedding", "recurrent", "fc"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_user_architecture_compresses_with_only_arch(name, tmp_path, monkeypatch):
    shutil.copy(HERE / "user_set.py", tmp_path / "user_set.py")  # a file in the current folder, as a user has
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    import user_set

    torch.manual_seed(0)
    model = getattr(user_set, name)()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    result = CliRunner().invoke(cli, ["compress", "model.pt", "--arch", f"user_set:{name}", "-o", "m.dcz",
                                      "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["compression_ratio"] >= 4.0, summary["compression_ratio"]
    assert summary["compression_ratio_fp32"] == pytest.approx(summary["compression_ratio"])

    info = CliRunner().invoke(cli, ["inspect", "m.dcz", "--json"])
    report = json.loads(info.stdout)
    kinds = {layer["layer_kind"] for layer in report["layers"]}
    assert set(CASES[name]) <= kinds
    stored = {layer["name"] for layer in report["layers"]} | {t["name"] for t in report["dense_tensors"]}
    dense_2d = [t["name"] for t in report["dense_tensors"] if t["shape"] and len(t["shape"]) >= 2]
    assert dense_2d == [], f"left dense: {dense_2d}"
    if name == "TiedGPT":
        assert report["tied"] == {"lm_head.weight": "tok.weight"} and "lm_head.weight" not in stored

    # round trip: the file decodes exactly to the compressed model, and load() rebuilds it (ties shared)
    state = deepcompress.load_state_dict("m.dcz")
    rebuilt = deepcompress.load("m.dcz", trust_arch=True)
    for key, value in rebuilt.state_dict().items():
        assert torch.equal(value, state[key]) and value.dtype == state[key].dtype
    if name == "TiedGPT":
        assert rebuilt.lm_head.weight is rebuilt.tok.weight
    mine = getattr(user_set, name)()
    deepcompress.load("m.dcz", model=mine)
    x = torch.randint(0, 256, (2, 16)) if name in ("TiedGPT", "BertLike", "LSTMTagger") else torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(mine(x), rebuilt(x))
