"""Analysis of an experiment's Parquet files (no Ray): configurations over seeds, Pareto fronts
with their bootstrap uncertainty, hypervolume with fixed bounds, weighting methods against tuned
static weights, overfitting, the paper's recipe comparison and parameter importance. Plots
(:mod:`study.plots`) draw only what these functions return, so every plotted number is tested here.

A *trial* is one trained model (a configuration and a seed); a *configuration* is what the sampler
proposed, trained ``repeats`` times. Answers are given per configuration, over its seeds: one seed
is an anecdote.
"""
from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from model.config import TASKS

from .metrics import BLEU_STATS, corpus_bleu
from .significance import compare_recipes, holm, mean_interval


# ---- Pareto front -------------------------------------------------------------------------------
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


def nondominated_ranks(values: np.ndarray, directions) -> np.ndarray:
    """Front index of each row under non-dominated sorting (Deb et al. 2002): 0 for the Pareto
    front, 1 for the front of what remains, and so on. Rows must have no missing values."""
    v = np.asarray(values, float)
    ranks = np.full(len(v), -1)
    rank = 0
    while (ranks < 0).any():
        left = np.flatnonzero(ranks < 0)
        ranks[left[pareto_mask(v[left], directions)]] = rank
        rank += 1
    return ranks


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


# ---- configurations over seeds ------------------------------------------------------------------
def config_key(trials: pd.DataFrame) -> pd.Series:
    """Each trial's configuration id (experiments from before repeats: the trial is its own)."""
    if "config_id" not in trials:
        return trials["trial_id"]
    return trials["config_id"].where(trials["config_id"].notna(), trials["trial_id"])


def metric_columns(trials: pd.DataFrame) -> list[str]:
    return [c for c in trials if c.startswith(("val_", "test_")) and not c.startswith(("val_loss", "test_loss"))]


