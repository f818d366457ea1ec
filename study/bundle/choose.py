"""Which configuration to export and which of its seeds to predict with (no TensorFlow here).

A configuration is chosen by its ``config_id`` or by a rule over the front of configuration
means: ``best`` names an objective, and the configuration on the front with the best mean of
that objective is taken. Of its seeds, the default model is the one whose validation objectives
lie closest to the configuration's means (each objective in units of its spread over the seeds):
the most typical of the trained models, not the luckiest.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from study.analysis.configs import config_key, config_table, mean_objectives
from study.analysis.fronts import finished, with_pareto_column


class ChoiceError(ValueError):
    """The configuration or seed asked for is not in the study; the message names what is."""


def _listing(values, limit: int = 8) -> str:
    values = [str(v) for v in values]
    return ", ".join(values[:limit]) + (f" ... ({len(values)} in all)" if len(values) > limit else "")


def choose_config(trials: pd.DataFrame, objectives: dict[str, str], *, config_id: str | None = None,
                  best: str | None = None) -> str:
    """The ``config_id`` asked for (checked to have finished trials), or with ``best`` the
    configuration on the front of means with the best mean of that objective."""
    if (config_id is None) == (best is None):
        raise ChoiceError("give exactly one of config_id and best")
    done = finished(trials)
    ids = config_key(done).unique() if len(done) else []
    if config_id is not None:
        if config_id not in set(config_key(trials)):
            raise ChoiceError(f"--config-id {config_id!r}: no such configuration in the study; "
                              f"configurations with finished trials: {_listing(ids) or 'none'}")
        if config_id not in set(ids):
            raise ChoiceError(f"--config-id {config_id!r}: none of its trials finished; "
                              f"configurations with finished trials: {_listing(ids) or 'none'}")
        return config_id
    if best not in objectives:
        raise ChoiceError(f"--best {best!r}: not an objective of this study; allowed: {_listing(objectives)}")
    if not len(done):
        raise ChoiceError("--best: the study has no finished trial")
    configs = with_pareto_column(config_table(trials), mean_objectives(objectives))
    front = configs[configs["pareto"]]
    column = front[f"{best}_mean"]
    return str(front.loc[column.idxmax() if objectives[best] == "max" else column.idxmin(), "config_id"])


def typical_seed(seeds: pd.DataFrame, objectives: dict[str, str]) -> tuple[int, float]:
    """``(seed, distance)`` of the trial (one row per seed, objective columns) closest to the
    means, distance in units of each objective's standard deviation over the seeds."""
    values = seeds[list(objectives)].to_numpy(float)                      # (S, K)
    spread = np.nanstd(values, axis=0, ddof=1) if len(values) > 1 else np.ones(values.shape[1])
    spread = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
    distance = np.sqrt(np.nansum(((values - np.nanmean(values, axis=0)) / spread) ** 2, axis=1))
    i = int(np.argmin(distance))
    return int(seeds["seed"].iloc[i]), float(distance[i])


def check_seed(seed: int | None, available: list[int], default: int) -> int:
    """``seed`` if the bundle holds its model, ``default`` when not given."""
    if seed is None:
        return default
    if seed not in available:
        raise ChoiceError(f"--seed {seed}: the bundle holds the models of seeds {_listing(available)}")
    return seed
