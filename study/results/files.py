"""Atomic writes: write to a temporary file beside the target, then rename, so a reader (or a
crash at any instant) sees the old file or the new one, never a torn one."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def write_parquet_atomic(path: Path, df: pd.DataFrame) -> None:
    """Write-then-rename: readers see the old file or the new one, never a torn one."""
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)


def write_json_atomic(path: Path, payload: dict, indent: int = 1) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=indent, default=str))
    tmp.replace(path)
