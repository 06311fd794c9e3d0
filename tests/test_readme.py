"""The README's inference-script example runs as written on a compressed digits model."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from deepcompress.cli.main import cli

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_opens_with_two_commands():
    text = README.read_text()
    quick = text[text.index("## Quick start"): text.index("### Getting the CPU build")]
    blocks = re.findall(r"```bash\n(.*?)```", quick, re.S)
    assert len(blocks) == 2 and all(len(b.strip().splitlines()) == 1 for b in blocks)
    assert "deepcompress demo" in blocks[0] and "pytest" in blocks[1]
    assert "-c constraints.txt" in blocks[0] and "-c constraints.txt" in blocks[1]


def test_inference_example_runs(tmp_path, digits_lenet300):
    text = README.read_text()
    section = text[text.index("### In your own inference script"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    out = tmp_path / "lenet300_digits.dcz"
    result = CliRunner().invoke(cli, ["compress", str(digits_lenet300), "-o", str(out), "--no-cache",
                                      "--data", "digits", "--retrain-epochs", "0", "--finetune-epochs", "0"])
    assert result.exit_code == 0, result.output
    (tmp_path / "example.py").write_text(code)
    proc = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() in {str(d) for d in range(10)}