def config_table(trials: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """One row per configuration: its parameters, how many repeats finished, and for every
    ``val_*``/``test_*`` metric the mean, standard deviation and Student-t confidence interval
    over its finished seeds (``<metric>_mean``, ``_std``, ``_ci_low``, ``_ci_high``).
    ``status`` is ``TERMINATED`` when at least one repeat finished. ``finished_at`` is when its
    last trial ended (the order in which the search completed configurations)."""
    if trials.empty:
        return pd.DataFrame(columns=["config_id", "status", "repeats", "repeats_finished"])
    trials = trials.assign(config_id=config_key(trials))
    params = [c for c in trials if c.startswith("param_")]
    metrics = metric_columns(trials)
    rows = []
    for config_id, group in trials.groupby("config_id", sort=False):
        done = finished(group)
        row = {"config_id": config_id, "status": "TERMINATED" if len(done) else group["status"].iloc[-1],
               "repeats": len(group), "repeats_finished": len(done),
               "finished_at": group["finished_at"].max() if "finished_at" in group else np.nan,
               **{p: group[p].iloc[0] for p in params}}
        for m in metrics:
            mean, sd, low, high = mean_interval(done[m].to_numpy(float), confidence)
            row.update({f"{m}_mean": mean, f"{m}_std": sd, f"{m}_ci_low": low, f"{m}_ci_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


def mean_objectives(objectives: dict[str, str]) -> dict[str, str]:
    """The objectives as columns of :func:`config_table`."""
    return {f"{m}_mean": d for m, d in objectives.items()}


def _seed_values(trials: pd.DataFrame, objectives: dict[str, str]) -> dict[str, np.ndarray]:
    """Per configuration, the (seeds, objectives) values of its finished trials with all objectives."""
    done = finished(trials)
    done = done.assign(config_id=config_key(done))
    out = {}
    for config_id, group in done.groupby("config_id", sort=False):
        values = group[list(objectives)].to_numpy(float)
        values = values[~np.isnan(values).any(axis=1)]
        if len(values):
            out[config_id] = values
    return out


def pareto_probability(trials: pd.DataFrame, objectives: dict[str, str], *, n_boot: int = 1000,
                       seed: int = 0) -> pd.Series:
    """Per configuration, the probability that its mean is Pareto-optimal when each configuration's
    seeds are resampled with replacement (a bootstrap over seeds). 1.0 for a configuration that is
    on the front whichever seeds it had; near 0.5 for one whose place depends on its luck; 0 for
    one without every objective (a single-task configuration). One seed per configuration gives
    0 or 1: no evidence of spread, not certainty."""
    values = _seed_values(trials, objectives)
    ids = list(values)
    directions = list(objectives.values())
    rng = np.random.default_rng(seed)
    if not ids:
        return pd.Series(dtype=float, name="p_pareto")
    means = np.stack([v[rng.integers(0, len(v), (n_boot, len(v)))].mean(axis=1) for v in values.values()])  # (C, B, k)
    hits = np.zeros(len(ids))
    for b in range(n_boot):
        hits += pareto_mask(means[:, b, :], directions)
    out = pd.Series(0.0, index=pd.Index(config_key(trials).unique(), name="config_id"), name="p_pareto")
    out[ids] = hits / n_boot
    return out


def configs_with_front(trials: pd.DataFrame, objectives: dict[str, str], *, n_boot: int = 1000,
                       seed: int = 0) -> pd.DataFrame:
    """:func:`config_table` plus ``pareto`` (its mean is on the front of the configuration means)
    and ``p_pareto`` (:func:`pareto_probability`)."""
    configs = config_table(trials)
    if configs.empty or not all(f"{m}_mean" in configs for m in objectives):
        return configs
    configs = with_pareto_column(configs, mean_objectives(objectives))
    p = pareto_probability(trials, objectives, n_boot=n_boot, seed=seed)
    configs["p_pareto"] = configs["config_id"].map(p).fillna(0.0)
    return configs


# ---- hypervolume --------------------------------------------------------------------------------
def _hv_min(points: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume dominated by ``points`` (minimisation) up to ``ref``, by slicing."""
    points = points[np.all(points < ref, axis=1)]
    if len(points) == 0:
        return 0.0
    if points.shape[1] == 1:
        return float(ref[0] - points[:, 0].min())
    order = np.argsort(points[:, -1])
    pts = points[order]
    volume = 0.0
    for i, p in enumerate(pts):
        upper = pts[i + 1, -1] if i + 1 < len(pts) else ref[-1]
        if upper > p[-1]:
            volume += (upper - p[-1]) * _hv_min(pts[: i + 1, :-1], ref[:-1])
    return volume


def normalise(values: np.ndarray, directions, bounds=None):
    """Turn objectives into minimisation on [0, 1]: 0 = best, 1 = worst of ``bounds``.

    ``bounds`` (k, 2) of (worst, best) per objective; default: observed over ``values``. With
    constant objectives the span is taken as 1.
    """
    v = np.asarray(values, float)
    sign = np.array([-1.0 if d == "max" else 1.0 for d in directions])
    losses = v * sign
    if bounds is None:
        lo, hi = np.nanmin(losses, axis=0), np.nanmax(losses, axis=0)
    else:
        b = np.asarray(bounds, float) * sign[:, None]
        lo, hi = b.min(axis=1), b.max(axis=1)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    return (losses - lo) / span, (lo, span)


REFERENCE = 1.1  # reference point in normalised space: 10 % beyond the worst observed value


def hypervolume(values: np.ndarray, directions, *, bounds=None, reference: float = REFERENCE) -> float:
    """Hypervolume of the non-dominated rows, after :func:`normalise`, with reference point
    ``reference`` in every coordinate (so the maximum is ``reference ** k``). Rows with missing
    values are ignored."""
    norm, _ = normalise(values, directions, bounds)
    norm = norm[~np.isnan(norm).any(axis=1)]
    return _hv_min(norm, np.full(norm.shape[1], reference)) if len(norm) else 0.0


# (worst, best) each metric can reach, whatever the study: bounds that make hypervolumes of
# different studies comparable. Metrics not listed fall back to observed bounds (said so).
NATURAL_RANGES = {
    **{m: (0.0, 1.0) for m in ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "rouge_l_coco",
                               "bertscore_f1", "ce_precision", "ce_recall", "ce_f1", "oc_accuracy",
                               "ml_precision", "ml_recall", "ml_f1", "ml_exact_match")},
    "oc_acc_corr": (-0.5, 1.0),    # (accuracy + Spearman rho) / 2
    "oc_mae": (4.0, 0.0),          # acuity levels 1..5
    "oc_mse": (16.0, 0.0),
    "ml_hamming": (1.0, 0.0),
}


def objective_bounds(objectives: dict[str, str], values: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """``(bounds, sources)``: per objective (worst, best), from :data:`NATURAL_RANGES` ("natural")
    or, for a metric without one, the observed range widened by 10 % on the worst side
    ("observed"; then hypervolumes of different studies are not comparable)."""
    bounds, sources = [], []
    for j, (metric, direction) in enumerate(objectives.items()):
        name = metric.split("_", 1)[1].removesuffix("_mean")
        if name in NATURAL_RANGES:
            worst, best = NATURAL_RANGES[name]
            if (direction == "max") != (best > worst):
                worst, best = best, worst
            bounds.append((worst, best))
            sources.append("natural")
            continue
        v = np.asarray(values, float)[:, j] if values is not None else np.array([np.nan])
        lo, hi = (np.nanmin(v), np.nanmax(v)) if np.isfinite(v).any() else (0.0, 1.0)
        margin = 0.1 * (hi - lo if hi > lo else 1.0)
        bounds.append((hi + margin, lo) if direction == "min" else (lo - margin, hi))
        sources.append("observed")
    return np.array(bounds, float), sources


def fixed_hypervolume(values: np.ndarray, objectives: dict[str, str], bounds: np.ndarray) -> float:
    """Hypervolume of ``values`` normalised by ``bounds``, reference point at the worst bound: the
    share of the objective box [worst, best]^k that the front dominates (0 to 1)."""
    return hypervolume(values, list(objectives.values()), bounds=bounds, reference=1.0)


def hypervolume_summary(trials: pd.DataFrame, objectives: dict[str, str], *, n_boot: int = 1000,
                        seed: int = 0, confidence: float = 0.95) -> dict:
    """Hypervolume of the configuration means with fixed bounds, and its bootstrap interval over
    seeds (each configuration's seeds resampled with replacement, as in :func:`pareto_probability`)."""
    values = _seed_values(trials, objectives)
    all_values = np.concatenate(list(values.values())) if values else np.empty((0, len(objectives)))
    bounds, sources = objective_bounds(objectives, all_values)
    out = {"bounds": {m: list(b) for m, b in zip(objectives, bounds.tolist())},
           "bound_sources": dict(zip(objectives, sources)), "reference": "worst bound"}
    if not values:
        return {**out, "hypervolume": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n_boot": 0}
    means = np.stack([v.mean(axis=0) for v in values.values()])
    rng = np.random.default_rng(seed)
    boots = [fixed_hypervolume(np.stack([v[rng.integers(0, len(v), len(v))].mean(axis=0)
                                         for v in values.values()]), objectives, bounds)
             for _ in range(n_boot)]
    alpha = (1 - confidence) / 2
    return {**out, "hypervolume": fixed_hypervolume(means, objectives, bounds),
            "ci_low": float(np.quantile(boots, alpha)), "ci_high": float(np.quantile(boots, 1 - alpha)),
            "n_boot": n_boot}


def hypervolume_history(trials: pd.DataFrame, objectives: dict[str, str], bounds: np.ndarray | None = None) -> pd.DataFrame:
    """Hypervolume of the configuration means after each configuration completed (in the order
    the search completed them), with fixed ``bounds`` (default :func:`objective_bounds`), so the
    curve is comparable along itself and with other studies."""
    configs = finished(config_table(trials))
    configs = configs.sort_values("finished_at") if "finished_at" in configs else configs
    cols = list(mean_objectives(objectives))
    values = configs[cols].to_numpy(float) if len(configs) else np.empty((0, len(cols)))
    if bounds is None:
        bounds, _ = objective_bounds(objectives, values)
    rows = [{"n_configs": i + 1, "config_id": cid,
             "hypervolume": fixed_hypervolume(values[: i + 1], objectives, bounds)}
            for i, cid in enumerate(configs["config_id"])]
    return pd.DataFrame(rows, columns=["n_configs", "config_id", "hypervolume"])


# ---- weighting methods against tuned static weights ---------------------------------------------
def weighting_of(trials: pd.DataFrame) -> pd.Series:
    """Each configuration's weighting strategy (``param_weighting``; ``static`` where the space
    fixed it), indexed by ``config_id``."""
    done = trials.assign(config_id=config_key(trials))
    column = done["param_weighting"] if "param_weighting" in done else pd.Series("static", index=done.index)
    return column.fillna("static").groupby(done["config_id"], sort=False).first()


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

    def measures(means: dict) -> dict:  # {method: (hv, hv_static_k, hv_diff, contribution, static_k_beyond)}
        stack = {m: np.stack([means[c] for c in ids[m]]) for m in methods}
        ref = stack[reference]
        ref_hv = fixed_hypervolume(ref, objectives, bounds)
        by_k = {}  # k -> (mean hv of k reference configs, mean of what k of them add beyond the others)
        for k, pairs in subsets.items():
            by_k[k] = (float(np.mean([fixed_hypervolume(ref[sub], objectives, bounds) for sub, _ in pairs])),
                       float(np.mean([ref_hv - fixed_hypervolume(ref[rest], objectives, bounds) for _, rest in pairs]))
                       if k < n_ref else np.nan)
        out = {}
        for m in methods:
            hv = fixed_hypervolume(stack[m], objectives, bounds)
            equal, null = by_k[min(len(ids[m]), n_ref)]
            joint = fixed_hypervolume(np.concatenate([ref, stack[m]]), objectives, bounds)
            out[m] = (hv, equal, hv - equal, joint - ref_hv, null)
        return out

    means = {c: v.mean(axis=0) for c, v in values.items()}
    point = measures(means)
    draws = [measures({c: v[rng.integers(0, len(v), len(v))].mean(axis=0) for c, v in values.items()})
             for _ in range(n_boot)]
    front = dict(zip(values, pareto_mask(np.stack(list(means.values())), list(objectives.values()))))
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


def beyond_reference(configs: pd.DataFrame, objectives: dict[str, str], reference: str = "static") -> pd.DataFrame:
    """``configs`` (:func:`config_table`) with ``method``, ``reference_front`` (a reference
    configuration on the reference-only front of means) and ``beyond`` (a configuration of
    another method that no reference configuration's mean dominates): what the methods plot
    draws."""
    out = configs.assign(method=configs["param_weighting"].fillna(reference) if "param_weighting" in configs
                         else reference)
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


# ---- overfitting --------------------------------------------------------------------------------
OVERFIT_TOLERANCE = 0.01  # relative: a loss within 1 % of its minimum has not yet risen


def overfitting_point(val_loss, *, tolerance: float = OVERFIT_TOLERANCE) -> dict:
    """For one validation-loss curve (epochs 1..n): ``best_epoch`` (its minimum), ``min_loss``,
    and ``onset``: the first epoch after which the loss stays above ``min_loss * (1 + tolerance)``
    until the end (``None`` when the last epoch is still within the tolerance: no overfitting).
    ``overfit`` says whether it has an onset."""
    v = np.asarray(val_loss, float)
    if len(v) == 0 or np.isnan(v).all():
        return {"best_epoch": None, "min_loss": None, "onset": None, "overfit": False}
    best = int(np.nanargmin(v))
    above = v > v[best] * (1 + tolerance)
    onset = None
    if above[-1]:
        last_within = np.flatnonzero(~above)[-1]  # epoch index still within the tolerance
        onset = int(last_within) + 2              # the epoch after it, 1-based
    return {"best_epoch": best + 1, "min_loss": float(v[best]), "onset": onset, "overfit": onset is not None}


def overfitting_table(epochs: pd.DataFrame, trials: pd.DataFrame | None = None, *,
                      tolerance: float = OVERFIT_TOLERANCE) -> pd.DataFrame:
    """One row per (trial, task) with an active validation loss: best epoch, minimum loss,
    overfitting onset and the final train-validation gap; with ``trials``, the trial's
    configuration id and task setting (``STL`` or ``MTL``) are added."""
    rows = []
    for trial_id, e in epochs.sort_values("epoch").groupby("trial_id"):
        for task in TASKS:
            col = f"val_loss_{task}"
            if col not in e or e[col].isna().all():
                continue
            point = overfitting_point(e[col].to_numpy(), tolerance=tolerance)
            gap = (e[col] - e[f"train_loss_{task}"]).to_numpy()
            rows.append({"trial_id": trial_id, "task": task, "epochs_run": len(e), **point,
                         "final_gap": float(gap[-1])})
    table = pd.DataFrame(rows, columns=["trial_id", "task", "epochs_run", "best_epoch", "min_loss",
                                        "onset", "overfit", "final_gap"])
    if trials is not None and len(table):
        info = pd.DataFrame({"trial_id": trials["trial_id"], "config_id": config_key(trials),
                             "setting": np.where(task_setting(trials) == "MTL", "MTL", "STL")})
        table = table.merge(info, on="trial_id", how="left")
    return table


def gap_curves(epochs: pd.DataFrame) -> pd.DataFrame:
    """Long table of (trial_id, task, epoch, train, validation, gap) for plotting."""
    parts = []
    for task in TASKS:
        if f"val_loss_{task}" not in epochs or epochs[f"val_loss_{task}"].isna().all():
            continue
        part = epochs[["trial_id", "epoch", f"train_loss_{task}", f"val_loss_{task}"]].dropna()
        part = part.rename(columns={f"train_loss_{task}": "train", f"val_loss_{task}": "validation"})
        parts.append(part.assign(task=task, gap=part["validation"] - part["train"]))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["trial_id", "epoch", "train", "validation", "task", "gap"])


def task_setting(trials: pd.DataFrame) -> pd.Series:
    """``STL-<task>`` or ``MTL`` per trial, from which validation metrics it has."""
    has = pd.DataFrame({t: trials[c].notna() if c in trials else False for t, c in
                        (("text", "val_rouge_l"), ("oc", "val_oc_accuracy"), ("ml", "val_ml_f1"))})
    labels = np.where(has.sum(axis=1) > 1, "MTL", "STL-" + has.idxmax(axis=1))
    return pd.Series(labels, index=trials.index)


def stl_vs_mtl_overfitting(overfit: pd.DataFrame) -> pd.DataFrame:
    """Per task, STL runs against MTL runs (every seed a run): how many overfit, the mean epoch of
    the best validation loss, the mean onset among those that overfit, the mean minimum loss, and
    Welch t-tests (MTL vs STL) of the best epoch and the minimum loss over runs. Runs that never
    overfit stay in every count and in the best-epoch and minimum-loss means."""
    from scipy.stats import ttest_ind

    columns = ["task", "stl_runs", "mtl_runs", "stl_overfit", "mtl_overfit", "stl_best_epoch",
               "mtl_best_epoch", "p_best_epoch", "stl_onset", "mtl_onset", "stl_min_loss",
               "mtl_min_loss", "p_min_loss"]
    if overfit.empty or "setting" not in overfit:
        return pd.DataFrame(columns=columns)

    def welch(a, b):
        a, b = np.asarray(a, float), np.asarray(b, float)
        if len(a) < 2 or len(b) < 2:
            return np.nan
        if np.ptp(np.concatenate([a, b])) == 0:
            return 1.0
        return float(ttest_ind(b, a, equal_var=False).pvalue)

    rows = []
    for task, part in overfit.groupby("task", sort=False):
        stl, mtl = part[part["setting"] == "STL"], part[part["setting"] == "MTL"]
        if stl.empty or mtl.empty:
            continue
        rows.append({"task": task, "stl_runs": len(stl), "mtl_runs": len(mtl),
                     "stl_overfit": int(stl["overfit"].sum()), "mtl_overfit": int(mtl["overfit"].sum()),
                     "stl_best_epoch": stl["best_epoch"].mean(), "mtl_best_epoch": mtl["best_epoch"].mean(),
                     "p_best_epoch": welch(stl["best_epoch"], mtl["best_epoch"]),
                     "stl_onset": stl["onset"].astype(float).mean(), "mtl_onset": mtl["onset"].astype(float).mean(),
                     "stl_min_loss": stl["min_loss"].mean(), "mtl_min_loss": mtl["min_loss"].mean(),
                     "p_min_loss": welch(stl["min_loss"], mtl["min_loss"])})
    return pd.DataFrame(rows, columns=columns)


# ---- the paper's comparison: recipes over seeds and test samples ----------------------------------
def per_sample_scores(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per (trial, sample) scores: OC correctness and absolute error, ML label accuracy and
    counts. A head a trial does not have gives NaN, never a wrong answer."""
    out = predictions[["trial_id", "sample_id"]].copy()
    if {"acuity_true", "acuity_pred"} <= set(predictions):
        true, pred = predictions["acuity_true"].astype(float), predictions["acuity_pred"].astype(float)
        out["oc_correct"] = (true == pred).astype(float).where(pred.notna() & true.notna())
        out["oc_abs_error"] = (true - pred).abs()
    true_cols = [c for c in predictions if c.startswith("true_")]
    if true_cols:
        true = predictions[true_cols].to_numpy(float)
        pred = predictions[[c.replace("true_", "pred_") for c in true_cols]].to_numpy(float)
        has = ~(np.isnan(true).any(axis=1) | np.isnan(pred).any(axis=1))
        for name, value in (("ml_label_accuracy", (true == pred).mean(axis=1)),
                            ("ml_tp", ((true == 1) & (pred == 1)).sum(axis=1)),
                            ("ml_fp", ((true == 0) & (pred == 1)).sum(axis=1)),
                            ("ml_fn", ((true == 1) & (pred == 0)).sum(axis=1))):
            out[name] = np.where(has, value.astype(float), np.nan)
    return out


def _mean_of(column):
    return lambda sums, n: sums[column] / n


def _bleu(k):
    return lambda sums, n: corpus_bleu(sums)[k - 1]


# metric: (task, better, per-sample columns, statistic of summed columns and resample size)
RECIPE_METRICS = {
    **{f"bleu{k}": ("text", "max", list(BLEU_STATS), _bleu(k)) for k in range(1, 5)},
    "rouge_l": ("text", "max", ["rouge_l"], _mean_of("rouge_l")),
    "bertscore_f1": ("text", "max", ["bertscore_f1"], _mean_of("bertscore_f1")),
    "cider": ("text", "max", ["cider"], _mean_of("cider")),
    "oc_accuracy": ("oc", "max", ["oc_correct"], _mean_of("oc_correct")),
    "oc_mae": ("oc", "min", ["oc_abs_error"], _mean_of("oc_abs_error")),
    "ml_label_accuracy": ("ml", "max", ["ml_label_accuracy"], _mean_of("ml_label_accuracy")),
    "ml_f1": ("ml", "max", ["ml_tp", "ml_fp", "ml_fn"],
              lambda s, n: 2 * s["ml_tp"] / np.maximum(2 * s["ml_tp"] + s["ml_fp"] + s["ml_fn"], 1e-12)),
}


def _components(scores: pd.DataFrame, trial_ids, columns, samples) -> dict | None:
    """(models, samples) arrays of ``columns`` for the trials that have them on every sample."""
    have = []
    for tid in trial_ids:
        part = scores[scores["trial_id"] == tid].set_index("sample_id").reindex(samples)
        if all(c in part for c in columns) and part[columns].notna().all().all():
            have.append(part)
    if not have:
        return None
    return {c: np.stack([p[c].to_numpy(float) for p in have]) for c in columns}


def compare_to_baseline(trials: pd.DataFrame, predictions: pd.DataFrame, *, baseline: str,
                        group_col: str = "param_config", metrics: list[str] | None = None,
                        n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Every group of named configurations against ``baseline`` on every test metric both have,
    as recipes: trained with several seeds and scored on the same test samples.

    A group is a config name plus the names that extend it with ``-`` (``STL`` = ``STL-text``,
    ``STL-oc``, ``STL-ml``), so a metric's baseline value comes from the baseline configuration
    that has that task, and a missing head is missing, never a zero. Each row: both means, the
    difference (group - baseline, in the metric's units), its hierarchical bootstrap interval and
    p-value (:func:`study.significance.compare_recipes`), the seed-level Welch p where each side
    has three seeds or more, Holm's adjusted p over the whole table, and a verdict.
    """
    from .space import group_of

    done = finished(trials)
    done = done[done[group_col].notna()]
    groups = done[group_col].astype(str).map(lambda name: group_of(name, baseline))
    scores = per_sample_scores(predictions)
    scores = scores.merge(predictions[[c for c in predictions if c not in scores or c in ("trial_id", "sample_id")]],
                          on=["trial_id", "sample_id"], how="left")
    samples = sorted(set(scores["sample_id"]))
    rows = []
    for metric in metrics or list(RECIPE_METRICS):
        task, better, columns, statistic = RECIPE_METRICS[metric]
        base = _components(scores, done.loc[groups == baseline, "trial_id"], columns, samples)
        if base is None:
            continue
        for group in dict.fromkeys(groups):
            if group == baseline:
                continue
            other = _components(scores, done.loc[groups == group, "trial_id"], columns, samples)
            if other is None:
                continue
            r = compare_recipes(other, base, statistic, n_boot=n_boot, seed=seed)
            rows.append({"task": task, "metric": metric, "better": better, "group": group,
                         "baseline": baseline, "group_mean": r.mean_a, "baseline_mean": r.mean_b,
                         "diff": r.diff, "ci_low": r.ci_low, "ci_high": r.ci_high, "p": r.p_value,
                         "p_seed": r.p_seed, "seeds": r.seeds_a, "baseline_seeds": r.seeds_b,
                         "samples": len(samples)})
    columns = ["task", "metric", "better", "group", "baseline", "group_mean", "baseline_mean", "diff",
               "ci_low", "ci_high", "p", "p_holm", "p_seed", "seeds", "baseline_seeds", "samples", "verdict"]
    table = pd.DataFrame(rows, columns=[c for c in columns if c not in ("p_holm", "verdict")])
    table["p_holm"] = holm(table["p"]) if len(table) else []
    table["verdict"] = [verdict(r.diff, r.p_holm, r.better) for r in table.itertuples()]
    return table[columns]


def verdict(diff: float, p_holm: float, better: str, alpha: float = 0.05) -> str:
    """``better``/``worse`` than the baseline when Holm's p is below ``alpha``, else ``no
    significant difference`` (a difference within the noise of seeds and samples)."""
    if not p_holm < alpha:
        return "no significant difference"
    return "better" if (diff > 0) == (better == "max") else "worse"


# ---- parameter importance -----------------------------------------------------------------------
def parameter_importance(trials: pd.DataFrame, space, *, seed: int = 0) -> pd.DataFrame:
    """Optuna's fANOVA importance of each searched parameter for each objective (long table).

    Built from the trial table alone: each finished trial becomes an Optuna ``FrozenTrial``
    with the search space's distributions for the parameters it was given. In a conditional
    space (:mod:`study.space`) Optuna ranks the parameters every trial has (``weighting``, not
    the static trials' a, b, c). Needs at least two trials with varied parameters.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = space.distributions()
    done = finished(trials)
    rows = []
    for metric, mode in zip(space.metrics, space.modes):
        if metric not in done:
            continue
        study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
        for _, t in done.iterrows():
            params = {k: t.get(f"param_{k}") for k in dists}
            params = {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()
                      if not (v is None or (isinstance(v, float) and np.isnan(v)))}
            if pd.isna(t[metric]) or not params:
                continue
            study.add_trial(optuna.trial.create_trial(params=params, value=float(t[metric]),
                                                      distributions={k: dists[k] for k in params}))
        if len(study.trials) < 2:
            continue
        try:
            importance = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed))
        except (RuntimeError, ValueError):  # e.g. every trial identical
            continue
        rows += [{"objective": metric, "param": k, "importance": v} for k, v in importance.items()]
    return pd.DataFrame(rows, columns=["objective", "param", "importance"])


def study_objectives(experiment_dir: str | Path) -> dict[str, str]:
    """Objectives and directions recorded in ``study.json``."""
    record = json.loads((Path(experiment_dir) / "study.json").read_text())
    return {o["metric"]: o["mode"] for o in record["search_space"]["objectives"]}
