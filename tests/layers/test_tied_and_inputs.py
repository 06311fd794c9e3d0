"""#15: tied parameters, state dicts that omit a tied duplicate, half-precision checkpoints through the CLI,
TorchScript input and the text:PATH data spec."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import deepcompress
from deepcompress.cli.main import cli
from deepcompress.errors import ConfigError, DataError
from deepcompress.layers import compressible_layers, tied_parameters
from deepcompress.models import build_model
from deepcompress.quantize.finetune import SharedWeights
from deepcompress.quantize.sharing import share_weights

GPT = {"name": "gpt_char", "kwargs": {"num_classes": 20, "block_size": 16, "n_layer": 2, "n_embd": 32, "n_head": 2}}


class TiedAutoencoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(16, 8, bias=False)
        self.dec = nn.Linear(8, 16, bias=False)
        self.dec.weight = nn.Parameter(self.enc.weight.T.contiguous())  # replaced below: tie the same tensor
        self.dec_scale = nn.Parameter(torch.ones(16))

    def forward(self, x):
        return (torch.relu(self.enc(x)) @ self.enc.weight) * self.dec_scale


def _gpt():
    torch.manual_seed(0)
    return build_model(GPT["name"], **GPT["kwargs"])


def test_gpt_tie_is_detected_compressed_once_and_restored_shared(tmp_path):
    model = _gpt()
    assert tied_parameters(model) == {"lm_head.weight": "tok_emb.weight"}
    ref = next(r for r in compressible_layers(model) if r.tensor_name == "tok_emb.weight")
    assert ref.kind == "embedding" and ref.aliases == ("lm_head.weight",)
    out = tmp_path / "g.dcz"
    result = deepcompress.compress(model, out, arch=GPT, progress=False, log=lambda line: None)
    assert result.tied == {"lm_head.weight": "tok_emb.weight"}
    dcz = deepcompress.model_input.read_dcz_file(out)
    assert "lm_head.weight" not in dcz.tensor_names and dcz.meta("tok_emb.weight")["kind"] == "quantized"
    report = json.loads(CliRunner().invoke(cli, ["inspect", str(out), "--json"]).stdout)
    assert report["tied"] == {"lm_head.weight": "tok_emb.weight"}
    text = CliRunner().invoke(cli, ["inspect", str(out)]).stdout
    assert "shared: lm_head.weight is tok_emb.weight (tied; stored once)" in text
    assert "tok_emb.weight (= lm_head.weight)" in text
    loaded = deepcompress.load(out)
    assert loaded.lm_head.weight is loaded.tok_emb.weight
    mine = _gpt()
    deepcompress.load(out, model=mine)
    assert mine.lm_head.weight is mine.tok_emb.weight
    assert torch.equal(mine.tok_emb.weight, result.model.tok_emb.weight)
    x = torch.randint(0, 20, (2, 16))
    with torch.no_grad():
        assert torch.equal(loaded(x), result.model.eval()(x))


def test_tied_finetuning_trains_one_codebook_and_reties():
    model = _gpt()
    books = share_weights(model, "4")
    assert "lm_head.weight" not in books
    shared = SharedWeights.attach(model, books)
    assert [n for n, _ in shared.named_parameters()][0] == "tok_emb.weight"
    loss = model(torch.randint(0, 20, (2, 16))).square().mean()
    loss.backward()
    centroids = dict(shared.named_parameters())["tok_emb.weight"]
    assert centroids.grad is not None and centroids.grad.abs().sum() > 0
    shared.detach()
    assert model.lm_head.weight is model.tok_emb.weight
    assert list(model.state_dict()) == list(_gpt().state_dict())


def test_tied_autoencoder_and_a_state_dict_without_the_duplicate(tmp_path, monkeypatch):
    model = TiedAutoencoder()
    model.dec.weight = model.enc.weight  # the tie (same Parameter)
    assert tied_parameters(model) == {"dec.weight": "enc.weight"}
    result = deepcompress.compress(model, tmp_path / "a.dcz", progress=False, log=lambda line: None)
    assert result.tied == {"dec.weight": "enc.weight"}
    # a safetensors file that drops the tied duplicate (as Hugging Face writes them) compresses from the CLI
    from safetensors.torch import save_file

    gpt = _gpt()
    state = {k: v.contiguous() for k, v in gpt.state_dict().items() if k != "lm_head.weight"}
    save_file(state, tmp_path / "g.safetensors")
    run = CliRunner().invoke(cli, ["compress", str(tmp_path / "g.safetensors"), "--arch", "gpt_char", "--arch-kwargs",
                                   json.dumps(GPT["kwargs"]), "-o", str(tmp_path / "g.dcz"), "--json"])
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout.strip().splitlines()[-1])["tied"] == {"lm_head.weight": "tok_emb.weight"}
    # and a state dict holding only the alias's name fills the canonical one
    only_alias = {("lm_head.weight" if k == "tok_emb.weight" else k): v for k, v in gpt.state_dict().items()}
    fresh = _gpt()
    from deepcompress.arch import fill_state_dict

    fill_state_dict(fresh, only_alias, "gpt_char")
    assert torch.equal(fresh.tok_emb.weight, gpt.tok_emb.weight) and fresh.lm_head.weight is fresh.tok_emb.weight


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_checkpoint_through_the_cli(dtype, tmp_path):
    model = _gpt().to(getattr(torch, dtype))
    torch.save(model.state_dict(), tmp_path / "m.pt")
    run = CliRunner().invoke(cli, ["compress", str(tmp_path / "m.pt"), "--arch", "gpt_char", "--arch-kwargs",
                                   json.dumps(GPT["kwargs"]), "-o", str(tmp_path / "m.dcz"), "--json"])
    assert run.exit_code == 0, run.output
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    n = sum(v.numel() for k, v in model.state_dict().items() if k != "lm_head.weight")
    assert summary["dense_bytes"] == 2 * n and summary["fp32_bytes"] == 4 * n
    assert summary["compression_ratio_fp32"] == pytest.approx(2 * summary["compression_ratio"])
    text = CliRunner().invoke(cli, ["compress", str(tmp_path / "m.pt"), "--arch", "gpt_char", "--arch-kwargs",
                                    json.dumps(GPT["kwargs"]), "-o", str(tmp_path / "n.dcz")]).stdout
    assert "bytes as given" in text and "against float32" in text
    dec = CliRunner().invoke(cli, ["decode", str(tmp_path / "m.dcz"), "-o", str(tmp_path / "d.pt")])
    assert dec.exit_code == 0, dec.output
    decoded = torch.load(tmp_path / "d.pt", weights_only=True)["state_dict"]
    assert {v.dtype for v in decoded.values()} == {getattr(torch, dtype)}
    loaded = deepcompress.load(tmp_path / "m.dcz")
    assert {p.dtype for p in loaded.parameters()} == {getattr(torch, dtype)}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_model_retrains_in_float32_and_is_stored_in_its_dtype(dtype, tmp_path):
    torch.manual_seed(0)
    half = build_model("lenet300", in_features=64).to(getattr(torch, dtype))
    before = {k: v.clone() for k, v in half.state_dict().items()}
    lines: list[str] = []
    result = deepcompress.compress(half, tmp_path / "h.dcz", data="digits", retrain_epochs=1, finetune_epochs=1,
                                   progress=False, log=lines.append)
    assert all(torch.equal(v, half.state_dict()[k]) for k, v in before.items())  # the caller's model is untouched
    assert any("trained in float32" in line for line in lines)
    assert result.history[-1]["stage"] == "encode" and "top1" in result.history[-1]  # measured as stored
    state = deepcompress.load_state_dict(tmp_path / "h.dcz")
    assert {v.dtype for v in state.values()} == {getattr(torch, dtype)}
    assert all(torch.isfinite(v.float()).all() for v in state.values())
    fp32 = deepcompress.compress(half.float(), tmp_path / "f.dcz", data="digits", retrain_epochs=1,
                                 finetune_epochs=1, progress=False, log=lambda line: None)
    assert abs(result.history[-1]["top1"] - fp32.history[-2]["top1"]) < 0.05  # fp16 updates would be NaN


def test_torchscript_is_compressed_by_parameter_name(tmp_path):
    torch.manual_seed(0)
    scripted = torch.jit.script(nn.Sequential(nn.Conv1d(16, 64, 5), nn.ReLU(), nn.Conv1d(64, 64, 5)))
    cell = torch.jit.script(nn.LSTMCell(8, 16))
    torch.jit.save(scripted, tmp_path / "s.jit")
    torch.jit.save(cell, tmp_path / "c.jit")
    run = CliRunner().invoke(cli, ["compress", str(tmp_path / "s.jit"), "-o", str(tmp_path / "s.dcz"), "--json"])
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout.strip().splitlines()[-1])["compression_ratio"] > 2
    dcz = deepcompress.model_input.read_dcz_file(tmp_path / "s.dcz")
    assert dcz.meta("0.weight")["kind"] == "quantized" and dcz.meta("2.weight")["kind"] == "quantized"
    refs = {r.tensor_name: r.kind for r in compressible_layers(torch.jit.load(tmp_path / "c.jit"))}
    assert refs == {"weight_ih": "recurrent", "weight_hh": "recurrent"}
    target = torch.jit.load(tmp_path / "s.jit")
    deepcompress.load(tmp_path / "s.dcz", model=target)
    state = deepcompress.load_state_dict(tmp_path / "s.dcz")
    assert all(torch.equal(v, state[k]) for k, v in target.state_dict().items())
    with pytest.raises(ConfigError, match="a TorchScript model is compressed data-free only"):
        deepcompress.compress(torch.jit.load(tmp_path / "s.jit"), tmp_path / "t.dcz", train_fn=lambda *a: None,
                              eval_fn=lambda m: 0.5, progress=False, log=lambda line: None)


def test_a_frozen_torchscript_model_is_refused_not_written_empty(tmp_path):
    frozen = torch.jit.freeze(torch.jit.script(nn.Sequential(nn.Linear(8, 16), nn.ReLU()).eval()))
    torch.jit.save(frozen, tmp_path / "f.jit")
    run = CliRunner().invoke(cli, ["compress", str(tmp_path / "f.jit"), "-o", str(tmp_path / "f.dcz")])
    assert run.exit_code == 2 and "no parameters" in run.output and "freez" in run.output, run.output
    assert not (tmp_path / "f.dcz").exists()


def test_text_data_spec(tmp_path):
    from deepcompress.data import load_dataset
    from deepcompress.training import evaluate

    text = "".join(chr(97 + (i * 7) % 13) for i in range(2000))
    (tmp_path / "t.txt").write_text(text)
    train, test, info = load_dataset(f"text:{tmp_path / 't.txt'}@16", batch_size=8)
    assert info.num_classes == 13 and info.input_shape == (16,)
    assert abs(info.n_train - 1800 // 16) <= 1
    x, y = next(iter(train))
    assert x.shape == y.shape == (8, 16) and torch.equal(x[:, 1:], y[:, :-1])
    train.set_epoch(1)
    first = next(iter(train))[0]
    train.set_epoch(1)
    assert torch.equal(first, next(iter(train))[0])  # a pure function of (seed, epoch)
    tx, _ = next(iter(test))
    ids = {c: i for i, c in enumerate(sorted(set(text)))}
    assert tx[0].tolist() == [ids[c] for c in text[1800:1816]]  # the last 10%
    model = build_model("gpt_char", num_classes=13, block_size=16, n_layer=1, n_embd=16, n_head=2)
    metrics = evaluate(model, test)
    assert 0 < metrics["loss"] < 5 and metrics["n"] == sum(t.numel() for _, t in test)  # every position
    for bad, message in ((f"text:{tmp_path / 'none.txt'}", "does not exist"), ("text:", "needs a path"),
                         (f"text:{tmp_path / 't.txt'}@x", "must be an integer")):
        with pytest.raises(DataError, match=message):
            load_dataset(bad)
    assert np.array_equal(np.sort(np.unique(train.ids)), np.arange(13))


def test_settings_reach_a_tied_parameter_by_either_name(tmp_path):
    model = _gpt()
    deepcompress.compress(model, tmp_path / "g.dcz", sparsity="lm_head=0.5", bits="lm_head.weight=3",
                          progress=False, log=lambda line: None)
    dcz = deepcompress.model_input.read_dcz_file(tmp_path / "g.dcz")
    meta = dcz.meta("tok_emb.weight")
    assert meta["bits"] == 3 and meta["n_kept_blocks"] == 20 * 32 // 2


@pytest.mark.parametrize("option,value", [("sparsity", "tok_emb.weight=0.5,lm_head.weight=0.3"),
                                          ("bits", "tok_emb=7,lm_head.weight=3")])
def test_two_values_for_the_names_of_one_tied_parameter_are_refused(tmp_path, option, value):
    with pytest.raises(ConfigError, match="one tied parameter"):
        deepcompress.compress(_gpt(), tmp_path / "g.dcz", **{option: value}, progress=False, log=lambda line: None)
    assert not (tmp_path / "g.dcz").exists()
    deepcompress.compress(_gpt(), tmp_path / "g.dcz", sparsity="tok_emb.weight=0.5,lm_head.weight=0.5",
                          progress=False, log=lambda line: None)  # the same value twice is fine


def test_weight_norm_magnitude_stays_dense_and_its_direction_is_compressed(tmp_path):
    """g of w = g * v / |v| is a norm scale (one per output row): pruning it would zero whole rows."""
    from torch.nn.utils.parametrizations import weight_norm

    torch.manual_seed(0)
    model = nn.Sequential(weight_norm(nn.Linear(16, 64)), nn.ReLU(), nn.Linear(64, 4))
    refs = [r.tensor_name for r in compressible_layers(model)]
    assert refs == ["0.parametrizations.weight.original1", "2.weight"]
    lines: list[str] = []
    deepcompress.compress(model, tmp_path / "w.dcz", sparsity="0.5", progress=False, log=lines.append)
    state = deepcompress.load_state_dict(tmp_path / "w.dcz")
    g = "0.parametrizations.weight.original0"
    assert torch.equal(state[g], model.state_dict()[g])
    assert any("weight norm's magnitude" in line and g in line for line in lines)


def test_a_nan_in_a_layer_is_refused_up_front_naming_it(tmp_path):
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    with torch.no_grad():
        model[2].weight[1, 3] = float("nan")
    lines: list[str] = []
    with pytest.raises(DataError, match=r"^2\.weight holds 1 NaN"):
        deepcompress.compress(model, tmp_path / "n.dcz", progress=False, log=lines.append)
    assert not lines and not (tmp_path / "n.dcz").exists()  # before any stage ran


def test_a_model_with_no_layer_to_compress_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no layer to compress.*1-D"):
        deepcompress.compress(nn.Sequential(nn.LayerNorm(8)), tmp_path / "x.dcz", progress=False,
                              log=lambda line: None)
    assert not (tmp_path / "x.dcz").exists()


@pytest.mark.parametrize("sparsity,epochs", [("0", 0), ("embedding=0.5", 0), ("0", 1)])
def test_an_embeddings_padding_row_stays_exactly_zero(tmp_path, sparsity, epochs):
    """The padding token's row is zero and gets no gradient: it keeps a zero centroid of its own."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(100, 32, padding_idx=0), nn.Flatten(), nn.Linear(32 * 6, 4))
    kw = {}
    if epochs:
        x, y = torch.randint(0, 100, (32, 6)), torch.randint(0, 4, (32,))
        dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
        kw = {"loaders": (dl, dl), "retrain_epochs": 0, "finetune_epochs": epochs}
    deepcompress.compress(model, tmp_path / "p.dcz", sparsity=sparsity, progress=False, log=lambda line: None, **kw)
    state = deepcompress.load_state_dict(tmp_path / "p.dcz")
    assert torch.equal(state["0.weight"][0], torch.zeros(32))
    assert (state["0.weight"][1:] != 0).any()
