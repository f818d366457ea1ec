"""Pareto fronts: the non-dominated rows of a table, non-dominated sorting and crowding distance."""
from __future__ import annotations

import moocore
import numpy as np
import pandas as pd


# ---- Pareto front -------------------------------------------------------------------------------
def _larger_is_better(values, directions) -> np.ndarray:
    """``values`` as a float (n, k) array with every column turned so that larger is better;
    the shape and the directions checked. (Signs rather than moocore's per-column ``maximise``:
    moocore 0.3.2's ``pareto_rank`` ranks ``maximise=[False]`` as if maximising.)"""
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or v.shape[1] != len(directions):
        raise ValueError(f"values must be (n, {len(directions)}), got shape {v.shape}")
    bad = [d for d in directions if d not in ("max", "min")]
    if bad:
        raise ValueError(f"directions must be 'max' or 'min', got {bad}")
    return v * np.array([1.0 if d == "max" else -1.0 for d in directions])


def pareto_mask(values: np.ndarray, directions) -> np.ndarray:
    """True for rows not dominated by any other row.

    ``values`` (n, k); ``directions`` k of ``"max"``/``"min"``. A row with any missing value is
    never on the front (a trial without a task's metric cannot trade it off). Equal rows do not
    dominate each other, so ties are all on the front.
    """
    signed = _larger_is_better(values, directions)
    valid = ~np.isnan(signed).any(axis=1)
    mask = np.zeros(len(signed), bool)
    if valid.any():  # moocore (C); keep_weakly: equal rows stay, as the docstring says
        mask[valid] = moocore.is_nondominated(signed[valid], maximise=True, keep_weakly=True)
    return mask


def nondominated_ranks(values: np.ndarray, directions) -> np.ndarray:
    """Front index of each row under non-dominated sorting (Deb et al. 2002): 0 for the Pareto
    front, 1 for the front of what remains, and so on. Rows must have no missing values."""
    if len(values) == 0:
        return np.zeros(0, int)
    return np.asarray(moocore.pareto_rank(_larger_is_better(values, directions), maximise=True), int)


def crowding_distance(values: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of rows on one front: per objective, the span between each
    row's two neighbours over the front's span, summed; the extremes get infinity."""
    v = np.asarray(values, float)
    n, k = v.shape
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(k):
        order = np.argsort(v[:, j], kind="stable")
        span = v[order[-1], j] - v[order[0], j]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (v[order[2:], j] - v[order[:-2], j]) / span
    return distance


def promotion_order(values: np.ndarray, directions) -> np.ndarray:
    """Row indices best first: by non-dominated rank, then by crowding distance within a rank
    (the more isolated first), as NSGA-II selects and MO-ASHA promotes."""
    ranks = nondominated_ranks(values, directions)
    crowd = np.zeros(len(ranks))
    for r in np.unique(ranks):
        on = ranks == r
        crowd[on] = crowding_distance(np.asarray(values, float)[on])
    return np.lexsort((-crowd, ranks))


def finished(trials: pd.DataFrame) -> pd.DataFrame:
    return trials[trials["status"] == "TERMINATED"] if "status" in trials else trials


def pareto_front(trials: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    """The finished rows on the front of ``objectives`` ({column: "max"|"min"}); rows are trials
    or configurations (:func:`config_table`, with ``<metric>_mean`` columns)."""
    missing = [c for c in objectives if c not in trials]
    if missing:
        raise KeyError(f"objective column(s) {missing} not in the table; "
                       f"available: {sorted(c for c in trials if c.startswith('val_'))}")
    done = finished(trials)
    return done[pareto_mask(done[list(objectives)].to_numpy(float), list(objectives.values()))]


def with_pareto_column(trials: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    out = trials.copy()
    out["pareto"] = out.index.isin(pareto_front(trials, objectives).index)
    return out
