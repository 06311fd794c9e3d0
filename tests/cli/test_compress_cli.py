"""CliRunner and subprocess tests for compress, decode, eval on .dcz, inspect, caching and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import deepcompress
from deepcompress.cli.main import cli

FAST = ["--data", "digits", "--retrain-epochs", "1", "--finetune-epochs", "1", "--sparsity", "conv=0.5,fc=0.8"]


@pytest.fixture()
def runner():
    return CliRunner()


@pytest.fixture(scope="module")
def compressed(tmp_path_factory, digits_lenet300):
    out = tmp_path_factory.mktemp("dcz") / "l300.dcz"
    result = CliRunner().invoke(cli, ["compress", str(digits_lenet300), "-o", str(out), "--json", "--no-cache", *FAST])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout.strip().splitlines()[-1])


def test_compress_summary_and_file(compressed):
    out, summary = compressed
    assert out.is_file() and summary["file_bytes"] == out.stat().st_size
    assert summary["compression_ratio"] == pytest.approx(summary["dense_bytes"] / summary["file_bytes"])
    assert summary["compression_ratio"] > 4
    assert summary["baseline"]["top1"] > 0.8 and summary["final"]["top1"] > 0.7
    assert [h["stage"] for h in summary["history"]] == ["baseline", "prune", "retrain", "quantize", "finetune", "encode"]


def test_eval_dcz_matches_compress(runner, compressed):
    out, summary = compressed
    result = runner.invoke(cli, ["eval", str(out), "--data", "digits", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["top1"] == pytest.approx(summary["final"]["top1"])


def test_inspect_json_totals_equal_file_size(runner, compressed):
    out, _ = compressed
    result = runner.invoke(cli, ["inspect", str(out), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["file_bytes"] == out.stat().st_size
    parts = sum(l["bytes"] for l in info["layers"]) + sum(d["bytes"] for d in info["dense_tensors"])
    assert parts + info["overhead_bytes"] == info["file_bytes"]
    assert {l["name"] for l in info["layers"]} == {"layers.0.weight", "layers.1.weight", "classifier.weight"}
    assert all(l["granularity"] == "element" for l in info["layers"])


def test_decode_and_load_api(runner, compressed, tmp_path):
    out, _ = compressed
    dense = tmp_path / "dense.pt"
    result = runner.invoke(cli, ["decode", str(out), "-o", str(dense)])
    assert result.exit_code == 0, result.output
    payload = torch.load(dense, weights_only=True)
    state = deepcompress.load_state_dict(out)
    assert payload["state_dict"].keys() == state.keys()
    assert all(torch.equal(payload["state_dict"][k], v) for k, v in state.items())
    model = deepcompress.load(out)
    assert not model.training
    x = torch.randn(4, 1, 8, 8)
    from deepcompress.models import build_model

    mine = deepcompress.load(out, model=build_model("lenet300", in_features=64))
    assert torch.equal(model(x), mine(x))
    # the file keeps masks exact: pruned weights are +0.0, and density matches
    w = state["layers.0.weight"]
    assert 0.15 < (w != 0).float().mean().item() < 0.25


def test_safetensors_decode(runner, compressed, tmp_path):
    from safetensors import safe_open

    out, _ = compressed
    st = tmp_path / "m.safetensors"
    assert runner.invoke(cli, ["decode", str(out), "-o", str(st)]).exit_code == 0
    with safe_open(str(st), framework="pt") as fh:
        meta = fh.metadata()
        assert json.loads(meta["arch"])["name"] == "lenet300"
        assert set(fh.keys()) == set(deepcompress.load_state_dict(out))


def test_data_free_compress(runner, digits_lenet300, tmp_path):
    out = tmp_path / "free.dcz"
    result = runner.invoke(cli, ["compress", str(digits_lenet300), "-o", str(out), "--no-cache"])
    assert result.exit_code == 0, result.output
    assert "data-free" in result.stderr and out.is_file()


def test_nm_pattern_compress_inspect_and_load(runner, digits_lenet300, tmp_path):
    """--fc-granularity 2:4: every group of 4 inputs keeps 2 in the file; inspect names the pattern."""
    out = tmp_path / "nm.dcz"
    result = runner.invoke(cli, ["compress", str(digits_lenet300), "-o", str(out), "--no-cache", "--no-report",
                                 "--fc-granularity", "2:4", "--sparsity", "0.5"])
    assert result.exit_code == 0, result.output
    info = json.loads(runner.invoke(cli, ["inspect", str(out), "--json"]).stdout)
    assert {l["granularity"] for l in info["layers"]} == {"2:4"}
    state = deepcompress.load_state_dict(out)
    for layer in info["layers"]:
        w = state[layer["name"]]
        assert ((w != 0).reshape(w.shape[0], -1, 4).sum(dim=2) <= 2).all()


def test_nm_pattern_with_another_sparsity_is_refused_before_any_work(runner, digits_lenet300, tmp_path):
    """--fc-granularity 2:4 with --sparsity 0.9: one line naming the pattern's 0.5, nothing written;
    without --sparsity the pattern's own sparsity is the default."""
    out = tmp_path / "nm.dcz"
    result = runner.invoke(cli, ["compress", str(digits_lenet300), "-o", str(out), "--no-cache", "--no-report",
                                 "--fc-granularity", "2:4", "--sparsity", "0.9"])
    assert result.exit_code != 0 and not out.exists()
    assert "prunes exactly 0.5" in result.stderr and "Traceback" not in result.output
    result = runner.invoke(cli, ["compress", str(digits_lenet300), "-o", str(out), "--no-cache", "--no-report",
                                 "--fc-granularity", "2:4"])
    assert result.exit_code == 0, result.output
    info = json.loads(runner.invoke(cli, ["inspect", str(out), "--json"]).stdout)
    assert {l["granularity"] for l in info["layers"]} == {"2:4"}


