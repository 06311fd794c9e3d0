"""Granularity of sparsity: one typed value and the block shape it means per weight.

A block is the unit that is kept or pruned together. Blocks tile the weight
tensor without overlap; the block *grid* is ``shape[d] // block[d]`` along each
dimension.

On a Conv2d weight ``(O, I, kH, kW)`` (Mao et al. 2017):

============  ==========================  ==================
granularity   block                       block shape
============  ==========================  ==================
``element``   one weight (0-D)            ``(1, 1, 1, 1)``
``vector``    one kernel row ``(o,i,h,:)``  ``(1, 1, 1, kW)``
``kernel``    ``(o, i, :, :)`` (2-D)       ``(1, 1, kH, kW)``
``filter``    ``(o, :, :, :)`` (3-D)       ``(1, I, kH, kW)``
``channel``   ``(:, i, :, :)``             ``(O, 1, kH, kW)``
============  ==========================  ==================

On a Linear weight ``(O, I)``, read as a 1x1 convolution with rows as outputs:

============  =========================================  ==============
granularity   block                                      block shape
============  =========================================  ==============
``element``   one weight                                 ``(1, 1)``
``vector``    a 1xV run along the input, V = 4           ``(1, 4)``
``kernel``    not defined: use ``--block RxC`` instead   error
``filter``    one output row (all inputs of a neuron)    ``(1, I)``
``channel``   one input column (one input, all outputs)  ``(O, 1)``
============  =========================================  ==============

Conv1d/Conv3d weights follow the conv rules with their own spatial dims
(``vector`` = the last spatial axis, ``kernel`` = all spatial axes).
Every other 2-D weight (an embedding table, a recurrent layer's stacked gates,
attention's packed in-projection) follows the Linear rules, so ``filter`` is
one row (one token, one gate unit) and ``channel`` one column; weights of 3 or
more dims follow the conv rules on their axes as stored (a ConvTranspose
weight is ``(I, O/groups, k...)``). See ``docs/pruning.md``.
A custom block shape (e.g. ``1x4``) must divide the weight shape exactly.

**N:M patterns** (``"2:4"``, ``"4:8"``, any ``N:M`` with ``0 < N < M``): in every
group of ``M`` consecutive weights along the *input* axis, the ``N`` of largest
magnitude are kept: the structured fine-grained sparsity of NVIDIA's sparse
tensor cores (2:4), ``torch.ao`` and coremltools. On a conv weight
``(O, I, k...)`` a group is ``M`` input channels at one output channel and one
kernel position (as NVIDIA's ASP groups them); on a 2-D weight, ``M``
consecutive inputs of one row. ``I`` must be a multiple of ``M``. The pattern
fixes the sparsity of every pruned layer at ``1 - N/M``; a layer's sparsity
value then only says whether it is pruned (``0`` leaves it dense). Masks are
per weight (block ``(1, ...)``), so the file stores them with the relative
index like element masks; their index cost is measured, not assumed.
The grid arithmetic and the views between a weight and its blocks live in
:mod:`deepcompress.blocks`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .blocks import check_block
from .errors import ConfigError

LINEAR_VECTOR_LENGTH = 4


class Granularity(enum.Enum):
    """How coarse a pruned block is. Values are the only accepted spellings."""

    ELEMENT = "element"
    VECTOR = "vector"
    KERNEL = "kernel"
    FILTER = "filter"
    CHANNEL = "channel"

    @classmethod
    def parse(cls, text: "str | Granularity") -> "Granularity":
        """Return the member named ``text``; raise :class:`ConfigError` otherwise."""
        if isinstance(text, Granularity):
            return text
        try:
            return cls(str(text).strip().lower())
        except ValueError:
            names = ", ".join(g.value for g in cls)
            raise ConfigError(f"unknown granularity {text!r}; choose one of: {names}, or an N:M pattern such as 2:4") from None

    @property
    def structured(self) -> bool:
        """True for the granularities whose block holds more than one weight on a conv."""
        return self is not Granularity.ELEMENT


@dataclass(frozen=True)
class NMPattern:
    """N:M sparsity: ``n`` weights kept in every group of ``m`` along the input axis."""

    n: int
    m: int

    @property
    def sparsity(self) -> float:
        """The fraction of weights an N:M pattern prunes: ``1 - n/m``."""
        return 1.0 - self.n / self.m

    @property
    def label(self) -> str:
        return f"{self.n}:{self.m}"

    def check_dims(self, weight_shape: Sequence[int], name: str = "weight") -> tuple[int, ...]:
        """The shape as ints, checked to have an input axis (>= 2 dims)."""
        shape = tuple(int(s) for s in weight_shape)
        if len(shape) < 2:
            raise ConfigError(f"{name}: N:M sparsity {self.label} needs a weight of >= 2 dims; got shape {shape}")
        return shape

    def group_axis(self, weight_shape: Sequence[int], name: str = "weight") -> int:
        """The axis the groups of ``m`` run along (the input axis, 1), checked to be divisible."""
        shape = self.check_dims(weight_shape, name)
        if shape[1] % self.m:
            raise ConfigError(
                f"{name}: N:M sparsity {self.label} needs the input size {shape[1]} to be a multiple of {self.m}; "
                f"leave the layer dense (--sparsity {self.sparsity:g},{name}=0: the pattern's sparsity for the "
                "others, 0 for this one) or use another pattern"
            )
        return 1


_NM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")
MAX_NM_GROUP = 64


def parse_nm(text: object) -> NMPattern | None:
    """``NMPattern`` for a text like ``"2:4"``; ``None`` when ``text`` is not of that form."""
    if isinstance(text, NMPattern):
        return text
    if not isinstance(text, str):
        return None
    found = _NM.match(text)
    if found is None:
        return None
    n, m = int(found.group(1)), int(found.group(2))
    if not 0 < n < m <= MAX_NM_GROUP:
        raise ConfigError(f"bad N:M pattern {text!r}: need 0 < N < M <= {MAX_NM_GROUP}")
    return NMPattern(n, m)


def parse_granularity(text: "str | Granularity | NMPattern") -> "Granularity | NMPattern":
    """A granularity name (``element`` ... ``channel``) or an N:M pattern (``2:4``)."""
    return parse_nm(text) or Granularity.parse(text)  # type: ignore[arg-type]


def parse_block(text: str) -> tuple[int, ...]:
    """Parse a custom block such as ``"1x4"`` or ``"1x1x3x3"`` into a tuple of ints."""
    try:
        dims = tuple(int(part) for part in str(text).lower().split("x"))
    except ValueError:
        raise ConfigError(f"bad block shape {text!r}; expected e.g. 1x4 or 1x1x3x3") from None
    if not dims or any(d < 1 for d in dims):
        raise ConfigError(f"bad block shape {text!r}; every dimension must be >= 1")
    return dims


def block_shape(
    granularity: "Granularity | NMPattern | str | Sequence[int]",
    weight_shape: Sequence[int],
    name: str = "weight",
) -> tuple[int, ...]:
    """Return the block shape for ``granularity`` on a weight of ``weight_shape``.

    ``granularity`` may also be an explicit block shape (a sequence of ints), which
    is validated against the weight shape. Raises :class:`ConfigError` when the
    granularity is impossible for this weight.
    """
    shape = tuple(int(s) for s in weight_shape)
    nm = parse_nm(granularity)
    if nm is not None:  # masks are per weight; the group axis is checked where a layer is pruned
        return (1,) * len(nm.check_dims(shape, name))
    if not isinstance(granularity, (str, Granularity)):
        block = tuple(int(b) for b in granularity)
        return _check_block(block, shape, name)
    g = Granularity.parse(granularity)
    nd = len(shape)
    if nd == 0:
        raise ConfigError(f"{name}: cannot prune a scalar")
    if nd == 1:
        if g is Granularity.ELEMENT:
            return (1,)
        raise ConfigError(f"{name}: granularity {g.value} is impossible for a 1-D tensor of shape {shape}")
    if g is Granularity.ELEMENT:
        return (1,) * nd
    if nd == 2:
        out, inp = shape
        if g is Granularity.VECTOR:
            v = LINEAR_VECTOR_LENGTH if inp % LINEAR_VECTOR_LENGTH == 0 else 1
            if v == 1:
                raise ConfigError(
                    f"{name}: vector granularity needs the input size {inp} to be a multiple of "
                    f"{LINEAR_VECTOR_LENGTH}; use --block"
                )
            return (1, v)
        if g is Granularity.KERNEL:
            raise ConfigError(
                f"{name}: kernel granularity is impossible for a Linear weight {shape}; "
                "use --fc-granularity element|vector|filter|channel or --block RxC"
            )
        if g is Granularity.FILTER:
            return (1, inp)
        return (out, 1)  # CHANNEL
    out, inp, *spatial = shape
    if g is Granularity.VECTOR:
        return (1, 1) + (1,) * (len(spatial) - 1) + (spatial[-1],)
    if g is Granularity.KERNEL:
        return (1, 1) + tuple(spatial)
    if g is Granularity.FILTER:
        return (1, inp) + tuple(spatial)
    return (out, 1) + tuple(spatial)  # CHANNEL


def _check_block(block: tuple[int, ...], shape: tuple[int, ...], name: str) -> tuple[int, ...]:
    if len(block) == 2 and len(shape) > 2:
        # a 2-D block on a conv weight applies to the (O, I) axes
        block = block + (1,) * (len(shape) - 2)
    return check_block(shape, block, what=name)


def granularity_label(granularity: "Granularity | NMPattern | str | Sequence[int]") -> str:
    """A short label for reports: the enum value, or ``block:1x4`` for a custom block."""
    if isinstance(granularity, Granularity):
        return granularity.value
    nm = parse_nm(granularity)
    if nm is not None:
        return nm.label
    if isinstance(granularity, str):
        return Granularity.parse(granularity).value
    return "block:" + "x".join(str(int(b)) for b in granularity)
