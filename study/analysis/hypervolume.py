"""Hypervolume of a front with fixed (natural) bounds, its bootstrap interval over seeds, and its
history in the order the search completed configurations."""
from __future__ import annotations

import moocore
import numpy as np
import pandas as pd

from study.evaluation.names import NATURAL_RANGES, bare_metric

from .configs import _seed_values, bootstrap_means, config_table, mean_objectives
from .fronts import finished
from .parallel import map_draws


# ---- hypervolume --------------------------------------------------------------------------------
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
    # moocore (C): exact, and points that do not dominate the reference add nothing
    return float(moocore.hypervolume(norm, ref=np.full(norm.shape[1], reference))) if len(norm) else 0.0



def objective_bounds(objectives: dict[str, str], values: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """``(bounds, sources)``: per objective (worst, best), from :data:`NATURAL_RANGES` ("natural")
    or, for a metric without one, the observed range widened by 10 % on the worst side
    ("observed"; then hypervolumes of different studies are not comparable)."""
    bounds, sources = [], []
    for j, (metric, direction) in enumerate(objectives.items()):
        name = bare_metric(metric.removesuffix("_mean"))
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


def unit_hypervolume(norm: np.ndarray) -> float:
    """:func:`fixed_hypervolume` of rows already normalised by the bounds (:func:`normalise`: 0
    best, 1 worst, no missing values). Bootstraps normalise all their resamples once and call
    this thousands of times."""
    if not len(norm):
        return 0.0
    k = norm.shape[1]  # one indicator per number of objectives: its set-up is most of a small call
    indicator = _UNIT_INDICATORS.get(k) or _UNIT_INDICATORS.setdefault(k, moocore.Hypervolume(ref=np.ones(k)))
    return float(indicator(norm))


_UNIT_INDICATORS: dict[int, moocore.Hypervolume] = {}


def hypervolume_summary(trials: pd.DataFrame, objectives: dict[str, str], *, n_boot: int = 1000,
                        seed: int = 0, confidence: float = 0.95) -> dict:
    """Hypervolume of the configuration means with fixed bounds, and its bootstrap interval over
    seeds (each configuration's seeds resampled with replacement, as in :func:`pareto_probability`):
    the last step of :func:`hypervolume_history`, which is returned too (``history``), so the
    plot's last interval is the one reported. With one seed per configuration there is nothing
    to resample: no interval (NaN), and ``seeds`` says so."""
    values = _seed_values(trials, objectives)
    all_values = np.concatenate(list(values.values())) if values else np.empty((0, len(objectives)))
    bounds, sources = objective_bounds(objectives, all_values)
    out = {"bounds": {m: list(b) for m, b in zip(objectives, bounds.tolist())},
           "bound_sources": dict(zip(objectives, sources)), "reference": "worst bound",
           "seeds": max((len(v) for v in values.values()), default=0)}
    history = hypervolume_history(trials, objectives, bounds, n_boot=n_boot, seed=seed, confidence=confidence)
    out["history"] = history
    if history.empty:
        return {**out, "hypervolume": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n_boot": 0}
    last = history.iloc[-1]
    return {**out, "hypervolume": float(last["hypervolume"]), "ci_low": float(last["ci_low"]),
            "ci_high": float(last["ci_high"]), "n_boot": n_boot if np.isfinite(last["ci_low"]) else 0}


def _hypervolumes_along(draws: np.ndarray, masks: np.ndarray) -> list:
    """For each draw (C, k) of normalised configuration means, the hypervolume of the
    configurations of each row of ``masks`` (those completed by a step of the history)."""
    return [[unit_hypervolume(norm[mask]) for mask in masks] for norm in draws]


INTERVAL_STEPS = 40  # steps of the history that get an interval (evenly spaced, the last always)


def hypervolume_history(trials: pd.DataFrame, objectives: dict[str, str], bounds: np.ndarray | None = None,
                        *, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> pd.DataFrame:
    """Hypervolume of the configuration means after each configuration completed (in the order
    the search completed them), with fixed ``bounds`` (default :func:`objective_bounds`), so the
    curve is comparable along itself and with other studies. ``ci_low``/``ci_high``: its
    bootstrap interval over seeds at up to :data:`INTERVAL_STEPS` steps (evenly spaced, the last
    always), NaN elsewhere and wherever no configuration so far has two seeds. The bootstrap
    draws are shared by every step (common random numbers), so the band moves only with the
    configurations added."""
    configs = finished(config_table(trials))
    configs = configs.sort_values("finished_at", kind="stable") if "finished_at" in configs else configs
    cols = list(mean_objectives(objectives))
    columns = ["n_configs", "config_id", "hypervolume", "ci_low", "ci_high"]
    if configs.empty or not set(cols) <= set(configs):
        return pd.DataFrame(columns=columns)
    values = configs[cols].to_numpy(float)
    if bounds is None:
        bounds, _ = objective_bounds(objectives, values)
    ids = configs["config_id"].tolist()
    seeds = _seed_values(trials, objectives)
    seeds = {cid: seeds[cid] for cid in ids if cid in seeds}  # in completion order
    position = {cid: i for i, cid in enumerate(ids)}
    order = np.array([position[cid] for cid in seeds], int)  # where each resampled configuration completed
    boots = (normalise(bootstrap_means(seeds, n_boot, np.random.default_rng(seed)), list(objectives.values()),
                       bounds)[0]  # (C, B, k), normalised once
             if seeds and max(len(v) for v in seeds.values()) >= 2 else None)
    steps = sorted(set(np.linspace(0, len(ids) - 1, min(len(ids), INTERVAL_STEPS)).round().astype(int).tolist()))
    steps = [i for i in steps if (order <= i).any()] if boots is not None else []
    intervals = {}
    if steps:  # per draw, the hypervolume at every step: the draws over the machine's cores
        masks = np.array([order <= i for i in steps])                              # (S, C)
        draws = np.array(map_draws(_hypervolumes_along, boots.transpose(1, 0, 2), masks,
                                   seconds_each=len(steps) * 1e-4))             # (B, S)
        alpha = (1 - confidence) / 2
        intervals = dict(zip(steps, np.quantile(draws, [alpha, 1 - alpha], axis=0).T))
    rows = []
    for i, cid in enumerate(ids):
        low, high = intervals.get(i, (np.nan, np.nan))
        rows.append({"n_configs": i + 1, "config_id": cid, "ci_low": low, "ci_high": high,
                     "hypervolume": fixed_hypervolume(values[: i + 1], objectives, bounds)})
    return pd.DataFrame(rows, columns=columns)
