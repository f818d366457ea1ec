"""Parameter importance in the study's terms, by Optuna's two methods.

One point per configuration: its mean over seeds, which is what the sampler was told and what
``optuna.db`` holds. Two of Optuna's evaluators answer two questions, and both are reported:

- ``fanova`` (``FanovaImportanceEvaluator``, Optuna's default): which parameter explains the
  variance of the objective over all configurations (a random forest's functional ANOVA).
- ``ped-anova`` (``PedAnovaImportanceEvaluator``, what optuna-dashboard shows): which
  parameter's values differ most between the best configurations (the top 10 %) and all of
  them, with the target negated for an objective to maximise, as the dashboard does. With a
  few dozen configurations the top 10 % is a handful, and continuous parameters can rank
  high by chance; fANOVA is the steadier answer for small studies.

The one deliberate difference from the dashboard: the dashboard ranks the sampler's own
variables, ``loss_weights_u1`` and ``u2`` (stick-breaking, see :mod:`study.spec.space`), which
mean nothing to a reader; ``in_terms_of="study"`` (the default) ranks the loss weights a, b, c
instead. ``in_terms_of="sampler"`` ranks what the dashboard ranks, with the same numbers.
"""
from __future__ import annotations

import warnings

import numpy as np
import optuna
import pandas as pd

from .fronts import finished

TERMS = ("study", "sampler")
EVALUATORS = {"fanova": lambda n: optuna.importance.FanovaImportanceEvaluator(n_trees=fanova_trees(n), seed=0),
              "ped-anova": lambda n: optuna.importance.PedAnovaImportanceEvaluator()}
FANOVA_TREES, FANOVA_FULL_UP_TO = 64, 256  # Optuna's forest, up to this many configurations


def fanova_trees(n_configs: int) -> int:
    """Trees of the fANOVA forest for ``n_configs`` configurations: Optuna's 64 up to 256, then
    fewer (8 at least), so that its cost stays that of 256 configurations. Optuna's fANOVA is
    written in Python and its cost grows with the trees times the configurations: about a minute
    per objective for 64 trees on 1,000 configurations here."""
    if n_configs <= FANOVA_FULL_UP_TO:
        return FANOVA_TREES
    return max(8, FANOVA_TREES * FANOVA_FULL_UP_TO // n_configs)
WEIGHTS = (("a", "alpha"), ("b", "beta"), ("c", "gamma"))  # the paper's names, the settings' names


def importance_params(space, *, in_terms_of: str = "study") -> dict[str, tuple[str, object]]:
    """``{name: (config-table column, Optuna distribution)}`` of the parameters to rank."""
    if in_terms_of not in TERMS:
        raise ValueError(f"in_terms_of must be one of {TERMS}, got {in_terms_of!r}")
    simplex = {f"{n}_{u}" for n, s in space.params.items() if s["type"] == "simplex" for u in ("u1", "u2")}
    out = {key: (f"param_{key}", d) for key, d in space.distributions().items()
           if not (in_terms_of == "study" and key in simplex)}
    if in_terms_of == "study" and simplex:
        out.update({short: (f"param_{key}", optuna.distributions.FloatDistribution(0.0, 1.0))
                    for short, key in WEIGHTS})
    return out


def parameter_importance(configs: pd.DataFrame, space, *, in_terms_of: str = "study",
                         methods: tuple[str, ...] = tuple(EVALUATORS)) -> pd.DataFrame:
    """Importance of each parameter for each objective by each of ``methods`` (long table:
    method, objective, param, importance), from :func:`study.analysis.config_table`'s rows
    (see the module docs). In a conditional space
    Optuna ranks the parameters every configuration has (``weighting``, not the static ones'
    a, b, c). An objective with fewer than two configurations, or whose configurations all have
    the same parameters, gets no rows."""
    unknown = [m for m in methods if m not in EVALUATORS]
    if unknown:
        raise ValueError(f"methods must be among {tuple(EVALUATORS)}, got {unknown[0]!r}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    params = importance_params(space, in_terms_of=in_terms_of)
    done = finished(configs) if len(configs) else configs
    rows = []
    for metric, mode in zip(space.metrics, space.modes):
        column = f"{metric}_mean"
        if column not in done:
            continue
        study = optuna.create_study(direction="minimize")  # the target below is a loss
        sign = -1.0 if mode == "max" else 1.0
        for _, config in done.iterrows():
            drawn = {k: _plain(config.get(col)) for k, (col, _) in params.items()}
            drawn = {k: v for k, v in drawn.items() if v is not None}
            if not drawn or not np.isfinite(config[column]):
                continue
            study.add_trial(optuna.trial.create_trial(params=drawn, value=sign * float(config[column]),
                                                      distributions={k: params[k][1] for k in drawn}))
        if len(study.trials) < 2:
            continue
        for method in methods:
            with warnings.catch_warnings():  # PED-ANOVA's note that it ranks for low targets: it does
                warnings.simplefilter("ignore")
                try:
                    importance = optuna.importance.get_param_importances(study, evaluator=EVALUATORS[method](len(study.trials)))
                except (RuntimeError, ValueError):  # e.g. every configuration the same
                    continue
            rows += [{"method": method, "objective": metric, "param": k, "importance": v}
                     for k, v in importance.items()]
    return pd.DataFrame(rows, columns=["method", "objective", "param", "importance"])


def _plain(value):
    """A table cell as Optuna takes a parameter value; None when the configuration has none."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value
