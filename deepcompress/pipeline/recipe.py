"""Recipes: a stage graph written in TOML (schema in docs/recipes.md).

.. code-block:: toml

    seed = 0                 # optional
    data = "mnist"           # optional; --data overrides it

    [[stage]]
    type = "prune"
    sparsity = "conv=0.7,fc=0.92"
    granularity = "kernel"

    [[stage]]
    type = "retrain"
    epochs = 4
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .stages import EncodeConfig, FinetuneConfig, PruneConfig, QuantizeConfig, RetrainConfig, StageConfig, stage_from_json

RECIPE_KEYS = {"stage", "seed", "data", "description", "name"}


@dataclass(frozen=True)
class Recipe:
    """A named stage graph with optional seed and data defaults."""

    stages: tuple[StageConfig, ...]
    seed: int | None = None
    data: str | None = None
    name: str | None = None
    description: str | None = None

    def to_json(self, *, data: str | None, seed: int) -> dict[str, Any]:
        """The recipe as stored in a ``.dcz`` header, with every default filled in."""
        return {
            "name": self.name,
            "data": data,
            "seed": seed,
            "stages": [s.to_json() for s in self.stages],
        }


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a TOML recipe."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"recipe {p} does not exist")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"recipe {p} is not valid TOML: {exc}") from None
    return recipe_from_mapping(data, str(p))


def recipe_from_mapping(data: Mapping[str, Any], source: str = "recipe") -> Recipe:
    unknown = sorted(set(data) - RECIPE_KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key {unknown[0]!r}; known: {', '.join(sorted(RECIPE_KEYS))}")
    raw_stages = data.get("stage")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise ConfigError(f"{source}: needs at least one [[stage]] table")
    stages = []
    for i, table in enumerate(raw_stages, start=1):
        try:
            stages.append(stage_from_json(table))
        except ConfigError as exc:
            raise ConfigError(f"{source}: stage {i}: {exc}") from None
        except TypeError as exc:
            raise ConfigError(f"{source}: stage {i}: {exc}") from None
    seed = data.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise ConfigError(f"{source}: seed must be a whole number")
    return Recipe(tuple(stages), seed=seed, data=data.get("data"), name=data.get("name"),
                  description=data.get("description"))


def default_recipe(
    *,
    has_data: bool,
    sparsity: str | None = None,
    granularity: str = "element",
    fc_granularity: str = "element",
    block: str | None = None,
    bits: str | None = None,
    retrain_epochs: int = 4,
    finetune_epochs: int = 2,
    schedule: str = "oneshot",
    index_bits: str = "auto",
    lr: float = 0.01,
    thin: bool = False,
    scope: str = "layer",
    max_accuracy_drop: float = 0.1,
    distill: float = 0.0,
) -> Recipe:
    """The graph the ``compress`` flags build: prune -> retrain -> quantize -> fine-tune -> encode.

    Without data the retraining stages are left out (data-free compression), and
    the default sparsity is milder (conv 0.5, fc 0.7; with data conv 0.7, fc 0.92); a kind
    pruned with an N:M pattern defaults to the pattern's 1 - N/M.
    ``distill`` is the weight of the loss towards the input model in retraining and
    fine-tuning (0: labels only; 1: the input model's outputs only).
    """
    for name, value in (("retrain_epochs", retrain_epochs), ("finetune_epochs", finetune_epochs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name} must be a whole number >= 0; got {value!r}")
    if sparsity is None:
        if scope == "global":
            sparsity = "0.9" if has_data else "0.6"
        else:
            sparsity = _default_sparsity(has_data, granularity, fc_granularity)
    prune = PruneConfig(
        sparsity=sparsity, granularity=granularity, fc_granularity=fc_granularity, block=block,
        schedule=schedule if has_data else "oneshot", lr=lr, thin=thin, scope=scope,
        max_accuracy_drop=max_accuracy_drop,
    )
    stages: list[StageConfig] = [prune]
    if has_data and retrain_epochs > 0:
        stages.append(RetrainConfig(epochs=retrain_epochs, lr=lr, distill=distill))
    stages.append(QuantizeConfig(bits="conv=8,fc=5" if bits is None else bits))
    if has_data and finetune_epochs > 0:
        stages.append(FinetuneConfig(epochs=finetune_epochs, distill=distill))
    stages.append(EncodeConfig(index_bits=index_bits))
    return Recipe(tuple(stages), name="default")


def _default_sparsity(has_data: bool, granularity: str, fc_granularity: str) -> str:
    """The default per-kind spec; a kind pruned with an N:M pattern gets the pattern's own sparsity (1 - N/M)."""
    from ..granularity import parse_nm

    values = {"conv": 0.7, "fc": 0.92} if has_data else {"conv": 0.5, "fc": 0.7}
    for kind, g in (("conv", granularity), ("fc", fc_granularity)):
        pattern = parse_nm(g)
        if pattern is not None:
            values[kind] = round(pattern.sparsity, 6)
    return ",".join(f"{k}={v:g}" for k, v in values.items())
