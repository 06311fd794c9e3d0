"""Length-limited canonical Huffman codes: the code lengths, the code values, and their stored form.

Code lengths
    Optimal lengths under a maximum of :data:`MAX_CODE_LENGTH` bits: a plain
    Huffman code when it respects the limit, else package-merge (both with
    deterministic tie-breaking).
    A stream with one distinct symbol gives it length 1; an empty stream has no
    codes. Only the lengths are stored, as a string of hex digits (one per
    symbol 0, 1, 2, ...; trailing zeros dropped), see :func:`lengths_to_hex`.

Canonical code (as in DEFLATE)
    Symbols with non-zero length, sorted by (length, symbol), receive
    consecutive code values: the first gets 0; each next one gets the previous
    code plus one, shifted left by the increase in length.

How a code's symbols are laid out in a stream is :mod:`.huffman`'s business.
"""

from __future__ import annotations

import heapq
import threading
from typing import NamedTuple

import numpy as np

from ..errors import CodecError

MAX_CODE_LENGTH = 14


def _huffman_lengths(freqs: np.ndarray, used: list[int]) -> np.ndarray:
    """Unconstrained Huffman code lengths (heap construction, ties by creation order)."""
    heap = [(int(freqs[s]), s) for s in used]
    heapq.heapify(heap)
    parent: dict[int, int] = {}
    nid = freqs.size  # internal node ids follow the symbol values
    while len(heap) > 1:
        w1, a = heapq.heappop(heap)
        w2, b = heapq.heappop(heap)
        parent[a] = parent[b] = nid
        heapq.heappush(heap, (w1 + w2, nid))
        nid += 1
    lengths = np.zeros(freqs.size, dtype=np.int64)
    depth: dict[int, int] = {heap[0][1]: 0}
    for child in sorted(parent, key=lambda c: -parent[c]):  # parents are created after their children
        depth[child] = depth[parent[child]] + 1
    for s in used:
        lengths[s] = depth[s]
    return lengths


def code_lengths(freqs: np.ndarray, max_length: int = MAX_CODE_LENGTH) -> np.ndarray:
    """Optimal code lengths (uint8, one per symbol) with no code longer than ``max_length``.

    A plain Huffman code is used when it respects the limit (it is then optimal);
    otherwise package-merge finds the optimal limited lengths.
    """
    freqs = np.asarray(freqs, dtype=np.int64)
    lengths = np.zeros(freqs.size, dtype=np.uint8)
    used = [int(s) for s in np.flatnonzero(freqs > 0)]
    if not used:
        return lengths
    if len(used) == 1:
        lengths[used[0]] = 1
        return lengths
    if len(used) > (1 << max_length):
        raise CodecError(f"huffman: {len(used)} symbols cannot have codes of at most {max_length} bits")
    plain = _huffman_lengths(freqs, used)
    if int(plain.max()) <= max_length:
        return plain.astype(np.uint8)
    return _package_merge(freqs, used, max_length)


