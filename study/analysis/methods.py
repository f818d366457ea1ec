"""Weighting methods against tuned static weights: at equal budget and beyond the static front,
with paired bootstrap intervals over seeds."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from .configs import _seed_values, config_key, mean_objectives
from .fronts import pareto_mask
from .hypervolume import normalise, objective_bounds, unit_hypervolume
from .parallel import map_draws


# ---- weighting methods against tuned static weights ---------------------------------------------
def method_of(table: pd.DataFrame, default: str = "static") -> pd.Series:
    """Each row's weighting strategy, from what it trained with: ``setting_weighting`` (every
    setting, searched or fixed, is recorded), else ``param_weighting`` (experiments from before
    settings were recorded), else ``default``."""
    for column in ("setting_weighting", "param_weighting"):
        if column in table and table[column].notna().any():
            return table[column].fillna(default)
    return pd.Series(default, index=table.index)


def weighting_of(trials: pd.DataFrame) -> pd.Series:
    """Each configuration's weighting strategy (:func:`method_of`), indexed by ``config_id``."""
    return method_of(trials).groupby(config_key(trials), sort=False).first()


MAX_SUBSETS = 200  # k-subsets of the reference averaged for the equal-budget hypervolume


def method_comparison(trials: pd.DataFrame, objectives: dict[str, str], *, reference: str = "static",
                      n_boot: int = 1000, seed: int = 0, confidence: float = 0.95,
                      min_seeds: int = 2) -> pd.DataFrame:
    """Every weighting method against ``reference`` (static) weights, at equal budget and tuned.

    One row per method with k configurations: its finished models; ``hv`` the hypervolume of its
    own configuration means (fixed bounds, :func:`objective_bounds`); ``hv_static_k`` the mean
    hypervolume of k reference configurations (over every k-subset of them: what a static search
    of the same size reaches, on average); ``hv_diff`` = hv - hv_static_k, the comparison at equal
    budget (comparing one configuration's hypervolume with a front of eight would favour the
    larger search, whatever the method); ``contribution`` = hv(all reference + method) -
    hv(all reference), what its configurations add beyond the *tuned* static front (0 when they
    are all dominated by it); ``on_front`` how many of its configurations are on the front of
    every method's means. Intervals (``_low``, ``_high``) and ``p_beyond`` (the share of
    resamples with a contribution above 0) come from one bootstrap over seeds: each
    configuration's seeds are resampled with replacement and every quantity recomputed on the same
    draw, so the differences are paired. A contribution is never negative, and any extra
    configurations of similar quality add some, so it is compared with ``static_k_beyond``, what k
    reference configurations add beyond the front of the others (mean over k-subsets):
    ``beyond_diff`` = contribution - static_k_beyond. ``verdict`` (equal budget) reads
    ``hv_diff``'s interval: ``better``, ``worse`` or ``within seed noise``; ``tuned_verdict`` reads
    ``beyond_diff``'s: ``beyond`` (it reaches further past the tuned front than more static
    configurations would), ``short`` or ``within seed noise``. Both are ``too few seeds`` while a
    configuration of the method or of the reference has fewer than ``min_seeds`` (one seed
    resamples to itself: an interval of zero width is no evidence)."""
    columns = ["method", "configs", "models", "on_front", "hv", "hv_low", "hv_high", "hv_static_k", "hv_diff",
               "hv_diff_low", "hv_diff_high", "verdict", "contribution", "contribution_low", "contribution_high",
               "p_beyond", "static_k_beyond", "beyond_diff", "beyond_diff_low", "beyond_diff_high", "tuned_verdict"]
    values = _seed_values(trials, objectives)
    method = weighting_of(trials)
    methods = list(dict.fromkeys(method[list(values)]))
    if reference not in methods:
        return pd.DataFrame(columns=columns)
    all_values = np.concatenate(list(values.values()))
    bounds, _ = objective_bounds(objectives, all_values)
    ids = {m: [c for c in values if method[c] == m] for m in methods}
    rng = np.random.default_rng(seed)

    n_ref = len(ids[reference])
    subsets = {}  # k -> (subset, the rest) for every k-subset of the reference, or MAX_SUBSETS drawn at random
    for k in sorted({min(len(ids[m]), n_ref) for m in methods}):
        chosen = ([list(c) for c in itertools.combinations(range(n_ref), k)] if math.comb(n_ref, k) <= MAX_SUBSETS
                  else [sorted(rng.choice(n_ref, k, replace=False)) for _ in range(MAX_SUBSETS)])
        subsets[k] = [(sub, np.setdiff1d(np.arange(n_ref), sub)) for sub in chosen]

    directions = list(objectives.values())
    pos = {m: np.array([i for i, c in enumerate(values) if method[c] == m]) for m in methods}
    plan = (pos, reference, subsets)
    means = np.stack([v.mean(axis=0) for v in values.values()])
    point = _measures(normalise(means, directions, bounds)[0], *plan)
    resampled = normalise(resampled_means(values, n_boot, rng), directions, bounds)[0]  # (B, C, k)
    hv_calls = 2 * sum(len(pairs) for pairs in subsets.values()) + 2 * len(methods)  # per draw
    draws = map_draws(_measures_of_draws, resampled, *plan, seconds_each=hv_calls * 6e-5)
    front = dict(zip(values, pareto_mask(means, directions)))
    tail = (1 - confidence) / 2
    rows = []
    for m in methods:
        boot = np.array([d[m] for d in draws])                                    # (n_boot, 5)
        beyond = boot[:, 3] - boot[:, 4]                                          # paired: same draw
        low, high = np.quantile(boot, tail, axis=0), np.quantile(boot, 1 - tail, axis=0)
        b_low, b_high = (np.quantile(beyond, tail), np.quantile(beyond, 1 - tail)) if np.isfinite(beyond).all() else (np.nan, np.nan)
        seeds = min(len(values[c]) for c in ids[m] + ids[reference])
        few = seeds < min_seeds
        verdict = ("reference" if m == reference else "too few seeds" if few else
                   "better" if low[2] > 0 else "worse" if high[2] < 0 else "within seed noise")
        tuned = ("reference" if m == reference else "too few seeds" if few else "no null (too few static)"
                 if np.isnan(point[m][4]) else "beyond" if b_low > 0 else "short" if b_high < 0 else "within seed noise")
        rows.append({"method": m, "configs": len(ids[m]), "models": sum(len(values[c]) for c in ids[m]),
                     "on_front": sum(front[c] for c in ids[m]),
                     "hv": point[m][0], "hv_low": low[0], "hv_high": high[0], "hv_static_k": point[m][1],
                     "hv_diff": point[m][2], "hv_diff_low": low[2], "hv_diff_high": high[2], "verdict": verdict,
                     "contribution": point[m][3], "contribution_low": low[3], "contribution_high": high[3],
                     "p_beyond": float((boot[:, 3] > 1e-12).mean()), "static_k_beyond": point[m][4],
                     "beyond_diff": point[m][3] - point[m][4], "beyond_diff_low": b_low, "beyond_diff_high": b_high,
                     "tuned_verdict": tuned})
    return pd.DataFrame(rows, columns=columns)


