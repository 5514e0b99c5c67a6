"""Exact robust statistics of integer samples (medians by histogram: O(n), no sort, the same on every machine).

Pure numpy. Shared by the codecs' encoders: the broadband noise fill's levels
(:mod:`.codecs.broadband.noise`) and the spike front end's offsets and noise levels
(:mod:`.codecs.spike_cae.background`, :mod:`.codecs.spike_cae.detection`). A median of integers is an
integer or half an integer, so these return *twice* the median, an exact integer.
"""

from __future__ import annotations

import numpy as np


def twice_median(values: np.ndarray) -> int:
    """Twice the median of a non-empty 1D integer array, exactly (a histogram of ``max - min + 1`` bins)."""
    values = np.asarray(values, dtype=np.int64)
    low = int(values.min())
    cumulative = np.cumsum(np.bincount(values - low))
    middle = np.searchsorted(cumulative, [(values.size - 1) // 2, values.size // 2], side="right")
    return int(middle.sum()) + 2 * low


def twice_row_medians(rows: np.ndarray) -> np.ndarray:
    """Twice the median of each row of a ``(num_rows, num_values >= 1)`` integer array, int64 ``(num_rows,)``."""
    return np.array([twice_median(row) for row in rows], dtype=np.int64).reshape(len(rows))


def twice_column_medians(array: np.ndarray) -> np.ndarray:
    """Twice the median of each column of a ``(num_rows >= 1, num_columns)`` integer array, int64 ``(num_columns,)``.

    Equal to ``2 * np.median(array, axis=0)`` (which sorts every column), column by column on a
    contiguous copy: ~4x faster on 25 000 x 1024 int16 samples.
    """
    # rows copied first: a strided view transposes slowly
    return twice_row_medians(np.ascontiguousarray(np.ascontiguousarray(array).T))
