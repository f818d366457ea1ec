"""Hypervolume of a front with fixed (natural) bounds, its bootstrap interval over seeds, and its
history in the order the search completed configurations."""
from __future__ import annotations

import numpy as np
import pandas as pd

from study.evaluation.names import NATURAL_RANGES, bare_metric

from .configs import _seed_values, config_table, mean_objectives
from .fronts import finished


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


def hypervolume_summary(trials: pd.DataFrame, objectives: dict[str, str], *, n_boot: int = 1000,
                        seed: int = 0, confidence: float = 0.95) -> dict:
    """Hypervolume of the configuration means with fixed bounds, and its bootstrap interval over
    seeds (each configuration's seeds resampled with replacement, as in :func:`pareto_probability`).
    With one seed per configuration there is nothing to resample: no interval (NaN), and ``seeds``
    says so."""
    values = _seed_values(trials, objectives)
    all_values = np.concatenate(list(values.values())) if values else np.empty((0, len(objectives)))
    bounds, sources = objective_bounds(objectives, all_values)
    out = {"bounds": {m: list(b) for m, b in zip(objectives, bounds.tolist())},
           "bound_sources": dict(zip(objectives, sources)), "reference": "worst bound"}
    if not values:
        return {**out, "hypervolume": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n_boot": 0}
    means = np.stack([v.mean(axis=0) for v in values.values()])
    seeds = max(len(v) for v in values.values())
    if seeds < 2:
        return {**out, "hypervolume": fixed_hypervolume(means, objectives, bounds), "ci_low": np.nan,
                "ci_high": np.nan, "n_boot": 0, "seeds": seeds}
    rng = np.random.default_rng(seed)
    boots = [fixed_hypervolume(np.stack([v[rng.integers(0, len(v), len(v))].mean(axis=0)
                                         for v in values.values()]), objectives, bounds)
             for _ in range(n_boot)]
    alpha = (1 - confidence) / 2
    return {**out, "hypervolume": fixed_hypervolume(means, objectives, bounds),
            "ci_low": float(np.quantile(boots, alpha)), "ci_high": float(np.quantile(boots, 1 - alpha)),
            "n_boot": n_boot, "seeds": seeds}


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
