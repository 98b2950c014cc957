"""Arrow builders: numpy columns to Arrow arrays, with the planted messiness (spellings, NULLs, duplicates)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from churnwh.sources.demo.vocabulary import EMAIL_EVENT_TYPES, FEATURES, TRANSACTION_CATEGORIES

ARROW_CHUNK_ROWS = 8_000_000


def _strings(vocabulary, indices: np.ndarray, null_mask: np.ndarray | None = None) -> pa.ChunkedArray:
    """vocabulary[indices] as a string column, built in chunks so offsets never overflow."""
    values = pa.array(list(vocabulary), type=pa.string())
    idx = pa.array(np.asarray(indices, dtype=np.int32), mask=null_mask)
    chunks = [values.take(idx.slice(i, ARROW_CHUNK_ROWS)) for i in range(0, len(idx), ARROW_CHUNK_ROWS)]
    return pa.chunked_array(chunks or [pa.array([], pa.string())], type=pa.string())


def _spellings(rng: np.random.Generator, codes: np.ndarray, variants: list[list[str]],
               clean_share: float) -> np.ndarray:
    """Index into the flattened `variants`: the first spelling mostly, otherwise any spelling."""
    counts = np.array([len(v) for v in variants])
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    codes = np.asarray(codes, dtype=np.int64)
    pick = np.floor(rng.random(codes.size) * counts[codes]).astype(np.int64)
    pick[rng.random(codes.size) < clean_share] = 0
    return (offsets[codes] + pick).astype(np.int32)


def _flatten(variants: list[list[str]]) -> list[str]:
    return [s for v in variants for s in v]


def _messy_strings(rng: np.random.Generator, codes: np.ndarray, variants: list[list[str]],
                   clean_share: float = 0.85, null_mask: np.ndarray | None = None) -> pa.ChunkedArray:
    """Category `codes` as text with inconsistent casing and whitespace."""
    return _strings(_flatten(variants), _spellings(rng, codes, variants, clean_share), null_mask)


def _casing_variants(values) -> list[list[str]]:
    return [[v, v.upper(), v.title(), f"{v} "] for v in values]


CATEGORY_SPELLINGS = _casing_variants(TRANSACTION_CATEGORIES)
FEATURE_SPELLINGS = _casing_variants(FEATURES)
EMAIL_SPELLINGS = _casing_variants(EMAIL_EVENT_TYPES)


def _format_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """'C00000042'-style ids built as one fixed-width byte buffer (no Python string per row)."""
    numbers = np.asarray(numbers, dtype=np.int64)
    head = np.frombuffer(prefix.encode(), dtype=np.uint8)
    row_len = head.size + width
    buf = np.empty((numbers.size, row_len), dtype=np.uint8)
    buf[:, : head.size] = head
    rest = numbers.copy()
    for pos in range(row_len - 1, head.size - 1, -1):
        buf[:, pos] = 48 + rest % 10
        rest //= 10
    offsets = np.arange(numbers.size + 1, dtype=np.int64) * row_len
    return pa.LargeStringArray.from_buffers(numbers.size, pa.py_buffer(offsets), pa.py_buffer(buf)).cast(pa.string())


def _dates(days: np.ndarray, null_mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.asarray(days, dtype=np.int32), mask=null_mask).cast(pa.date32())


def _timestamps(micros: np.ndarray, null_mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.asarray(micros, dtype=np.int64), mask=null_mask).cast(pa.timestamp("us"))


def _with_duplicates(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    """Row order that repeats about `share` of the rows exactly, right after the original."""
    return np.repeat(np.arange(n), 1 + (rng.random(n, dtype=np.float32) < share))


def _take(columns: dict[str, np.ndarray], order: np.ndarray) -> dict[str, np.ndarray]:
    return {name: col[order] for name, col in columns.items()}
