"""Seeded random layers and activations at given densities (the paper's matrices are not public)."""

from __future__ import annotations

import numpy as np

from deepcompress.errors import ConfigError

from .layout import DEFAULT_INDEX_BITS, DEFAULT_PES, DEFAULT_WEIGHT_BITS, EIELayout, build_layout


def _check_density(density: float, what: str) -> None:
    if not 0.0 <= density <= 1.0:
        raise ConfigError(f"{what} density must be in [0, 1], got {density}")


def random_positions(n: int, density: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions in ``range(n)``, each kept independently with probability ``density``.

    Drawn as a Bernoulli process (geometric gaps), so it is fast for huge ``n``.
    """
    _check_density(density, "weight")
    if n == 0 or density == 0.0:
        return np.zeros(0, dtype=np.int64)
    if density == 1.0:
        return np.arange(n, dtype=np.int64)
    out: list[np.ndarray] = []
    pos = -1
    mean = n * density
    while True:
        m = int(mean + 6 * np.sqrt(mean) + 16)
        gaps = rng.geometric(density, size=m)
        p = pos + np.cumsum(gaps)
        out.append(p[p < n])
        if p[-1] >= n:
            break
        pos = int(p[-1])
    return np.concatenate(out)


def random_layer_coo(
    n_out: int, n_in: int, density: float, *, seed: int = 0, weight_bits: int = DEFAULT_WEIGHT_BITS
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A random ``n_out x n_in`` shared-weight matrix: ``(rows, cols, codes, codebook)``.

    Positions are Bernoulli(``density``); codes are uniform in ``1 .. 2**weight_bits - 1``;
    the codebook holds 0 then evenly spaced values in ``[-1, 1]`` without 0.
    """
    rng = np.random.default_rng(seed)
    flat = random_positions(n_out * n_in, density, rng)
    rows, cols = np.divmod(flat, n_in)
    n_codes = (1 << weight_bits) - 1
    codes = rng.integers(1, n_codes + 1, size=flat.size)
    values = np.linspace(-1.0, 1.0, n_codes + 1)
    values = values[values != 0.0][:n_codes] if n_codes > 1 else np.array([0.5])
    codebook = np.concatenate(([0.0], values)).astype(np.float32)
    return rows, cols, codes, codebook


def random_layout(
    n_out: int,
    n_in: int,
    density: float,
    *,
    seed: int = 0,
    n_pes: int = DEFAULT_PES,
    index_bits: int = DEFAULT_INDEX_BITS,
    weight_bits: int = DEFAULT_WEIGHT_BITS,
) -> EIELayout:
    """:func:`random_layer_coo` laid out for ``n_pes`` PEs."""
    rows, cols, codes, codebook = random_layer_coo(n_out, n_in, density, seed=seed, weight_bits=weight_bits)
    return build_layout((n_out, n_in), rows, cols, codes, codebook, n_pes=n_pes, index_bits=index_bits,
                        weight_bits=weight_bits)


def random_activations(n: int, density: float, *, seed: int = 0, dtype: type = np.float32) -> np.ndarray:
    """A length-``n`` non-negative vector with exactly ``round(density * n)`` non-zeros.

    Non-zero values are uniform in ``(0, 1]`` (post-ReLU activations); positions uniform.
    """
    _check_density(density, "activation")
    rng = np.random.default_rng(seed)
    k = int(round(density * n))
    a = np.zeros(n, dtype=dtype)
    idx = rng.choice(n, size=k, replace=False)
    a[idx] = (1.0 - rng.random(k)).astype(dtype)
    return a
