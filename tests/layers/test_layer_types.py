"""#15: every common layer type is compressed (pruned where asked, weight-shared, encoded), in float32,
float16 and bfloat16; the file decodes to exactly the compressed model in the input's dtypes; the caller's
module is unchanged; centroid fine-tuning reaches every parameter kind."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import deepcompress
from deepcompress.layers import compressible_layers, dense_reasons, resolve_layers, tied_parameters
from deepcompress.quantize.finetune import SharedWeights
from deepcompress.quantize.sharing import share_weights

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class Custom(nn.Module):
    """A user's own module: a raw 3-D Parameter and a 2-D one, used directly."""

    def __init__(self) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.randn(4, 8, 8))
        self.proj = nn.Parameter(torch.randn(8, 16))
        self.scale = nn.Parameter(torch.ones(16))

    def forward(self, x):
        return (torch.einsum("bo,oij->bij", x, self.kernel).sum(1) @ self.proj) * self.scale


# (constructor, expected {tensor name: kind}, example input)
LAYERS = {
    "embedding": (lambda: nn.Embedding(40, 16), {"weight": "embedding"}, lambda: torch.randint(0, 40, (2, 5))),
    "embedding_bag": (lambda: nn.EmbeddingBag(40, 16), {"weight": "embedding"}, lambda: torch.randint(0, 40, (2, 5))),
    "lstm": (lambda: nn.LSTM(8, 16, num_layers=2, bidirectional=True),
             {f"weight_{w}_l{i}{r}": "recurrent" for w in ("ih", "hh") for i in (0, 1) for r in ("", "_reverse")},
             lambda: torch.randn(5, 2, 8)),
    "lstm_proj": (lambda: nn.LSTM(8, 16, proj_size=4),
                  {"weight_ih_l0": "recurrent", "weight_hh_l0": "recurrent", "weight_hr_l0": "recurrent"},
                  lambda: torch.randn(5, 2, 8)),
    "gru": (lambda: nn.GRU(8, 16), {"weight_ih_l0": "recurrent", "weight_hh_l0": "recurrent"},
            lambda: torch.randn(5, 2, 8)),
    "rnn": (lambda: nn.RNN(8, 16), {"weight_ih_l0": "recurrent", "weight_hh_l0": "recurrent"},
            lambda: torch.randn(5, 2, 8)),
    "lstm_cell": (lambda: nn.LSTMCell(8, 16), {"weight_ih": "recurrent", "weight_hh": "recurrent"},
                  lambda: (torch.randn(2, 8), (torch.randn(2, 16), torch.randn(2, 16)))),
    "gru_cell": (lambda: nn.GRUCell(8, 16), {"weight_ih": "recurrent", "weight_hh": "recurrent"},
                 lambda: (torch.randn(2, 8), torch.randn(2, 16))),
    "rnn_cell": (lambda: nn.RNNCell(8, 16), {"weight_ih": "recurrent", "weight_hh": "recurrent"},
                 lambda: (torch.randn(2, 8), torch.randn(2, 16))),
    "attention": (lambda: nn.MultiheadAttention(16, 4), {"in_proj_weight": "attention", "out_proj.weight": "fc"},
                  lambda: (torch.randn(5, 2, 16),) * 3),
    "attention_kdim": (lambda: nn.MultiheadAttention(16, 4, kdim=8, vdim=8),
                       {"q_proj_weight": "attention", "k_proj_weight": "attention", "v_proj_weight": "attention",
                        "out_proj.weight": "fc"}, None),
    "conv1d": (lambda: nn.Conv1d(4, 8, 3), {"weight": "conv"}, lambda: torch.randn(2, 4, 10)),
    "conv3d": (lambda: nn.Conv3d(4, 8, 3), {"weight": "conv"}, lambda: torch.randn(2, 4, 5, 5, 5)),
    "convtranspose1d": (lambda: nn.ConvTranspose1d(4, 8, 3), {"weight": "conv"}, lambda: torch.randn(2, 4, 10)),
    "convtranspose2d": (lambda: nn.ConvTranspose2d(4, 8, 3), {"weight": "conv"}, lambda: torch.randn(2, 4, 6, 6)),
    "convtranspose3d": (lambda: nn.ConvTranspose3d(4, 8, 3), {"weight": "conv"}, lambda: torch.randn(2, 4, 4, 4, 4)),
    "linear": (lambda: nn.Linear(16, 8), {"weight": "fc"}, lambda: torch.randn(2, 16)),
    "custom": (Custom, {"kernel": "other", "proj": "other"}, lambda: torch.randn(2, 4)),
}


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_kinds_and_dense_reasons(layer):
    make, expected, _ = LAYERS[layer]
    model = nn.Sequential(make())
    refs = {r.tensor_name: r.kind for r in compressible_layers(model)}
    assert refs == {f"0.{k}": v for k, v in expected.items()}
    reasons = dense_reasons(model)
    assert set(reasons) | set(refs) == set(model.state_dict())
    assert all(model.state_dict()[n].dim() <= 1 for n in reasons)


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_compressed_and_round_trips_in_its_dtype(layer, dtype, tmp_path):
    make, expected, _ = LAYERS[layer]
    torch.manual_seed(0)
    model = nn.Sequential(make()).to(DTYPES[dtype])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = tmp_path / "m.dcz"
    result = deepcompress.compress(model, out, sparsity="0.5", bits="4", progress=False, log=lambda line: None)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the caller's module changed"
    dcz = deepcompress.model_input.read_dcz_file(out)
    for name in expected:
        meta = dcz.meta(f"0.{name}")
        assert meta["kind"] == "quantized" and meta["bits"] == 4
        assert dcz.meta(f"0.{name}")["n_kept_blocks"] < int(torch.tensor(meta["shape"]).prod())  # pruned
    state = deepcompress.load_state_dict(out)
    for key, value in result.model.state_dict().items():
        assert state[key].dtype == value.dtype == before[key].dtype
        assert torch.equal(state[key], value)
    element = DTYPES[dtype].itemsize
    assert result.dense_bytes == sum(v.numel() * v.element_size() for v in before.values())
    assert result.fp32_bytes == sum(v.numel() * (4 if v.is_floating_point() else v.element_size())
                                    for v in before.values())
    assert result.compression_ratio_fp32 == pytest.approx(result.compression_ratio * 4 / element, rel=0.01)


