"""The config owns the run: every setting that can change the bytes is in the cache key and the header."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from deepcompress.pipeline.context import RunContext
from deepcompress.pipeline.runner import chain_keys
from deepcompress.pipeline.stages import STAGE_TYPES

# A valid value other than the default, for every text field of every stage config.
# A new text field without an entry here fails test_every_field_changes_the_key: add one.
OTHER_TEXT = {
    ("prune", "sparsity"): "conv=0.6,fc=0.9",
    ("prune", "granularity"): "kernel",
    ("prune", "fc_granularity"): "vector",
    ("prune", "block"): "1x4",
    ("prune", "scope"): "global",
    ("prune", "saliency"): "l2",
    ("prune", "schedule"): "iterative",
    ("quantize", "bits"): "4",
    ("quantize", "init"): "density",
    ("quantize", "kmeans"): "lloyd",
    ("encode", "index_bits"): "5",
    ("retrain", "optimizer"): "adam",
    ("finetune", "optimizer"): "sgd",
}


def _other(kind: str, field: dataclasses.Field, value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2 + 0.5
    assert (kind, field.name) in OTHER_TEXT, f"add a changed value for {kind}.{field.name} to OTHER_TEXT"
    return OTHER_TEXT[(kind, field.name)]


def _base(cls):
    # one number (scope=global needs it) and filter granularity (thin needs it): every field can change alone
    return cls(sparsity="0.5", granularity="filter") if cls.TYPE == "prune" else cls()


CASES = [(kind, f.name) for kind, cls in STAGE_TYPES.items() for f in dataclasses.fields(cls)]


@pytest.mark.parametrize("kind, name", CASES, ids=[f"{k}.{n}" for k, n in CASES])
def test_every_field_changes_the_key(kind, name):
    cls = STAGE_TYPES[kind]
    base = _base(cls)
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    changed = dataclasses.replace(base, **{name: _other(kind, field, getattr(base, name))})
    assert changed.to_json()[name] == getattr(changed, name)  # the header's recipe records it
    assert chain_keys("run", [base]) != chain_keys("run", [changed])


def test_every_field_is_listed():
    """The enumeration above covers every field of every stage type (no type was skipped)."""
    assert {k for k, _ in CASES} == set(STAGE_TYPES)
    assert ("prune", "max_accuracy_drop") in CASES


def test_run_key_holds_input_data_seed_and_ranks():
    base = RunContext(data_spec="digits", seed=0).run_key("model")
    assert RunContext(data_spec="digits", seed=1).run_key("model") != base
    assert RunContext(data_spec="mnist", seed=0).run_key("model") != base
    assert RunContext(data_spec="digits", seed=0).run_key("other") != base
    assert RunContext(data_spec="digits", seed=0).run_key("model", world_size=2) != base


def test_run_key_holds_a_text_files_contents(tmp_path):
    """The same text: path with other text in it is other data: the cache must not serve the old results."""
    text = tmp_path / "t.txt"
    text.write_text("to be or not to be, that is the question " * 4)
    before = RunContext(data_spec=f"text:{text}@8", seed=0).run_key("model")
    assert RunContext(data_spec=f"text:{text}@8", seed=0).run_key("model") == before
    text.write_text("TO BE OR NOT TO BE, THAT IS THE QUESTION " * 4)
    assert RunContext(data_spec=f"text:{text}@8", seed=0).run_key("model") != before


def test_a_stage_key_depends_on_every_stage_before_it():
    stages = [STAGE_TYPES["prune"](), STAGE_TYPES["quantize"](), STAGE_TYPES["encode"]()]
    other = [STAGE_TYPES["prune"](sparsity="0.4"), *stages[1:]]
    assert all(a != b for a, b in zip(chain_keys("run", stages), chain_keys("run", other)))


def _header_recipe(path):
    from deepcompress.container import read_dcz

    return read_dcz(path).recipe


def test_max_accuracy_drop_changes_the_bytes_with_the_cache_on(digits_lenet300, tmp_path):
    """Fault 1 of issue 14: the cache used to reuse stages computed with another --max-accuracy-drop."""
    from deepcompress.cli.main import cli

    work = tmp_path / "work"
    common = ["--data", "digits", "--sparsity", "auto", "--retrain-epochs", "0", "--finetune-epochs", "0",
              "--bits", "5", "--work-dir", str(work), "--cache", "--no-report"]
    outs = {}
    for drop in ("0.1", "5.0"):
        out = tmp_path / f"drop{drop}.dcz"
        result = CliRunner().invoke(cli, ["compress", str(digits_lenet300), "-o", str(out),
                                          "--max-accuracy-drop", drop, *common])
        assert result.exit_code == 0, result.output
        outs[drop] = out
        prune = _header_recipe(out)["stages"][0]
        assert prune["type"] == "prune" and prune["max_accuracy_drop"] == float(drop)
    assert outs["0.1"].read_bytes() != outs["5.0"].read_bytes()
    # the looser budget prunes more, so its file is smaller
    assert outs["5.0"].stat().st_size < outs["0.1"].stat().st_size


def test_explicit_seed_wins_over_the_recipe(digits_lenet300, tmp_path):
    from deepcompress.cli.main import cli

    recipe = tmp_path / "r.toml"
    recipe.write_text('seed = 3\n[[stage]]\ntype = "prune"\nsparsity = 0.5\n[[stage]]\ntype = "quantize"\n'
                      'bits = "5"\n[[stage]]\ntype = "encode"\n')
    seeds = {}
    for label, extra in (("recipe", []), ("explicit", ["--seed", "0"])):
        out = tmp_path / f"{label}.dcz"
        result = CliRunner().invoke(cli, ["compress", str(digits_lenet300), "-o", str(out), "--recipe", str(recipe),
                                          "--no-report", *extra])
        assert result.exit_code == 0, result.output
        seeds[label] = _header_recipe(out)["seed"]
    assert seeds == {"recipe": 3, "explicit": 0}


def test_header_recipe_lists_every_default(digits_lenet300, tmp_path):
    from deepcompress.cli.main import cli
    from deepcompress.pipeline.stages import stage_from_json

    out = tmp_path / "m.dcz"
    result = CliRunner().invoke(cli, ["compress", str(digits_lenet300), "-o", str(out), "--no-report"])
    assert result.exit_code == 0, result.output
    recipe = _header_recipe(out)
    for stage in recipe["stages"]:
        cls = STAGE_TYPES[stage["type"]]
        assert set(stage) == {"type", "version", *(f.name for f in dataclasses.fields(cls))}
        assert stage_from_json(stage).to_json() == stage  # the header rebuilds the exact config
    assert json.dumps(recipe, sort_keys=True)
