"""Configurations over their seeds: means and intervals per configuration, the front of the means
and each configuration's probability of being on it (a bootstrap over seeds).

A *trial* is one trained model (a configuration and a seed); a *configuration* is what the sampler
proposed, trained ``repeats`` times. Answers are given per configuration, over its seeds: one seed
is an anecdote.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from study.evaluation.names import NATURAL_RANGES, bare_metric
from study.results.files import write_parquet_atomic
from study.results.layout import CONFIGS, STUDY, TRIALS

from .fronts import finished, pareto_mask, with_pareto_column


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
    over its finished seeds (``<metric>_mean``, ``_std``, ``_ci_low``, ``_ci_high``), clipped to
    the metric's range (:func:`clip_to_range`); one seed gives no interval.
    ``status`` is ``TERMINATED`` when at least one repeat finished. ``finished_at`` is when its
    last trial ended (the order in which the search completed configurations)."""
    if trials.empty:
        return pd.DataFrame(columns=["config_id", "status", "repeats", "repeats_finished"])
    trials = trials.assign(config_id=config_key(trials))
    params = [c for c in trials if c.startswith(("param_", "setting_"))]
    metrics = metric_columns(trials)
    # one grouping for the whole table (a loop over configurations costs seconds at a thousand)
    groups = trials.groupby("config_id", sort=False)
    first = groups.head(1).set_index("config_id")
    out = pd.DataFrame({"config_id": first.index})
    done = finished(trials)
    n_done = done.groupby("config_id", sort=False).size().reindex(first.index, fill_value=0).to_numpy()
    last_status = groups.tail(1).set_index("config_id")["status"].reindex(first.index).to_numpy()
    out["status"] = np.where(n_done > 0, "TERMINATED", last_status)
    out["repeats"] = groups.size().reindex(first.index).to_numpy()
    out["repeats_finished"] = n_done
    out["finished_at"] = (groups["finished_at"].max().reindex(first.index).to_numpy()
                          if "finished_at" in trials else np.nan)
    for p in params:
        out[p] = first[p].to_numpy()
    if metrics:
        by = done.groupby("config_id", sort=False)[metrics]
        n = by.count().reindex(first.index)
        mean, sd = by.mean().reindex(first.index), by.std(ddof=1).reindex(first.index)
        half = _t_quantile(n.to_numpy(float), confidence) * sd / np.sqrt(n)
        columns = {}
        for m in metrics:
            few = (n[m] < 2).to_numpy()  # one seed: no spread, no interval
            low, high = clip_to_range(m, (mean[m] - half[m]).to_numpy(), (mean[m] + half[m]).to_numpy())
            columns[f"{m}_mean"] = mean[m].to_numpy()
            columns[f"{m}_std"] = np.where(few, np.nan, sd[m].to_numpy())
            columns[f"{m}_ci_low"], columns[f"{m}_ci_high"] = np.where(few, np.nan, low), np.where(few, np.nan, high)
        out = pd.concat([out, pd.DataFrame(columns, index=out.index)], axis=1)  # one block, not 200 inserts
    return out


def _t_quantile(n: np.ndarray, confidence: float) -> np.ndarray:
    """Student-t quantile for a two-sided ``confidence`` interval of a mean of ``n`` values (NaN below 2)."""
    from scipy.special import stdtrit  # t.ppf without scipy.stats: its import is 1.5 s of every study's end

    with np.errstate(invalid="ignore"):
        return np.where(n >= 2, stdtrit(np.maximum(n - 1, 1), 0.5 + confidence / 2), np.nan)


def clip_to_range(metric: str, low, high):
    """An interval's ends (numbers or arrays) clipped to the range the metric can take
    (``NATURAL_RANGES``): a Student-t interval from few seeds can reach past 1 for an F1 or below
    0 for an accuracy, which no model can score. A metric without a known range is left as it is."""
    bare = bare_metric(metric)
    if bare not in NATURAL_RANGES:
        return low, high
    lo, hi = sorted(NATURAL_RANGES[bare])
    return np.clip(low, lo, None), np.clip(high, None, hi)


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


def bootstrap_means(values: dict[str, np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(C, B, k)``: for each configuration of ``values`` (:func:`_seed_values`, in its order)
    ``B = n_boot`` means of its seeds resampled with replacement (a bootstrap over seeds)."""
    return np.stack([v[rng.integers(0, len(v), (n_boot, len(v)))].mean(axis=1) for v in values.values()])


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
    means = bootstrap_means(values, n_boot, rng)  # (C, B, k)
    hits = np.zeros(len(ids))
    for b in range(n_boot):
        hits += pareto_mask(means[:, b, :], directions)
    out = pd.Series(0.0, index=pd.Index(config_key(trials).unique(), name="config_id"), name="p_pareto")
    out[ids] = hits / n_boot
    return out


def configs_with_front(trials: pd.DataFrame, objectives: dict[str, str], *, n_boot: int = 1000,
                       seed: int = 0) -> pd.DataFrame:
    """:func:`config_table` plus ``pareto`` (its mean is on the front of the configuration means)
    and ``p_pareto`` (:func:`pareto_probability`; empty for a configuration with one seed)."""
    configs = config_table(trials)
    if configs.empty or not all(f"{m}_mean" in configs for m in objectives):
        return configs
    configs = with_pareto_column(configs, mean_objectives(objectives))
    p = pareto_probability(trials, objectives, n_boot=n_boot, seed=seed)
    # one seed resamples to itself: its place on the front is no evidence, so no probability
    configs["p_pareto"] = configs["config_id"].map(p).fillna(0.0).where(configs["repeats_finished"] >= 2)
    return configs


def study_objectives(experiment_dir: str | Path) -> dict[str, str]:
    """Objectives and directions recorded in ``study.json``."""
    record = json.loads((Path(experiment_dir) / STUDY).read_text())
    return {o["metric"]: o["mode"] for o in record["search_space"]["objectives"]}


def write_front(experiment_dir: str | Path, trials: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    """Write ``configs.parquet`` (:func:`configs_with_front`) and the ``pareto`` column of
    ``trials.parquet`` (its configuration is on the front of the means); return the configurations."""
    experiment_dir = Path(experiment_dir)
    configs = (configs_with_front(trials, objectives) if len(trials) and all(m in trials for m in objectives)
               else config_table(trials))
    on_front = configs.loc[configs["pareto"], "config_id"] if "pareto" in configs else []
    write_parquet_atomic(experiment_dir / CONFIGS, configs)
    write_parquet_atomic(experiment_dir / TRIALS, trials.assign(pareto=config_key(trials).isin(on_front))
                         if len(trials) else trials)
    return configs
