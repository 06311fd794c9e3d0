"""What `compress` costs and says by default: cheap reports, a cache only when it pays, --resume after Ctrl-C."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from deepcompress.cli.main import cli

FAST = ["--retrain-epochs", "1", "--finetune-epochs", "0", "--sparsity", "0.8", "--bits", "5"]


def _run(*args: str):
    return CliRunner().invoke(cli, ["compress", *map(str, args)])


def test_data_free_writes_no_cache_and_a_cheap_report(digits_lenet300, tmp_path):
    out = tmp_path / "m.dcz"
    result = _run(digits_lenet300, "-o", out)
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "m.dcz.work").exists()
    assert (tmp_path / "m.report.md").is_file() and (tmp_path / "m.report.json").is_file()
    assert not (tmp_path / "m.report").exists()  # no PNGs unless asked
    assert "report: " in result.output and "stage cache" not in result.output
    # the data-free notice names the settings actually used
    assert "compressing data-free" in result.output and "sparsity conv=0.5,fc=0.7" in result.output


def test_report_plots_on_request(digits_lenet300, tmp_path):
    out = tmp_path / "m.dcz"
    result = _run(digits_lenet300, "-o", out, "--report-plots")
    assert result.exit_code == 0, result.output
    assert any(p.suffix == ".png" for p in (tmp_path / "m.report").iterdir())


def test_a_run_that_retrains_keeps_a_cache_and_says_where(digits_lenet300, tmp_path):
    out = tmp_path / "m.dcz"
    result = _run(digits_lenet300, "-o", out, "--data", "digits", "--no-report", *FAST)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m.dcz.work").is_dir()
    assert f"stage cache: {tmp_path / 'm.dcz.work'}" in result.output and "MiB" in result.output


def test_resume_without_cache_is_refused_before_work(digits_lenet300, tmp_path):
    result = _run(digits_lenet300, "-o", tmp_path / "m.dcz", "--data", "digits", "--no-cache", "--resume", *FAST)
    assert result.exit_code == 2 and "--resume needs the stage cache" in result.output
    assert not (tmp_path / "m.dcz").exists()


@pytest.mark.parametrize("cache", [True, False])
def test_ctrl_c_names_resume(digits_lenet300, tmp_path, monkeypatch, cache):
    import deepcompress.compression as compression

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(compression, "compress", interrupted)
    result = _run(digits_lenet300, "-o", tmp_path / "m.dcz", "--data", "digits",
                  "--cache" if cache else "--no-cache", *FAST)
    assert result.exit_code == 130
    line = result.output.strip().splitlines()[-1]
    if cache:
        assert "--resume" in line and "m.dcz.work" in line
    else:
        assert "nothing to resume" in line


def test_unwritable_cache_folder_fails_before_work(digits_lenet300, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = _run(digits_lenet300, "-o", tmp_path / "m.dcz", "--data", "digits", "--work-dir", blocker / "work",
                  *FAST)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot write to stage cache folder"), result.output
