"""5. Search efficiency: hypervolume reached by multi-objective TPE and NSGA-II after 16 and 32
trials vs random search after twice as many, 3 seeds each.

    python -m benchmarks.search [--quick]

Real trials cost about 8 s here even when short, and the comparison needs up to 3 samplers x
3 seeds x 64 trials (~380 trainings, most of an hour), so the samplers search a *surrogate* of
the real objective, the practice of surrogate benchmarks (HPOBench, YAHPO Gym):

1. ``N_REAL`` settings of the default study's space (``search_spaces/weights.yaml``: loss weights
   on the simplex, heads, warmup, schedule) are drawn with a scrambled Sobol sequence (Optuna's
   ``QMCSampler``) and really trained (``EPOCHS`` epochs, the default model) on the synthetic
   cohort.
2. The objectives are the three tasks' validation losses (minimised): the quantities the loss
   weights trade off directly. The study's metric objectives (ROUGE-L, OC accuracy, ML F1) are
   too noisy at this cohort size for a surrogate fitted on a few trials: on the default sweep's
   16 trials a Gaussian process predicts held-out ROUGE-L and OC accuracy worse than their mean
   (leave-one-out R^2 < 0).
3. One Gaussian process per objective (scikit-learn: Matern 5/2 with one length scale per input,
   plus a noise term) is fitted; its leave-one-out R^2 is reported, so you can judge how far the
   comparison speaks for the real problem.
4. Each sampler searches the surrogate's mean with seeds 0, 1, 2: TPE as the space file sets it
   (multivariate, 6 start-up trials), NSGA-II with a population of 8 (Optuna's default of 50
   would leave it random for all 32 trials), random search.

Hypervolume is computed with bounds fixed from the real trials (worst and best observed loss per
task) and the reference point 10 % beyond the worst, the same for every sampler and seed.
"""
from __future__ import annotations

import statistics
import warnings
from dataclasses import replace

import numpy as np

from .common import Finding, Outcome, cli

FULL = {"n_real": 16, "epochs": 4, "budgets": (16, 32), "seeds": (0, 1, 2)}
QUICK = {"n_real": 4, "epochs": 1, "budgets": (4, 8), "seeds": (0,)}
SCHEDULES = ("constant", "linear", "cosine", "inverse_sqrt")
OBJECTIVES = ("val_loss_text", "val_loss_oc", "val_loss_ml")  # all minimised
SAMPLERS = {"tpe": {}, "nsga2": {"population_size": 8}, "random": {}}


def features(settings: dict) -> np.ndarray:
    """Surrogate inputs: loss weights a, b, c, heads, warmup, schedule one-hot. (c = 1 - a - b,
    but as an input of its own a task's weight gets its own length scale: measured, the ML loss
    is predicted far better, leave-one-out R^2 0.68 vs -0.18 from a and b alone.)"""
    onehot = [float(settings["schedule"] == s) for s in SCHEDULES]
    return np.array([settings["alpha"], settings["beta"], settings["gamma"], settings["num_heads"] / 6.0,
                     settings["warmup_fraction"], *onehot])


def real_trials(space, dataset, n: int, epochs: int, seed: int = 0) -> list[dict]:
    """Train ``n`` Sobol-drawn settings; return each one's settings and final validation losses."""
    import optuna

    from model.train import Trainer
    from study.settings import build_configs

    with warnings.catch_warnings():  # QMCSampler is marked experimental; its interface is all we use
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sobol = optuna.create_study(sampler=optuna.samplers.QMCSampler(seed=seed, scramble=True))
    rows = []
    for i in range(n):
        trial = sobol.ask(space.distributions())
        settings, _ = space.materialize(trial.params)
        settings.update(epochs=epochs, patience=epochs)
        model_cfg, train_cfg, _ = build_configs(settings, dataset, seed + i)
        last = Trainer(model_cfg, train_cfg, dataset).fit().history[-1]
        sobol.tell(trial, 0.0)
        rows.append({"settings": settings, "values": [last[k] for k in OBJECTIVES]})
        print(f"  real trial {i + 1}/{n}: a={settings['alpha']:.2f} b={settings['beta']:.2f} "
              f"c={settings['gamma']:.2f} -> " + ", ".join(f"{k} {v:.3f}" for k, v in zip(OBJECTIVES, rows[-1]["values"])),
              flush=True)
    return rows