class Wrap(nn.Sequential):
    """One layer under the name ``0``, called with any arguments."""

    def forward(self, *args):
        return self[0](*args)


@pytest.mark.parametrize("layer", sorted(n for n, v in LAYERS.items() if v[2] is not None))
def test_centroid_finetuning_reaches_every_kind(layer):
    make, expected, example = LAYERS[layer]
    torch.manual_seed(0)
    model = Wrap(make())
    books = share_weights(model, "3")
    names = list(model.state_dict())
    shared = SharedWeights.attach(model, books)
    params = dict(shared.named_parameters())
    assert set(params) == {f"0.{k}" for k in expected}
    out = _run(model, example)
    out.float().square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params.values())
    with torch.no_grad():
        for p in params.values():
            p.add_(0.01)
    after = shared.detach()
    assert list(model.state_dict()) == names
    for name, book in after.items():
        assert torch.equal(model.get_parameter(name).detach(), torch.from_numpy(book.weights()))
    assert _run(model, example).isfinite().all()  # a plain module again (an LSTM's flat weights follow)


def _run(model, example):
    args = example()
    out = model(*(args if isinstance(args, tuple) else (args,)))
    return out[0] if isinstance(out, tuple) else out


def test_sparsity_and_bits_reach_parameters_by_name_and_kind(tmp_path):
    torch.manual_seed(0)
    model = nn.ModuleDict({"emb": nn.Embedding(50, 16), "lstm": nn.LSTM(16, 16), "head": nn.Linear(16, 4)})
    result = deepcompress.compress(model, tmp_path / "m.dcz", sparsity="embedding=0.3,lstm.weight_hh_l0=0.8,fc=0.5",
                                   bits="recurrent=3,emb=6", progress=False, log=lambda line: None)
    dcz = deepcompress.model_input.read_dcz_file(tmp_path / "m.dcz")
    kept = {n: dcz.meta(n).get("n_kept_blocks") for n in ("emb.weight", "lstm.weight_hh_l0", "lstm.weight_ih_l0")}
    assert kept == {"emb.weight": 560, "lstm.weight_hh_l0": 205, "lstm.weight_ih_l0": 1024}
    assert dcz.meta("lstm.weight_ih_l0")["bits"] == 3 and dcz.meta("emb.weight")["bits"] == 6
    assert result.file_bytes > 0
    assert [r.tensor_name for r in resolve_layers(model, ["lstm"], "test")] == ["lstm.weight_ih_l0",
                                                                               "lstm.weight_hh_l0"]
    with pytest.raises(deepcompress.errors.ConfigError, match="names 'lstm.bias_ih_l0', which is not a compressible"):
        deepcompress.compress(model, tmp_path / "n.dcz", sparsity="lstm.bias_ih_l0=0.5", progress=False,
                              log=lambda line: None)


def test_granularity_maps_onto_recurrent_and_embedding(tmp_path):
    torch.manual_seed(0)
    model = nn.ModuleDict({"emb": nn.Embedding(50, 16), "lstm": nn.LSTM(16, 16)})
    deepcompress.compress(model, tmp_path / "m.dcz", sparsity="0.5", fc_granularity="filter", progress=False,
                          log=lambda line: None)
    dcz = deepcompress.model_input.read_dcz_file(tmp_path / "m.dcz")
    assert dcz.meta("emb.weight")["block"] == [1, 16]  # one token's vector
    assert dcz.meta("lstm.weight_ih_l0")["block"] == [1, 16]  # one gate unit's input weights
    state = deepcompress.load_state_dict(tmp_path / "m.dcz")
    rows = (state["emb.weight"] != 0).any(dim=1)
    assert int(rows.sum()) == 25


def test_no_tied_parameters_in_plain_models():
    assert tied_parameters(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))) == {}
