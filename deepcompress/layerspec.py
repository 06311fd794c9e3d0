"""Per-layer settings such as ``--sparsity conv=0.6,fc=0.92`` or ``--bits conv=8,fc=5``.

A spec is a comma-separated list. Each item is either a bare value (the default
for every layer) or ``KEY=VALUE`` where KEY is a layer type (``conv``, ``fc``,
``embedding``, ``recurrent``, ``attention``, ``other``; see :mod:`deepcompress.layers`),
a module name (``features.0``, every compressible parameter of that module) or a
tensor name (``features.0.weight``, ``lstm.weight_hh_l0``).
Lookup order: tensor name, module name, layer type, default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")

LAYER_KINDS = ("conv", "fc", "embedding", "recurrent", "attention", "other")


@dataclass(frozen=True)
class LayerSpec(Generic[T]):
    """A value per layer: a default, per-type overrides and per-name overrides."""

    default: T | None = None
    by_kind: Mapping[str, T] = field(default_factory=dict)
    by_name: Mapping[str, T] = field(default_factory=dict)

    def lookup(self, tensor_name: str, kind: str) -> T | None:
        """The value for the tensor ``tensor_name`` of layer type ``kind`` (or None)."""
        if tensor_name in self.by_name:
            return self.by_name[tensor_name]
        module_name = tensor_name.rsplit(".", 1)[0] if "." in tensor_name else tensor_name
        if module_name in self.by_name:
            return self.by_name[module_name]
        if kind in self.by_kind:
            return self.by_kind[kind]
        return self.default

    def lookup_any(self, tensor_names: "tuple[str, ...] | list[str]", kind: str) -> T | None:
        """:meth:`lookup` for a tensor known under several names (a tied parameter): the value of the names
        the spec mentions (by tensor or module name), else the kind, else the default. Two of its names given
        different values is a :class:`ConfigError` (one tensor takes one setting)."""
        found: list[tuple[str, T | None]] = []
        for name in tensor_names:
            module_name = name.rsplit(".", 1)[0] if "." in name else name
            if name in self.by_name or module_name in self.by_name:
                found.append((name, self.lookup(name, kind)))
        if any(value != found[0][1] for _, value in found[1:]):
            shown = " and ".join(f"{name}={value}" for name, value in found)
            raise ConfigError(f"{shown} name one tied parameter (stored once) but give it different values; "
                              "give one")
        return found[0][1] if found else self.lookup(tensor_names[0], kind)

    def names(self) -> set[str]:
        """The layer names this spec mentions (to check they exist)."""
        return set(self.by_name)

    def scaled(self, factor: float) -> "LayerSpec[float]":
        """Every value multiplied by ``factor`` (a pruning schedule's share of the final target)."""

        def f(v: T | None) -> float | None:
            return None if v is None else float(v) * factor  # type: ignore[arg-type]

        return LayerSpec(
            default=f(self.default),
            by_kind={k: f(v) for k, v in self.by_kind.items()},
            by_name={k: f(v) for k, v in self.by_name.items()},
        )

    def to_json(self) -> dict:
        """A JSON-able form, for recipes and file headers."""
        return {"default": self.default, "by_kind": dict(self.by_kind), "by_name": dict(self.by_name)}


def parse_layer_spec(
    text: "str | float | int | Mapping | LayerSpec",
    convert: Callable[[str], T],
    what: str,
) -> LayerSpec[T]:
    """Parse ``text`` into a :class:`LayerSpec`, converting and checking each value.

    ``convert`` turns one value string into a checked value and raises
    :class:`ConfigError` (or ``ValueError``) on a bad one; ``what`` names the
    option in messages (e.g. ``"--sparsity"``).
    """
    if isinstance(text, LayerSpec):
        return text
    if isinstance(text, Mapping):
        items = [f"{k}={v}" if k not in ("default", "*") else str(v) for k, v in text.items()]
    else:
        items = [part.strip() for part in str(text).split(",")]
    default: T | None = None
    by_kind: dict[str, T] = {}
    by_name: dict[str, T] = {}
    if not items or all(not i for i in items):
        raise ConfigError(f"{what}: empty value")
    for item in items:
        if not item:
            raise ConfigError(f"{what}: empty item in {text!r}")
        key, sep, raw = item.partition("=")
        if not sep:
            key, raw = "", item
        key, raw = key.strip(), raw.strip()
        try:
            value = convert(raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{what}: bad value {raw!r}{' for ' + key if key else ''}: {exc}") from None
        if not key:
            default = value
        elif key in LAYER_KINDS:
            by_kind[key] = value
        else:
            by_name[key] = value
    return LayerSpec(default=default, by_kind=by_kind, by_name=by_name)


def sparsity_value(raw: str) -> float:
    """A sparsity in [0, 1)."""
    value = float(raw)
    if not 0.0 <= value < 1.0:
        raise ValueError("sparsity must be in [0, 1)")
    return value


def bits_value(raw: str) -> int:
    """A bit width in 1..8."""
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("bits must be a whole number from 1 to 8") from None
    if not 1 <= value <= 8:
        raise ValueError("bits must be from 1 to 8")
    return value