def test_default_output_path(runner, digits_lenet300, tmp_path):
    import shutil

    src = tmp_path / "net.pt"
    shutil.copy(digits_lenet300, src)
    result = runner.invoke(cli, ["compress", str(src), "--no-cache"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "net.dcz").is_file()


def test_deterministic_bytes(runner, digits_lenet300, tmp_path):
    a, b = tmp_path / "a.dcz", tmp_path / "b.dcz"
    for out in (a, b):
        assert runner.invoke(cli, ["compress", str(digits_lenet300), "-o", str(out), "--no-cache", *FAST]).exit_code == 0
    assert a.read_bytes() == b.read_bytes()


def test_cache_reuses_prefix_when_only_encode_changes(runner, digits_lenet300, tmp_path):
    work = tmp_path / "work"
    first = runner.invoke(cli, ["compress", str(digits_lenet300), "-o", str(tmp_path / "a.dcz"), "--work-dir", str(work), *FAST])
    assert first.exit_code == 0 and "reusing" not in first.stderr
    second = runner.invoke(cli, ["compress", str(digits_lenet300), "-o", str(tmp_path / "b.dcz"), "--work-dir", str(work),
                                 "--index-bits", "4", *FAST])
    assert second.exit_code == 0, second.output
    assert "reusing cached result of stages 1-4" in second.stderr
    assert "retrain epoch" not in second.stderr


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "deepcompress.cli", *args]


def test_kill_mid_retraining_then_resume_gives_identical_bytes(tmp_path, digits_lenet300):
    """kill -9 during retraining: no partial output, and --resume ends with the uninterrupted bytes."""
    args = ["--data", "digits", "--retrain-epochs", "6", "--finetune-epochs", "1", "--seed", "3"]
    reference = tmp_path / "ref.dcz"
    subprocess.run(_cli("compress", str(digits_lenet300), "-o", str(reference), "--no-cache", *args),
                   check=True, capture_output=True)
    out, work = tmp_path / "out.dcz", tmp_path / "work"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_cli("compress", str(digits_lenet300), "-o", str(out), "--work-dir", str(work), *args),
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    killed = False
    for line in proc.stderr:
        if "retrain epoch 2/6" in line:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            break
    proc.wait()
    assert killed and proc.returncode == -signal.SIGKILL
    assert not out.exists()
    resumed = subprocess.run(_cli("compress", str(digits_lenet300), "-o", str(out), "--work-dir", str(work), "--resume", *args),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch" in resumed.stderr or "reusing cached" in resumed.stderr
    assert out.read_bytes() == reference.read_bytes()


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--sparsity", "1.5"], "sparsity"),
        (["--sparsity", "conv=0.5,fc=abc"], "sparsity"),
        (["--bits", "9"], "bits"),
        (["--bits", "0"], "bits"),
        (["--granularity", "rows"], "--granularity"),
        (["--granularity", "3:3"], "N:M"),
        (["--fc-granularity", "4:8", "--sparsity", "0.5"], "multiple of 8"),
        (["--fc-granularity", "kernel"], "kernel granularity is impossible"),
        (["--index-bits", "12"], "index bits"),
        (["--sparsity", "nosuchlayer=0.5"], "nosuchlayer"),
        (["--data", "nowhere"], "unknown data spec"),
    ],
)
def test_bad_compress_options(runner, digits_lenet300, tmp_path, extra, needle):
    out = tmp_path / "bad.dcz"
    result = runner.invoke(cli, ["compress", str(digits_lenet300), "-o", str(out), "--no-cache",
                                 "--retrain-epochs", "0", "--finetune-epochs", "0", *extra])
    assert result.exit_code != 0
    lines = [l for l in result.stderr.splitlines() if l.strip() and not l.startswith("no --data")]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], result.stderr
    assert not out.exists()


