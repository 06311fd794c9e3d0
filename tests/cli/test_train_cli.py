"""CliRunner tests for ``train``, ``eval`` and the CLI's error contract."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from deepcompress.cli.main import cli


@pytest.fixture()
def runner():
    return CliRunner()


def test_help_and_version(runner):
    assert runner.invoke(cli, ["--help"]).exit_code == 0
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and "deepcompress" in result.output


def test_train_then_eval(runner, tmp_path):
    out = tmp_path / "m.pt"
    result = runner.invoke(cli, ["train", "lenet300", "--data", "digits", "--epochs", "3", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    trained = json.loads(result.stdout.strip().splitlines()[-1])
    assert out.is_file() and trained["top1"] > 0.5
    result = runner.invoke(cli, ["eval", str(out), "--data", "digits", "--json"])
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.stdout)
    assert evaluated["top1"] == pytest.approx(trained["top1"])
    assert evaluated["error_pct"] == pytest.approx(100 * (1 - evaluated["top1"]))


def _one_line_error(result, code=None):
    assert result.exit_code != 0
    if code is not None:
        assert result.exit_code == code
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["eval", "/nonexistent/m.pt", "--data", "digits"], "does not exist"),
        (["train", "nosuchnet", "--data", "digits"], "unknown architecture"),
        (["train", "lenet300", "--data", "nowhere"], "unknown data spec"),
        (["train", "lenet300", "--data", "mnist:/nonexistent"], "does not exist"),
        (["train", "lenet300", "--data", "digits", "--epochs", "-2"], "--epochs"),
        (["train", "lenet300", "--data", "digits", "--arch-kwargs", "{bad"], "JSON"),
        (["train", "lenet300", "--data", "digits", "--optimizer", "lbfgs"], "--optimizer"),
        (["nosuchcommand"], "No such command"),
    ],
)
def test_bad_input_one_line(runner, args, needle):
    line = _one_line_error(runner.invoke(cli, args))
    assert needle in line


def test_wrong_file_type(runner, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a model")
    assert "not a PyTorch file" in _one_line_error(runner.invoke(cli, ["eval", str(bad), "--data", "digits"]))
    assert "directory" in _one_line_error(runner.invoke(cli, ["eval", str(tmp_path), "--data", "digits"]))


def test_unwritable_output(runner, tmp_path):
    line = _one_line_error(runner.invoke(cli, ["train", "lenet300", "--data", "digits", "--epochs", "0",
                                               "-o", str(tmp_path / "no" / "such" / "m.pt")]))
    assert "does not exist" in line


@pytest.mark.parametrize("command", [["train", "gpt_char", "--data", "digits", "--epochs", "1", "-o", "g.pt"],
                                     ["train", "lenet300", "--data", "text:t.txt@16", "--epochs", "1", "-o", "l.pt"]])
def test_a_model_meeting_the_wrong_kind_of_data_is_one_line(tmp_path, monkeypatch, command):
    """Token ids into an image model, images into a language model: the model's own error, said as the
    model's, exit 2, before any training."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.txt").write_text("the quick brown fox jumps over the lazy dog. " * 40)
    run = CliRunner().invoke(cli, command)
    assert run.exit_code == 2, run.output
    assert "the model raised" in run.output and "on one sample of --data" in run.output
    assert not list(tmp_path.glob("*.pt"))


def test_eval_on_text_states_the_validation_loss(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.txt").write_text("the quick brown fox jumps over the lazy dog. " * 40)
    kwargs = '{"n_layer": 1, "n_embd": 16, "n_head": 2, "block_size": 16}'
    run = CliRunner().invoke(cli, ["train", "gpt_char", "--data", "text:t.txt@16", "--epochs", "0", "--arch-kwargs",
                                   kwargs, "-o", "g.pt"])
    assert run.exit_code == 0, run.output
    run = CliRunner().invoke(cli, ["eval", "g.pt", "--data", "text:t.txt@16"])
    assert run.exit_code == 0 and "validation loss" in run.output and "nats/char" in run.output, run.output
