"""Architectures from import paths: modules in the current folder, and one-line messages when not found."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
import torch
from click.testing import CliRunner

from deepcompress.arch import arch_spec, build_arch, import_object, parse_arch_kwargs
from deepcompress.errors import ConfigError, ModelError

NET = textwrap.dedent("""
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self, width=16):
            super().__init__()
            self.fc1 = nn.Linear(64, width)
            self.fc2 = nn.Linear(width, 10)

        def forward(self, x):
            return self.fc2(self.fc1(x.flatten(1)).relu())
""")


@pytest.fixture()
def in_folder(tmp_path, monkeypatch):
    """A fresh working folder holding ``cwdnet_<id>.py``; the module is forgotten afterwards."""
    name = f"cwdnet_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / f"{name}.py").write_text(NET)
    monkeypatch.chdir(tmp_path)
    path_before = list(sys.path)
    yield tmp_path, name
    sys.modules.pop(name, None)
    assert sys.path == path_before  # the folder was on sys.path only for the import


def test_import_path_finds_a_module_in_the_current_folder(in_folder):
    _, name = in_folder
    assert str(in_folder[0]) not in sys.path
    model = build_arch(arch_spec(f"{name}:Net", {"width": 8}), trust_arch=True)
    assert model.fc1.out_features == 8


def test_cli_eval_with_arch_from_the_current_folder(in_folder):
    folder, name = in_folder
    from deepcompress.cli.main import cli

    net = build_arch(arch_spec(f"{name}:Net"), trust_arch=True)
    sys.modules.pop(name, None)
    torch.save(net.state_dict(), folder / "sd.pt")
    result = CliRunner().invoke(cli, ["eval", "sd.pt", "--arch", f"{name}:Net", "--data", "digits", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["kind"] == "state_dict"


def test_missing_module_message_says_where_it_was_looked_up(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError) as info:
        import_object("nosuch_mod_zz.sub:Net")
    text = str(info.value)
    assert text == ("cannot import 'nosuch_mod_zz.sub': no module named 'nosuch_mod_zz' in the current folder "
                    "or on PYTHONPATH")


def test_module_that_imports_something_missing(in_folder):
    folder, _ = in_folder
    (folder / "needs_dep_zz.py").write_text("import not_installed_dep_zz\n")
    try:
        with pytest.raises(ModelError, match="it imports 'not_installed_dep_zz', which is not installed"):
            import_object("needs_dep_zz:Net")
    finally:
        sys.modules.pop("needs_dep_zz", None)


def test_module_whose_code_fails(in_folder):
    folder, _ = in_folder
    (folder / "broken_zz.py").write_text("raise ValueError('boom')\n")
    try:
        with pytest.raises(ModelError, match="cannot import 'broken_zz': ValueError: boom"):
            import_object("broken_zz:Net")
    finally:
        sys.modules.pop("broken_zz", None)


def test_bad_paths_and_kwargs():
    with pytest.raises(ModelError, match="expected package.module:Class"):
        import_object("no_colon")
    with pytest.raises(ModelError, match="has no attribute"):
        import_object("os.path:NoSuch")
    with pytest.raises(ModelError, match="not an nn.Module subclass"):
        build_arch(arch_spec("os.path:join"), trust_arch=True)
    with pytest.raises(ModelError, match="--trust-arch"):
        build_arch(arch_spec("torch.nn:Linear"), trust_arch=False)
    with pytest.raises(ModelError, match="names no architecture"):
        build_arch({"kwargs": {}})
    with pytest.raises(ConfigError, match="JSON object"):
        parse_arch_kwargs("[1]")
    assert parse_arch_kwargs("") == {} and parse_arch_kwargs('{"a": 1}') == {"a": 1}
