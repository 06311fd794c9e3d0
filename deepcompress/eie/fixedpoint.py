"""16-bit fixed-point arithmetic of the EIE datapath.

A :class:`QFormat` ``Qm.n`` is a signed two's-complement integer of ``m + n`` bits whose
value is ``q / 2**n``; ``m`` counts the sign bit. Q1.15 covers ``[-1, 1 - 2**-15]``, Q4.12
covers ``[-8, 8 - 2**-12]``, Q8.8 covers ``[-128, 128 - 2**-8]``.

The datapath (:class:`FixedPointConfig`), exactly:

1. Shared weights are quantized to the weight format and activations to the activation
   format: ``q = clip(rint(x * 2**n), -2**(bits-1), 2**(bits-1) - 1)`` (round half to even,
   saturate). Code 0 (padding) is exactly 0.
2. Each product ``w_q * a_q`` is exact (``2 * bits`` bits, ``n_w + n_a`` fraction bits).
3. Products are summed exactly in a wide (64-bit) accumulator; no intermediate rounding.
4. The sum is moved to the output format by an arithmetic shift with round-half-up:
   ``(acc + 2**(s-1)) >> s`` with ``s = n_w + n_a - n_out`` (``acc << -s`` if ``s < 0``),
   then saturated to the output's ``bits``.
5. ReLU: negative outputs become 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from deepcompress.errors import ConfigError


@dataclass(frozen=True)
class QFormat:
    """Signed fixed point with ``total_bits`` bits, ``frac_bits`` of them after the binary point."""

    frac_bits: int
    total_bits: int = 16

    def __post_init__(self) -> None:
        if not 2 <= self.total_bits <= 32:
            raise ConfigError(f"fixed point: total bits must be in 2..32, got {self.total_bits}")
        if not 0 <= self.frac_bits < self.total_bits:
            raise ConfigError(f"fixed point: fraction bits must be in 0..{self.total_bits - 1}, got {self.frac_bits}")

    @classmethod
    def parse(cls, text: str) -> QFormat:
        """``"Q4.12"`` -> ``QFormat(frac_bits=12, total_bits=16)``."""
        m = re.fullmatch(r"[Qq](\d+)\.(\d+)", text.strip())
        if not m:
            raise ConfigError(f"fixed point: expected a format like Q4.12, got {text!r}")
        ints, frac = int(m.group(1)), int(m.group(2))
        if ints < 1:
            raise ConfigError(f"fixed point: {text!r} needs at least the sign bit before the point")
        return cls(frac_bits=frac, total_bits=ints + frac)

    @property
    def name(self) -> str:
        return f"Q{self.total_bits - self.frac_bits}.{self.frac_bits}"

    @property
    def min_int(self) -> int:
        return -(1 << (self.total_bits - 1))

    @property
    def max_int(self) -> int:
        return (1 << (self.total_bits - 1)) - 1

    @property
    def scale(self) -> float:
        return float(1 << self.frac_bits)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Round half to even and saturate; returns int64."""
        q = np.rint(np.asarray(x, dtype=np.float64) * self.scale)
        return np.clip(q, self.min_int, self.max_int).astype(np.int64)

    def to_float(self, q: np.ndarray) -> np.ndarray:
        return np.asarray(q, dtype=np.float64) / self.scale


@dataclass(frozen=True)
class FixedPointConfig:
    """Formats of the shared weights, the input activations and the output activations."""

    weights: QFormat = field(default_factory=lambda: QFormat(12))  # Q4.12
    activations: QFormat = field(default_factory=lambda: QFormat(8))  # Q8.8
    output: QFormat = field(default_factory=lambda: QFormat(8))  # Q8.8

    @property
    def product_frac_bits(self) -> int:
        return self.weights.frac_bits + self.activations.frac_bits


def round_shift_saturate(acc: np.ndarray, shift: int, fmt: QFormat) -> np.ndarray:
    """Arithmetic shift right by ``shift`` with round-half-up (left if negative), then saturate."""
    acc = np.asarray(acc, dtype=np.int64)
    if shift > 0:
        out = (acc + (1 << (shift - 1))) >> shift
    else:
        out = acc << (-shift)
    return np.clip(out, fmt.min_int, fmt.max_int)