def _package_merge(freqs: np.ndarray, used: list[int], max_length: int) -> np.ndarray:
    """Optimal lengths under ``max_length`` (package-merge, leaves sorted by (count, symbol)).

    List 0 is the sorted leaves; list j merges the leaves with the packages made of
    consecutive pairs of list j-1 (a leaf goes first on a tie). The first 2n-2
    items of the last list are selected; going down, the selected leaves are a
    prefix of the sorted leaves (each adds 1 to its symbol's length) and the k
    selected packages select the first 2k items of the list below.
    """
    order = sorted(used, key=lambda s: (int(freqs[s]), s))
    n = len(order)
    leaf_w = freqs[order].astype(np.int64)
    items = leaf_w
    is_package = [np.zeros(n, dtype=bool)]
    for _ in range(max_length - 1):
        pairs = items[0 : 2 * (items.size // 2) : 2] + items[1 : 2 * (items.size // 2) : 2]
        merged = np.concatenate([leaf_w, pairs])
        idx = np.argsort(merged, kind="stable")
        items = merged[idx]
        is_package.append(idx >= n)
    count = np.zeros(n, dtype=np.int64)
    m = 2 * n - 2
    for flags in reversed(is_package):
        n_pkg = int(np.count_nonzero(flags[:m]))
        count[: m - n_pkg] += 1
        m = 2 * n_pkg
    lengths = np.zeros(freqs.size, dtype=np.uint8)
    lengths[order] = count
    return lengths


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical code values (uint32, MSB-first) for ``lengths``; 0 where length is 0."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(lengths.size, dtype=np.uint32)
    code = 0
    prev = 0
    for s in sorted(np.flatnonzero(lengths > 0).tolist(), key=lambda s: (lengths[s], s)):
        ln = int(lengths[s])
        code <<= ln - prev
        codes[s] = code
        code += 1
        prev = ln
    return codes


class CodeSummary(NamedTuple):
    """What the checks need of a code's lengths: how many symbols have a code, the shortest and longest
    code (0 if none), and the Kraft sum ``sum(2**(MAX_CODE_LENGTH - l))`` over lengths 1..MAX_CODE_LENGTH."""

    n_used: int
    shortest: int
    longest: int
    kraft: int


def summarize(lengths: np.ndarray) -> CodeSummary:
    """The :class:`CodeSummary` of code lengths in 0..15 (any integer dtype; a length outside 0..15 is
    reported as a longest code of 15, which no check accepts)."""
    ls = np.asarray(lengths).ravel()
    if ls.size and (int(ls.min()) < 0 or int(ls.max()) > 15):
        return CodeSummary(int(np.count_nonzero(ls)), 1, 15, 0)
    return _summary(np.bincount(ls.astype(np.intp, copy=False), minlength=16))


def _summary(hist: np.ndarray) -> CodeSummary:
    """The summary of lengths with histogram ``hist`` (16 counts, lengths 0..15)."""
    h = hist.tolist()
    n_used = shortest = longest = kraft = 0
    for ln in range(1, 16):
        c = h[ln]
        if c:
            n_used += c
            shortest = shortest or ln
            longest = ln
            if ln <= MAX_CODE_LENGTH:
                kraft += c << (MAX_CODE_LENGTH - ln)
    return CodeSummary(n_used, shortest, longest, kraft)


def check_summary(code: CodeSummary, n_symbols: int, what: str) -> None:
    """:func:`check_lengths` on a code's :class:`CodeSummary`."""
    if code.longest > MAX_CODE_LENGTH:
        raise CodecError(f"{what}: Huffman code length outside 0..{MAX_CODE_LENGTH}")
    if not code.n_used:
        if n_symbols:
            raise CodecError(f"{what}: no Huffman codes for {n_symbols} symbols")
        return
    if code.n_used == 1:
        if code.longest != 1:
            raise CodecError(f"{what}: a single Huffman code must have length 1, not {code.longest}")
        return
    if code.kraft != 1 << MAX_CODE_LENGTH:
        raise CodecError(f"{what}: Huffman code lengths are not a complete prefix code")


def check_lengths(lengths: np.ndarray, n_symbols: int, what: str) -> None:
    """Raise CodecError unless ``lengths`` form a valid code for ``n_symbols`` symbols.

    Valid: no code (only if ``n_symbols == 0``), one symbol of length 1, or a
    complete prefix code (Kraft sum exactly 1) with lengths in 1..MAX_CODE_LENGTH.
    """
    check_summary(summarize(lengths), n_symbols, what)


def lengths_to_hex(lengths: np.ndarray) -> str:
    """One hex digit per symbol, trailing zeros dropped (e.g. ``"2213"``)."""
    text = "".join("0123456789abcdef"[int(v)] for v in lengths)
    return text.rstrip("0")


def hex_to_lengths(text: str, alphabet: int, what: str) -> np.ndarray:
    """Parse :func:`lengths_to_hex` output into ``alphabet`` lengths (a read-only array); CodecError if
    malformed."""
    return parse_code(text, alphabet, what)[0]


def parse_code(text: str, alphabet: int, what: str) -> tuple[np.ndarray, CodeSummary]:
    """:func:`hex_to_lengths` and the lengths' :class:`CodeSummary`. The last 4 results are kept: a
    decoder parses each stream's string twice (when it checks the meta, then when it decodes), 4096
    digits for a pair code."""
    if not isinstance(text, str) or len(text) > alphabet:
        raise CodecError(f"{what}: code_lengths must be a string of at most {alphabet} hex digits")
    key = (text, alphabet)
    with _PARSED_LOCK:
        hit = _PARSED.get(key)
    if hit is not None:
        return hit
    out = _parse_hex(text, alphabet, what)
    out.flags.writeable = False
    hist = np.bincount(out[: len(text)], minlength=16)
    result = (out, _summary(hist))
    with _PARSED_LOCK:
        if len(_PARSED) >= 4:
            del _PARSED[next(iter(_PARSED))]
        _PARSED[key] = result
    return result


_PARSED: dict[tuple[str, int], tuple[np.ndarray, CodeSummary]] = {}
_PARSED_LOCK = threading.Lock()
_HEX_VALUES = bytes.maketrans(b"0123456789abcdef", bytes(range(16)))


def _parse_hex(text: str, alphabet: int, what: str) -> np.ndarray:
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise CodecError(f"{what}: code_lengths is not a hex string") from None
    if raw.translate(None, b"0123456789abcdef"):  # characters other than lower-case hex digits
        if not raw.translate(None, b"0123456789abcdefABCDEF"):
            raise CodecError(f"{what}: code_lengths must use lower-case hex digits")
        raise CodecError(f"{what}: code_lengths is not a hex string")
    out = np.zeros(alphabet, dtype=np.uint8)
    out[: len(raw)] = np.frombuffer(raw.translate(_HEX_VALUES), dtype=np.uint8)
    return out
