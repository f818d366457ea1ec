"""Parameter importance: Optuna's fANOVA evaluator per objective, on the trial table."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .fronts import finished


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
