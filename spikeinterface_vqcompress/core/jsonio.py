"""The one JSON writer of results, model cards and run info.

JSON has no inf/NaN and no numpy types: :func:`json_value` turns numpy scalars and arrays into
Python values, paths into strings, and non-finite floats into the strings ``"inf"``, ``"-inf"``
and ``"nan"`` (one rule everywhere, so every reader parses every file). :func:`write_json` writes
atomically (temporary name in the same folder, fsync, rename).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np


def json_value(value, fallback=None):
    """``value`` as plain JSON values (recursively).

    Parameters
    ----------
    value : object
        Dicts, lists, tuples, numbers, numpy scalars and arrays, paths, strings, None.
    fallback : callable | None, default: None
        Called on any other object; None raises ``TypeError`` naming its type.
    """
    if isinstance(value, dict):
        return {str(key): json_value(item, fallback) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(item, fallback) for item in value]
    if isinstance(value, np.ndarray):
        return json_value(value.tolist(), fallback)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isfinite(value):
            return value
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    if fallback is not None:
        return fallback(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def dumps(value, indent: int | None = 2, fallback=None) -> str:
    """:func:`json_value` then ``json.dumps`` (no NaN or inf in the text)."""
    return json.dumps(json_value(value, fallback), indent=indent, allow_nan=False)


def write_json(path, value, indent: int | None = 2, fallback=None) -> Path:
    """Write ``value`` as JSON to ``path`` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = dumps(value, indent=indent, fallback=fallback) + "\n"
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(temporary, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return path
