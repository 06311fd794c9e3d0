"""The README's inference-script example runs as written on a compressed digits model."""

from __future__ import annotations

import os
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


def test_python_compress_example_runs(tmp_path):
    """The README's `deepcompress.compress` snippet, with a model, train_fn and eval_fn defined around it."""
    text = README.read_text()
    section = text[text.index("To compress from Python"):]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    setup = (
        "import torch\n"
        "import deepcompress\n"
        "from deepcompress.data import load_dataset\n"
        "from deepcompress.models import build_model\n"
        "from deepcompress.training import evaluate\n"
        "train, test, _ = load_dataset('digits', batch_size=64)\n"
        "model = build_model('lenet300', in_features=64)\n"
        "before = {k: v.clone() for k, v in model.state_dict().items()}\n"
        "def train_one_epoch(m, optimizer, epoch):\n"
        "    for x, y in train:\n"
        "        optimizer.zero_grad()\n"
        "        torch.nn.functional.cross_entropy(m(x), y).backward()\n"
        "        optimizer.step()\n"
        "def top1(m):\n"
        "    return evaluate(m, test)['top1']\n"
    )
    check = (
        "\nassert all(torch.equal(before[k], v) for k, v in model.state_dict().items())\n"
        "assert result.compression_ratio > 5 and result.output.is_file()\n"
        "print('ok')\n"
    )
    (tmp_path / "example.py").write_text(setup + snippet + check)
    proc = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok")
