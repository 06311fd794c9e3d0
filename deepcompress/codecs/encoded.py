"""The encoded form of one tensor: JSON-able metadata plus named byte streams."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EncodedTensor:
    """One tensor after encoding.

    ``meta`` holds only JSON types (str, int, float, bool, None, list, dict) and is
    stored in the ``.dcz`` header. ``streams`` maps short ASCII stream names
    (e.g. ``"index"``, ``"gap"``) to their bytes, each stored as one section.
    """

    meta: Mapping[str, Any]
    streams: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.meta["name"])
