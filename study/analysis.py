"""Analysis of an experiment's Parquet files (no Ray): Pareto fronts of the task objectives."""
from __future__ import annotations

import numpy as np
import pandas as pd


def pareto_mask(values: np.ndarray, directions) -> np.ndarray:
    """True for rows not dominated by any other row.

    ``values`` (n, k); ``directions`` k of ``"max"``/``"min"``. A row with any missing value is
    never on the front (a trial without a task's metric cannot trade it off). Equal rows do not
    dominate each other, so ties are all on the front.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or v.shape[1] != len(directions):
        raise ValueError(f"values must be (n, {len(directions)}), got shape {v.shape}")
    bad = [d for d in directions if d not in ("max", "min")]
    if bad:
        raise ValueError(f"directions must be 'max' or 'min', got {bad}")
    signed = v * np.array([1.0 if d == "max" else -1.0 for d in directions])  # larger is better
    valid = ~np.isnan(signed).any(axis=1)
    mask = np.zeros(len(v), bool)
    idx = np.flatnonzero(valid)
    s = signed[idx]
    for j, row in enumerate(s):
        dominated = np.any(np.all(s >= row, axis=1) & np.any(s > row, axis=1))
        mask[idx[j]] = not dominated
    return mask


def pareto_front(trials: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    """The finished trials on the front of ``objectives`` ({column: "max"|"min"})."""
    done = trials[trials["status"] == "TERMINATED"] if "status" in trials else trials
    missing = [c for c in objectives if c not in done]
    if missing:
        raise KeyError(f"objective column(s) {missing} not in the trial table")
    mask = pareto_mask(done[list(objectives)].to_numpy(float), list(objectives.values()))
    return done[mask]
