"""The EIE storage layout: a weight matrix interleaved over N processing elements.

Conventions (EIE, Han et al. ISCA 2016, §III-B):

* ``W`` has shape ``(n_rows, n_cols) = (outputs, inputs)``; ``b = ReLU(W a)``.
* Row ``i`` goes to PE ``i mod N``; inside PE ``k`` it is *local row* ``i // N``.
* Each PE stores its rows in CSC form: per entry a ``weight_bits`` virtual weight ``v``
  (a code into a shared table of ``2**weight_bits`` values, code 0 = 0.0) and an
  ``index_bits`` relative row index ``z`` (zeros before the entry in this column, counted in
  the PE's local rows). When more than ``2**index_bits - 1`` zeros precede an entry, a
  padding entry ``(v=0, z=2**index_bits - 1)`` is added ("If more than 15 zeros appear
  before a non-zero entry we add a zero in vector v").
* Per PE a column pointer of ``n_cols + 1`` entries; column ``j`` of PE ``k`` holds entries
  ``ptr[k, j] : ptr[k, j + 1]`` of that PE's arrays, padding included.

Every entry with ``v == 0`` is padding; real (stored) weights always have ``v >= 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from deepcompress.errors import ConfigError, DataError

from .codebook import cluster_weights, fit_codebook

DEFAULT_PES = 64
DEFAULT_INDEX_BITS = 4
DEFAULT_WEIGHT_BITS = 4


@dataclass(frozen=True)
class PEMemory:
    """The three arrays one PE holds (views into the layout) and the global rows it owns."""

    weights: np.ndarray  # virtual weight codes v
    rel_index: np.ndarray  # relative row indices z
    col_ptr: np.ndarray  # int64, n_cols + 1
    rows: np.ndarray  # global output rows of local rows 0, 1, 2, ...


@dataclass(frozen=True, eq=False)
class EIELayout:
    """A compressed layer laid out for ``n_pes`` EIE processing elements.

    ``weights`` and ``rel_index`` concatenate the PEs' arrays (PE 0 first);
    ``pe_start[k]:pe_start[k + 1]`` is PE ``k``'s slice. ``col_ptr[k]`` is PE ``k``'s column
    pointer, relative to its own slice. ``codebook[v]`` is the real weight of code ``v``.
    """

    shape: tuple[int, int]
    n_pes: int
    index_bits: int
    weight_bits: int
    codebook: np.ndarray  # float32, 2**weight_bits values, codebook[0] == 0
    weights: np.ndarray
    rel_index: np.ndarray
    col_ptr: np.ndarray  # int64 (n_pes, n_cols + 1)
    pe_start: np.ndarray  # int64 (n_pes + 1,)

    @property
    def n_rows(self) -> int:
        return self.shape[0]

    @property
    def n_cols(self) -> int:
        return self.shape[1]

    @property
    def n_entries(self) -> int:
        """Stored entries, padding included (the work of a fully dense activation vector)."""
        return int(self.weights.size)

    @cached_property
    def n_real(self) -> int:
        """Stored non-zero weights (entries with ``v != 0``)."""
        return int(np.count_nonzero(self.weights))

    @property
    def n_padding(self) -> int:
        return self.n_entries - self.n_real

    def pe(self, k: int) -> PEMemory:
        """The arrays PE ``k`` holds (the paper's Figure 3 view)."""
        if not 0 <= k < self.n_pes:
            raise ConfigError(f"PE index {k} out of range 0..{self.n_pes - 1}")
        s, e = int(self.pe_start[k]), int(self.pe_start[k + 1])
        return PEMemory(
            weights=self.weights[s:e],
            rel_index=self.rel_index[s:e],
            col_ptr=self.col_ptr[k],
            rows=np.arange(k, self.n_rows, self.n_pes, dtype=np.int64),
        )

    @cached_property
    def entry_row(self) -> np.ndarray:
        """Global output row of every entry (decoded from the relative indices), int64."""
        if self.n_entries == 0:
            return np.zeros(0, dtype=np.int64)
        z1 = self.rel_index.astype(np.int64) + 1
        run = np.cumsum(z1)
        # Subtract the running sum at the start of each (PE, column) segment.
        gptr = self.global_col_ptr
        seg_len = np.diff(gptr, axis=1).ravel()
        seg_start = gptr[:, :-1].ravel()
        base = np.where(seg_start > 0, run[np.maximum(seg_start - 1, 0)], 0)
        local = run - np.repeat(base, seg_len) - 1
        pe_of_entry = np.repeat(np.arange(self.n_pes, dtype=np.int64), np.diff(self.pe_start))
        return local * self.n_pes + pe_of_entry

    @cached_property
    def entry_col(self) -> np.ndarray:
        """Input column of every entry, int64."""
        seg_len = np.diff(self.global_col_ptr, axis=1).ravel()
        cols = np.tile(np.arange(self.n_cols, dtype=np.int64), self.n_pes)
        return np.repeat(cols, seg_len)

    @cached_property
    def global_col_ptr(self) -> np.ndarray:
        """Column pointers as offsets into the concatenated arrays, int64 (n_pes, n_cols + 1)."""
        return self.col_ptr + self.pe_start[:-1, None]

    def column_work(self) -> np.ndarray:
        """Entries (padding included) of every (PE, column): int64 ``(n_pes, n_cols)``."""
        return np.diff(self.col_ptr, axis=1)

    def column_real_work(self) -> np.ndarray:
        """Real (non-padding) entries of every (PE, column): int64 ``(n_pes, n_cols)``."""
        csum = np.concatenate(([0], np.cumsum(self.weights != 0, dtype=np.int64)))
        return np.diff(csum[self.global_col_ptr], axis=1)

    def to_dense(self) -> np.ndarray:
        """The decoded weight matrix, float32 ``(n_rows, n_cols)``."""
        out = np.zeros(self.shape, dtype=np.float32)
        real = self.weights != 0
        out[self.entry_row[real], self.entry_col[real]] = self.codebook[self.weights[real]]
        return out

    def to_labels(self) -> np.ndarray:
        """Codes as a dense int matrix, -1 where nothing is stored (pruned)."""
        out = np.full(self.shape, -1, dtype=np.int16 if self.weight_bits < 16 else np.int32)
        real = self.weights != 0
        out[self.entry_row[real], self.entry_col[real]] = self.weights[real]
        return out

    def storage_bits(self) -> dict[str, int]:
        """Bits the layer occupies in EIE SRAM: spmat entries and 16-bit column pointers."""
        spmat = self.n_entries * (self.index_bits + self.weight_bits)
        ptr = self.n_pes * (self.n_cols + 1) * 16
        return {"spmat": spmat, "pointers": ptr, "codebook": self.codebook.size * 16, "total": spmat + ptr}


def _field_dtype(bits: int) -> type:
    return np.uint8 if bits <= 8 else np.uint16


def _check_params(n_pes: int, index_bits: int, weight_bits: int) -> None:
    if n_pes < 1:
        raise ConfigError(f"number of PEs must be >= 1, got {n_pes}")
    if not 1 <= index_bits <= 16:
        raise ConfigError(f"index_bits must be in 1..16, got {index_bits}")
    if not 1 <= weight_bits <= 16:
        raise ConfigError(f"weight_bits must be in 1..16, got {weight_bits}")


def build_layout(
    shape: tuple[int, int],
    rows: np.ndarray,
    cols: np.ndarray,
    codes: np.ndarray,
    codebook: np.ndarray,
    *,
    n_pes: int = DEFAULT_PES,
    index_bits: int = DEFAULT_INDEX_BITS,
    weight_bits: int = DEFAULT_WEIGHT_BITS,
    name: str = "layer",
) -> EIELayout:
    """Lay out a matrix given in coordinate form.

    ``rows``, ``cols`` and ``codes`` list the stored weights (any order, no duplicates);
    ``codes`` are in ``1 .. 2**weight_bits - 1`` and ``codebook`` has ``2**weight_bits``
    float values with ``codebook[0] == 0``.
    """
    _check_params(n_pes, index_bits, weight_bits)
    n_rows, n_cols = int(shape[0]), int(shape[1])
    if n_rows < 0 or n_cols < 0:
        raise ConfigError(f"{name}: bad shape {shape}")
    table = np.asarray(codebook, dtype=np.float32).ravel()
    if table.size != 1 << weight_bits or table[0] != 0.0:
        raise DataError(
            f"{name}: codebook must have {1 << weight_bits} entries with entry 0 == 0.0, got {table.size}"
        )
    rows = np.asarray(rows, dtype=np.int64).ravel()
    cols = np.asarray(cols, dtype=np.int64).ravel()
    codes = np.asarray(codes).ravel()
    if not rows.size == cols.size == codes.size:
        raise DataError(f"{name}: rows/cols/codes lengths differ ({rows.size}, {cols.size}, {codes.size})")
    if rows.size:
        if rows.min() < 0 or rows.max() >= n_rows or cols.min() < 0 or cols.max() >= n_cols:
            raise DataError(f"{name}: coordinates outside the {n_rows}x{n_cols} matrix")
        if codes.min() < 1 or codes.max() >= 1 << weight_bits:
            raise DataError(f"{name}: codes must be in 1..{(1 << weight_bits) - 1}, got {codes.min()}..{codes.max()}")

    n_local = -(-n_rows // n_pes) if n_rows else 0
    pe = rows % n_pes
    local = rows // n_pes
    key = (pe * n_cols + cols) * max(n_local, 1) + local
    if key.size > 1 and not np.all(key[1:] > key[:-1]):
        order = np.argsort(key, kind="stable")
        key, pe, local, cols, codes = key[order], pe[order], local[order], cols[order], codes[order]
        if np.any(key[1:] == key[:-1]):
            raise DataError(f"{name}: duplicate coordinates")
    seg = pe * n_cols + cols  # (PE, column) segment of each weight, non-decreasing
    first = np.ones(seg.size, dtype=bool)
    first[1:] = seg[1:] != seg[:-1]
    prev_local = np.empty_like(local)
    prev_local[0:1] = -1
    prev_local[1:] = local[:-1]
    prev_local[first] = -1
    run = local - prev_local - 1  # zeros before each weight in its PE's column slice
    span = 1 << index_bits
    n_pad = run // span
    z_real = run - n_pad * span  # == run % span

    expanded = n_pad + 1  # slots per weight: its paddings then itself
    total = int(expanded.sum())
    pos = np.cumsum(expanded) - 1  # slot of each real weight
    fdt_w, fdt_z = _field_dtype(weight_bits), _field_dtype(index_bits)
    v = np.zeros(total, dtype=fdt_w)
    z = np.full(total, span - 1, dtype=fdt_z)
    v[pos] = codes
    z[pos] = z_real

    seg_entries = np.bincount(seg, weights=expanded, minlength=n_pes * n_cols).astype(np.int64)
    per_seg = seg_entries.reshape(n_pes, n_cols)
    per_pe = per_seg.sum(axis=1)
    pe_start = np.concatenate(([0], np.cumsum(per_pe))).astype(np.int64)
    col_ptr = np.zeros((n_pes, n_cols + 1), dtype=np.int64)
    np.cumsum(per_seg, axis=1, out=col_ptr[:, 1:])
    return EIELayout(
        shape=(n_rows, n_cols),
        n_pes=n_pes,
        index_bits=index_bits,
        weight_bits=weight_bits,
        codebook=table,
        weights=v,
        rel_index=z,
        col_ptr=col_ptr,
        pe_start=pe_start,
    )


def layout_from_labels(
    labels: np.ndarray,
    codebook: np.ndarray,
    *,
    n_pes: int = DEFAULT_PES,
    index_bits: int = DEFAULT_INDEX_BITS,
    weight_bits: int = DEFAULT_WEIGHT_BITS,
    policy: str = "requantize",
    name: str = "layer",
) -> EIELayout:
    """Lay out a weight-shared layer: ``labels`` (outputs x inputs, -1 = pruned) into ``codebook``.

    Labels whose codebook value is exactly 0.0 count as pruned. If more than
    ``2**weight_bits - 1`` non-zero shared values are used, ``policy`` decides (see
    :func:`deepcompress.eie.codebook.fit_codebook`): ``"requantize"`` (default) clusters them
    down to fit, ``"widen"`` widens the virtual-weight field.
    """
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise DataError(f"{name}: labels must be 2-D (outputs x inputs), got shape {lab.shape}")
    if not np.issubdtype(lab.dtype, np.integer):
        raise DataError(f"{name}: labels must be integers, got {lab.dtype}")
    cb = np.asarray(codebook, dtype=np.float32).ravel()
    if lab.size and (lab.min() < -1 or lab.max() >= cb.size):
        raise DataError(f"{name}: labels must be in -1..{cb.size - 1}, got {lab.min()}..{lab.max()}")
    rows, cols = np.nonzero(lab >= 0)
    lab_nz = lab[rows, cols].astype(np.int64)
    usage = np.bincount(lab_nz, minlength=cb.size)
    table, code_of_entry, bits = fit_codebook(cb, usage, weight_bits, policy, name)
    codes = code_of_entry[lab_nz]
    keep = codes > 0
    return build_layout(
        lab.shape, rows[keep], cols[keep], codes[keep], table,
        n_pes=n_pes, index_bits=index_bits, weight_bits=bits, name=name,
    )


def layout_from_weights(
    weights: np.ndarray,
    *,
    n_pes: int = DEFAULT_PES,
    index_bits: int = DEFAULT_INDEX_BITS,
    weight_bits: int = DEFAULT_WEIGHT_BITS,
    name: str = "layer",
) -> EIELayout:
    """Lay out a float matrix (outputs x inputs): zeros are pruned, the non-zeros are shared.

    The non-zero weights are clustered by linear-init 1-D k-means into
    ``2**weight_bits - 1`` shared values (15 at 4 bits: code 0 is reserved for zero).
    """
    w = np.asarray(weights)
    if w.ndim != 2:
        raise DataError(f"{name}: weights must be 2-D (outputs x inputs), got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise DataError(f"{name}: weights contain NaN or inf")
    _check_params(n_pes, index_bits, weight_bits)
    rows, cols = np.nonzero(w)
    table = np.zeros(1 << weight_bits, dtype=np.float32)
    if rows.size == 0:
        return build_layout(w.shape, rows, cols, rows, table, n_pes=n_pes, index_bits=index_bits,
                            weight_bits=weight_bits, name=name)
    shared = cluster_weights(w[rows, cols], (1 << weight_bits) - 1)
    labels = np.full(w.shape, -1, dtype=np.int32)
    labels[rows, cols] = shared.labels
    return layout_from_labels(labels, shared.centroids.astype(np.float32), n_pes=n_pes, index_bits=index_bits,
                              weight_bits=weight_bits, policy="requantize", name=name)