def test_recipe_wrong_order_rejected_before_work(runner, digits_lenet300, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[[stage]]\ntype="prune"\n[[stage]]\ntype="encode"\n[[stage]]\ntype="quantize"\n')
    result = runner.invoke(cli, ["compress", str(digits_lenet300), "--recipe", str(recipe), "-o", str(tmp_path / "x.dcz")])
    assert result.exit_code == 4
    assert "encode must be the last stage" in result.stderr and "stage 1/" not in result.stderr


def test_global_scope_and_auto_sparsity(runner, digits_lenet300, tmp_path):
    """--scope global prunes with one threshold; --sparsity auto picks per-layer targets from sensitivity."""
    out = tmp_path / "g.dcz"
    result = runner.invoke(cli, ["compress", str(digits_lenet300), "-o", str(out), "--no-cache", "--data", "digits",
                                 "--scope", "global", "--sparsity", "0.8", "--retrain-epochs", "0",
                                 "--finetune-epochs", "0", "--json"])
    assert result.exit_code == 0, result.output
    state = deepcompress.load_state_dict(out)
    weights = [state[n] for n in ("layers.0.weight", "layers.1.weight", "classifier.weight")]
    kept = sum(int((w != 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert abs(kept - 0.2) < 0.01
    per_layer = [float((w != 0).float().mean()) for w in weights]
    assert max(per_layer) - min(per_layer) > 0.01  # one threshold, so layers end at different densities

    auto = tmp_path / "a.dcz"
    result = runner.invoke(cli, ["compress", str(digits_lenet300), "-o", str(auto), "--no-cache", "--data", "digits",
                                 "--sparsity", "auto", "--max-accuracy-drop", "1.0", "--retrain-epochs", "0",
                                 "--finetune-epochs", "0", "--json"])
    assert result.exit_code == 0, result.output
    picked = dict(item.split("=") for item in result.stderr.split("auto sparsity: ")[1].splitlines()[0].split(", "))
    assert set(picked) == {"layers.0.weight", "layers.1.weight", "classifier.weight"}
    state = deepcompress.load_state_dict(auto)
    for name, value in picked.items():  # each layer is pruned to the sparsity sensitivity picked for it
        assert float((state[name] == 0).float().mean()) == pytest.approx(float(value), abs=0.01)


def test_a_stage_flag_with_a_recipe_is_refused_not_dropped(tmp_path):
    from deepcompress.models import build_model

    torch.save(build_model("lenet300", in_features=64).state_dict(), tmp_path / "m.pt")
    (tmp_path / "r.toml").write_text('[[stage]]\ntype = "prune"\nsparsity = "0.5"\n\n[[stage]]\ntype = "quantize"\n'
                                     'bits = "5"\n\n[[stage]]\ntype = "encode"\n')
    run = CliRunner().invoke(cli, ["compress", str(tmp_path / "m.pt"), "--arch", "lenet300", "--arch-kwargs",
                                   '{"in_features": 64}', "--recipe", str(tmp_path / "r.toml"), "--bits", "4",
                                   "-o", str(tmp_path / "o.dcz")])
    assert run.exit_code == 2 and "--bits is a stage setting" in run.output and not (tmp_path / "o.dcz").exists()


def test_work_dir_turns_the_cache_on_and_resume_says_how_to(tmp_path):
    from deepcompress.models import build_model

    torch.save(build_model("lenet300", in_features=64).state_dict(), tmp_path / "m.pt")
    base = ["compress", str(tmp_path / "m.pt"), "--arch", "lenet300", "--arch-kwargs", '{"in_features": 64}']
    run = CliRunner().invoke(cli, [*base, "--resume", "-o", str(tmp_path / "a.dcz")])
    assert run.exit_code == 2 and "add --cache" in run.output, run.output
    run = CliRunner().invoke(cli, [*base, "--work-dir", str(tmp_path / "w"), "-o", str(tmp_path / "b.dcz")])
    assert run.exit_code == 0 and (tmp_path / "w").is_dir(), run.output


@pytest.mark.parametrize("flags,match", [(["--max-accuracy-drop", "5"], "without --sparsity auto"),
                                         (["--sparsity", "auto", "--scope", "global", "--data", "digits"],
                                          "global pruning does not have")])
def test_settings_that_would_change_nothing_or_cannot_meet_say_so(tmp_path, flags, match):
    from deepcompress.models import build_model

    torch.save(build_model("lenet300", in_features=64).state_dict(), tmp_path / "m.pt")
    run = CliRunner().invoke(cli, ["compress", str(tmp_path / "m.pt"), "--arch", "lenet300", "--arch-kwargs",
                                   '{"in_features": 64}', *flags, "-o", str(tmp_path / "o.dcz")])
    assert run.exit_code in (2, 4) and match in run.output, run.output
    assert not (tmp_path / "o.dcz").exists()