def fit_surrogate(rows: list[dict]):
    """One GP per objective; returns ``(predict(settings) -> values, leave-one-out R^2 per objective)``."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
    from sklearn.model_selection import LeaveOneOut, cross_val_predict

    x = np.stack([features(r["settings"]) for r in rows])
    y = np.array([r["values"] for r in rows])

    def gp():
        kernel = ConstantKernel() * Matern(length_scale=np.ones(x.shape[1]), nu=2.5) + WhiteKernel(1e-2)
        return GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=2, random_state=0)

    models, r2 = [], []
    with warnings.catch_warnings():  # length scales at their bounds: an input that does not matter
        warnings.simplefilter("ignore", ConvergenceWarning)
        for j in range(y.shape[1]):
            loo = cross_val_predict(gp(), x, y[:, j], cv=LeaveOneOut())
            ss = ((y[:, j] - y[:, j].mean()) ** 2).sum()
            r2.append(float(1 - ((y[:, j] - loo) ** 2).sum() / ss) if ss > 0 else float("nan"))
            models.append(gp().fit(x, y[:, j]))

    def predict(settings: dict) -> list[float]:
        f = features(settings)[None]
        return [max(0.0, float(m.predict(f)[0])) for m in models]  # a loss is never negative

    return predict, r2


def hypervolume_curve(space, sampler_name: str, seed: int, n_trials: int, predict, bounds) -> dict:
    """``{n: hypervolume after n trials}`` (every 4th) of one sampler minimising the surrogate.
    ``bounds`` (k, 2): worst and best value of each objective, fixed for every sampler."""
    import optuna

    from study.analysis import hypervolume

    sampler = replace(space, sampler_name=sampler_name,
                      sampler_options={**(space.sampler_options if sampler_name == space.sampler_name else {}),
                                       **SAMPLERS[sampler_name]}).sampler(seed)
    study = optuna.create_study(directions=["minimize"] * len(bounds), sampler=sampler)
    values, curve = [], {}
    for n in range(1, n_trials + 1):
        trial = study.ask(space.distributions())
        values.append(predict(space.materialize(trial.params)[0]))
        study.tell(trial, values[-1])
        if n % 4 == 0 or n == n_trials:
            curve[n] = hypervolume(np.array(values), ["min"] * len(bounds), bounds=bounds)
    return curve


def run(ws) -> Outcome:
    import optuna

    from search_spaces import resolve
    from study.space import load_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    size = QUICK if ws.quick else FULL
    space = load_space(resolve("weights"))
    print(f"training {size['n_real']} Sobol-drawn settings ({size['epochs']} epochs each) for the surrogate ...")
    rows = real_trials(space, ws.dataset(), size["n_real"], size["epochs"])
    predict, r2 = fit_surrogate(rows)
    print("surrogate leave-one-out R^2: " + ", ".join(f"{m} {v:.2f}" for m, v in zip(OBJECTIVES, r2)))
    real = np.array([r["values"] for r in rows])
    bounds = np.stack([real.max(0), real.min(0)], axis=1)  # (worst, best) per objective
    small, large = size["budgets"]
    curves = {name: {seed: hypervolume_curve(space, name, seed, 2 * large if name == "random" else large,
                                             predict, bounds)
                     for seed in size["seeds"]} for name in SAMPLERS}

    def at(name, n):
        return statistics.mean(curves[name][s][n] for s in size["seeds"])

    table = {name: {n: at(name, n) for n in ((small, large) if name != "random" else (large, 2 * large))}
             for name in SAMPLERS}
    for name, hv in table.items():
        print(f"  {name:7s} hypervolume " + ", ".join(f"after {n}: {v:.4f}" for n, v in hv.items())
              + f" (mean of {len(size['seeds'])} seeds)")
    random_best = table["random"][2 * large]
    findings = [Finding("5 Search", f"{name} after {large} trials vs random after {2 * large} (hypervolume)",
                        table[name][large], random_best, "HV", table[name][large] / random_best, (">=", 1.0))
                for name in ("tpe", "nsga2")]
    details = {"objectives": list(OBJECTIVES), "real_trials": rows, "surrogate_loo_r2": dict(zip(OBJECTIVES, r2)),
               "bounds": bounds.tolist(),
               "hypervolume": {k: {str(n): v for n, v in hv.items()} for k, hv in table.items()},
               "curves": {k: {str(s): {str(n): hv for n, hv in c.items()} for s, c in v.items()}
                          for k, v in curves.items()},
               "sizes": size}
    return Outcome("search", findings, details)


def main(argv=None) -> Outcome:
    return cli("search", run, argv, __doc__)


if __name__ == "__main__":
    main()