def _measures(norm: np.ndarray, pos: dict, reference: str, subsets: dict) -> dict:
    """Per method ``(hv, hv_static_k, hv_diff, contribution, static_k_beyond)`` of one set of
    configuration means ``norm`` (C, k), normalised by the bounds (:func:`method_comparison`)."""
    ref = norm[pos[reference]]
    n_ref = len(ref)
    ref_hv = unit_hypervolume(ref)
    by_k = {}  # k -> (mean hv of k reference configs, mean of what k of them add beyond the others)
    for k, pairs in subsets.items():
        by_k[k] = (float(np.mean([unit_hypervolume(ref[sub]) for sub, _ in pairs])),
                   float(np.mean([ref_hv - unit_hypervolume(ref[rest]) for _, rest in pairs]))
                   if k < n_ref else np.nan)
    out = {}
    for m, rows in pos.items():
        hv = unit_hypervolume(norm[rows])
        equal, null = by_k[min(len(rows), n_ref)]
        joint = unit_hypervolume(np.concatenate([ref, norm[rows]]))
        out[m] = (hv, equal, hv - equal, joint - ref_hv, null)
    return out


def _measures_of_draws(draws: np.ndarray, pos: dict, reference: str, subsets: dict) -> list:
    return [_measures(norm, pos, reference, subsets) for norm in draws]


def resampled_means(values: dict[str, np.ndarray], n_boot: int, rng: np.random.Generator,
                    max_bytes: float = 64e6) -> np.ndarray:
    """``(B, C, k)``: ``B = n_boot`` draws, each resampling every configuration's seeds with
    replacement (draw by draw, configuration by configuration: the order in which the methods
    comparison has always drawn, so its numbers stay those of earlier versions). All draws are
    made at once, in blocks of at most ``max_bytes``; :func:`study.analysis.configs.bootstrap_means`
    draws configuration by configuration instead."""
    stacked = np.concatenate(list(values.values()))                       # (seeds of all, k)
    lengths = np.array([len(v) for v in values.values()])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    high, offset = np.repeat(lengths, lengths), np.repeat(starts, lengths)  # per resampled seed
    block = max(1, int(max_bytes // (stacked.nbytes + 1)))
    out = []
    for first in range(0, n_boot, block):
        n = min(block, n_boot - first)
        picks = rng.integers(0, np.tile(high, n)).reshape(n, -1) + offset  # same stream as one call per config
        out.append(np.add.reduceat(stacked[picks], starts, axis=1) / lengths[:, None])
    return np.concatenate(out) if out else np.empty((0, len(lengths), stacked.shape[1]))


def beyond_reference(configs: pd.DataFrame, objectives: dict[str, str], reference: str = "static") -> pd.DataFrame:
    """``configs`` (:func:`config_table`) with ``method``, ``reference_front`` (a reference
    configuration on the reference-only front of means) and ``beyond`` (a configuration of
    another method that no reference configuration's mean dominates): what the methods plot
    draws."""
    out = configs.assign(method=method_of(configs, reference))
    cols = list(mean_objectives(objectives))
    ref = out["method"].eq(reference) & out[cols].notna().all(axis=1)
    out["reference_front"] = False
    if ref.any():
        out.loc[ref, "reference_front"] = pareto_mask(out.loc[ref, cols].to_numpy(float), list(objectives.values()))
    front = out.loc[out["reference_front"], cols].to_numpy(float)
    out["beyond"] = False
    for i in out.index[~out["method"].eq(reference) & out[cols].notna().all(axis=1)]:
        out.loc[i, "beyond"] = bool(pareto_mask(np.vstack([front, out.loc[i, cols].to_numpy(float)]),
                                                list(objectives.values()))[-1])
    return out
