"""``deepcompress simulate`` on a small .dcz file written with the project's own codec and container."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from deepcompress.cli.main import cli
from deepcompress.codecs.tensor import encode_dense, encode_float, encode_quantized
from deepcompress.container.writer import write_dcz
from deepcompress.eie.functional import spmv_float
from deepcompress.eie.layout import layout_from_labels
from deepcompress.eie.simulate import simulate_file
from deepcompress.errors import ConfigError


@pytest.fixture(scope="module")
def model_dcz(tmp_path_factory):
    rng = np.random.default_rng(0)
    fc1 = np.where(rng.random((300, 784)) < 0.08, rng.integers(0, 32, (300, 784)), -1)  # 5-bit, 32 values
    cb1 = np.sort(rng.normal(0, 0.1, 32)).astype(np.float32)
    fc2 = np.where(rng.random((100, 300)) < 0.1, rng.integers(0, 12, (100, 300)), -1)  # fits 4 bits
    cb2 = np.linspace(-0.5, 0.5, 12).astype(np.float32)
    conv = np.where(rng.random((6, 1, 5, 5)) < 0.6, rng.integers(0, 16, (6, 1, 5, 5)), -1)
    w3 = rng.normal(0, 0.1, (10, 100)).astype(np.float32)
    tensors = [
        encode_quantized("conv1.weight", conv, np.linspace(-1, 1, 16), granularity="element",
                         block=(1, 1, 1, 1), bits=4),
        encode_quantized("fc1.weight", fc1, cb1, granularity="element", block=(1, 1), bits=5),
        encode_dense("fc1.bias", np.zeros(300, dtype=np.float32)),
        encode_quantized("fc2.weight", fc2, cb2, granularity="element", block=(1, 1), bits=4),
        encode_float("fc3.weight", w3, np.abs(w3) > 0.05, granularity="element", block=(1, 1)),
    ]
    path = tmp_path_factory.mktemp("dcz") / "model.dcz"
    write_dcz(path, tensors)
    return path, fc2, cb2


def test_simulate_rows(model_dcz) -> None:
    """fc layers are simulated (fc1 re-quantized from 32 values), conv is listed, the bias skipped."""
    path, fc2, cb2 = model_dcz
    rows = {r["name"]: r for r in simulate_file(path, pes=16, fifo=4, act_density=0.5, seed=3)}
    assert set(rows) == {"conv1.weight", "fc1.weight", "fc2.weight", "fc3.weight"}
    assert rows["conv1.weight"]["simulated"] is False
    assert "re-quantized 32 shared weights to 15" in rows["fc1.weight"]["note"]
    assert rows["fc2.weight"]["note"] == ""
    layout = layout_from_labels(fc2, cb2, n_pes=16)
    assert rows["fc2.weight"]["weight_density"] == pytest.approx(layout.n_real / fc2.size)
    for name in ("fc1.weight", "fc2.weight", "fc3.weight"):
        r = rows[name]
        assert r["cycles"] > 0 and 0 < r["load_balance_efficiency"] <= 1
        assert r["time_us"] == pytest.approx(r["cycles"] / 800.0)
    # The decoded fc2 lays out to the same matrix that was encoded.
    a = np.random.default_rng(1).random(300).astype(np.float32)
    ref = np.maximum(np.where(fc2 >= 0, cb2[np.maximum(fc2, 0)], 0) @ a, 0)
    np.testing.assert_allclose(spmv_float(layout, a), ref, rtol=1e-5, atol=1e-6)


def test_simulate_cli_table_and_json(model_dcz) -> None:
    path, _, _ = model_dcz
    runner = CliRunner()
    res = runner.invoke(cli, ["simulate", str(path), "--pes", "8"])
    assert res.exit_code == 0, res.output
    assert "conv layer: not simulated" in res.output and "fc2.weight" in res.output
    res = runner.invoke(cli, ["simulate", str(path), "--json", "--seed", "1", "--policy", "widen"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    fc1 = next(r for r in report["layers"] if r["name"] == "fc1.weight")
    assert fc1["weight_bits"] == 6 and report["pes"] == 64


def test_simulate_bad_input(model_dcz, tmp_path) -> None:
    path, _, _ = model_dcz
    with pytest.raises(ConfigError):
        simulate_file(path, pes=0)
    with pytest.raises(ConfigError):
        simulate_file(path, act_density=0.0)
    runner = CliRunner()
    res = runner.invoke(cli, ["simulate", str(path), "--fifo", "0"])
    assert res.exit_code == 2 and "--fifo" in res.output
    res = runner.invoke(cli, ["simulate", str(tmp_path / "missing.dcz")])
    assert res.exit_code != 0 and "error:" in res.output
