"""5. Search efficiency: hypervolume against trials and against wall time for random search,
multi-objective TPE, Gaussian-process BO (Optuna's GPSampler), NSGA-II and NSGA-III, each with and
without MO-ASHA early stopping, 3 seeds each.

    python -m benchmarks.search [--quick]

Real trials cost about 8 s here even when short, and 5 samplers x 2 schedulers x 3 seeds x 32
trials would be ~1,000 trainings, so the samplers search a *surrogate* of the real objective,
the practice of surrogate benchmarks (HPOBench, YAHPO Gym):

1. ``N_REAL`` settings of the default study's space (``search_spaces/weights.yaml``: loss weights
   on the simplex, heads, warmup, schedule) are drawn with a scrambled Sobol sequence (Optuna's
   ``QMCSampler``) and really trained (``EPOCHS`` epochs, the default model) on the synthetic
   cohort; their learning curves and the measured seconds per epoch are kept.
2. The objectives are the three tasks' validation losses (minimised): the quantities the loss
   weights trade off directly, and what MO-ASHA ranks trials by after each epoch. The study's
   metric objectives (ROUGE-L, OC accuracy, ML F1) are too noisy at this cohort size for a
   surrogate fitted on a few trials (leave-one-out R^2 < 0 on the default sweep).
3. One Gaussian process per objective and epoch (scikit-learn: Matern 5/2 with one length scale
   per input, plus a noise term) is fitted, so a simulated trial has a whole learning curve; the
   final epoch's leave-one-out R^2 is reported, so you can judge how far the comparison speaks
   for the real problem.
4. Each sampler searches the surrogate in an event simulation of the study itself: ``WORKERS``
   trials at once, each epoch taking the measured seconds, Optuna asking and telling
   asynchronously, for the wall time that 32 trials take without early stopping; with MO-ASHA
   (:class:`study.moasha.MultiObjectiveASHA`, the study's settings) a stopped trial frees its
   worker at once, is told to the sampler as pruned, and the time saved goes to more trials.
   TPE as the default space sets it (multivariate, 5 random start-up trials), GPSampler with its
   defaults (10 start-up trials; with 5 it reached less and varied more between seeds, see the
   README), NSGA-II and NSGA-III with a population of 8 (Optuna's default of 50 would leave them
   random for all 32 trials), random search.

Hypervolume is of the finished trials' final losses, with bounds fixed from the real trials
(worst and best observed loss per task) and the reference point 10 % beyond the worst, the same
for every run. Hypervolume at equal wall time, and the time to a target (95 % of the mean final
hypervolume without early stopping), answer whether MO-ASHA gets there sooner.
"""
from __future__ import annotations

import heapq
import math
import statistics
import warnings
from dataclasses import replace

import numpy as np

from .common import Finding, Outcome, cli

FULL = {"n_real": 16, "epochs": 4, "trials": 32, "seeds": (0, 1, 2)}
QUICK = {"n_real": 4, "epochs": 2, "trials": 6, "seeds": (0,)}
WORKERS = 2  # trials at once, as the study runs them on this machine
SCHEDULES = ("constant", "linear", "cosine", "inverse_sqrt")
OBJECTIVES = ("val_loss_text", "val_loss_oc", "val_loss_ml")  # all minimised
SAMPLERS = {"random": {}, "tpe": {"n_startup_trials": 5, "multivariate": True}, "gp": {},
            "nsga2": {"population_size": 8}, "nsga3": {"population_size": 8}}
TARGET_SHARE = 0.95  # of the mean final hypervolume without early stopping


def features(settings: dict) -> np.ndarray:
    """Surrogate inputs: loss weights a, b, c, heads, warmup, schedule one-hot. (c = 1 - a - b,
    but as an input of its own a task's weight gets its own length scale: measured, the ML loss
    is predicted far better, leave-one-out R^2 0.68 vs -0.18 from a and b alone.)"""
    onehot = [float(settings["schedule"] == s) for s in SCHEDULES]
    return np.array([settings["alpha"], settings["beta"], settings["gamma"], settings["num_heads"] / 6.0,
                     settings["warmup_fraction"], *onehot])


def real_trials(space, dataset, n: int, epochs: int, seed: int = 0) -> list[dict]:
    """Train ``n`` Sobol-drawn settings; return each one's settings, learning curve (epochs,
    objectives) of validation losses and seconds per epoch."""
    import optuna

    from model.train import Trainer
    from study.spec.settings import build_configs

    with warnings.catch_warnings():  # QMCSampler is marked experimental; its interface is all we use
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sobol = optuna.create_study(sampler=optuna.samplers.QMCSampler(seed=seed, scramble=True))
    rows = []
    for i in range(n):
        trial = sobol.ask(space.distributions())
        settings, _ = space.materialize(trial.params)
        settings.update(epochs=epochs, patience=epochs)
        model_cfg, train_cfg, _ = build_configs(settings, dataset, seed + i)
        history = Trainer(model_cfg, train_cfg, dataset).fit().history
        sobol.tell(trial, 0.0)
        curve = [[h[k] for k in OBJECTIVES] for h in history]
        rows.append({"settings": settings, "curve": curve, "values": curve[-1],
                     "epoch_seconds": float(np.mean([h["seconds"] for h in history]))})
        print(f"  real trial {i + 1}/{n}: a={settings['alpha']:.2f} b={settings['beta']:.2f} "
              f"c={settings['gamma']:.2f} -> " + ", ".join(f"{k} {v:.3f}" for k, v in zip(OBJECTIVES, curve[-1])),
              flush=True)
    return rows


def fit_surrogate(rows: list[dict]):
    """One GP per objective and epoch; returns ``(predict(settings) -> curve (epochs, objectives),
    leave-one-out R^2 per objective at the last epoch)``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
    from sklearn.model_selection import LeaveOneOut, cross_val_predict

    x = np.stack([features(r["settings"]) for r in rows])
    y = np.array([r["curve"] for r in rows])                                 # (trials, epochs, objectives)

    def gp():
        kernel = ConstantKernel() * Matern(length_scale=np.ones(x.shape[1]), nu=2.5) + WhiteKernel(1e-2)
        return GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=2, random_state=0)

    models, r2 = [], []
    with warnings.catch_warnings():  # length scales at their bounds: an input that does not matter
        warnings.simplefilter("ignore", ConvergenceWarning)
        for j in range(y.shape[2]):
            final = y[:, -1, j]
            loo = cross_val_predict(gp(), x, final, cv=LeaveOneOut())
            ss = ((final - final.mean()) ** 2).sum()
            r2.append(float(1 - ((final - loo) ** 2).sum() / ss) if ss > 0 else float("nan"))
        models = [[gp().fit(x, y[:, e, j]) for j in range(y.shape[2])] for e in range(y.shape[1])]

    def predict(settings: dict) -> np.ndarray:
        f = features(settings)[None]
        return np.array([[max(0.0, float(m.predict(f)[0])) for m in per_epoch] for per_epoch in models])

    return predict, r2


def simulate(space, sampler_name: str, seed: int, predict, bounds, *, epochs: int, epoch_seconds: float,
             seconds: float, asha: bool, workers: int = WORKERS) -> list[dict]:
    """One search of the surrogate as the study would run it for ``seconds`` of wall time:
    ``workers`` trials at once, each epoch taking ``epoch_seconds``, a freed worker starting the
    next trial at once, with or without MO-ASHA; ``predict(settings)`` gives the trial's learning
    curve (``epochs``, objectives). Returns one point per trial that ended (finished or stopped)
    within the time: ``trials`` ended so far, simulated ``seconds``, ``hypervolume`` of the
    finished trials' final losses (``bounds`` (k, 2): worst and best per objective), and whether
    this one ``finished`` (or was stopped)."""
    import optuna
    from ray.tune.schedulers import TrialScheduler

    from study.analysis.hypervolume import hypervolume
    from study.results.layout import VAL_LOSSES as LOSSES
    from study.sweep.moasha import MultiObjectiveASHA

    sampler = replace(space, sampler_name=sampler_name, sampler_options=SAMPLERS[sampler_name]).sampler(seed)
    study = optuna.create_study(directions=["minimize"] * len(bounds), sampler=sampler)
    scheduler = MultiObjectiveASHA(max_t=epochs, grace_period=max(1, epochs // 4)) if asha else None
    events, finished, points, started, clock = [], [], [], 0, 0.0

    class _Trial:  # what the scheduler reads of a Tune trial
        def __init__(self, number):
            self.trial_id = str(number)

    def end(trial, values=None):
        study.tell(trial, values, state=None if values is not None else optuna.trial.TrialState.PRUNED)
        if values is not None:
            finished.append(values)
        hv = hypervolume(np.array(finished), ["min"] * len(bounds), bounds=bounds) if finished else 0.0
        points.append({"trials": len(points) + 1, "seconds": clock, "hypervolume": hv, "finished": values is not None})

    while True:
        while len(events) < workers and clock < seconds:
            trial = study.ask()
            space.suggest(trial)
            curve = predict(space.materialize(trial.params)[0])
            heapq.heappush(events, (clock + epoch_seconds, started, 1, trial, curve))
            started += 1
        if not events or events[0][0] > seconds + 1e-9:
            return points  # out of time: what is still running does not count
        clock, order, epoch, trial, curve = heapq.heappop(events)
        if epoch == epochs:
            end(trial, curve[-1].tolist())
            continue
        if scheduler is not None:
            report = {"epoch": epoch, "evaluated": False, **dict(zip(LOSSES, curve[epoch - 1]))}
            if scheduler.on_trial_result(None, _Trial(trial.number), report) == TrialScheduler.STOP:
                end(trial)
                continue
        heapq.heappush(events, (clock + epoch_seconds, order, epoch + 1, trial, curve))


def hypervolume_at(points: list[dict], seconds: float) -> float:
    """Hypervolume reached by ``seconds`` of simulated wall time."""
    return max([p["hypervolume"] for p in points if p["seconds"] <= seconds + 1e-9], default=0.0)


def time_to(points: list[dict], target: float) -> float:
    """Simulated seconds until the hypervolume first reached ``target`` (inf if never)."""
    return next((p["seconds"] for p in points if p["hypervolume"] >= target), math.inf)


def run(ws) -> Outcome:
    import optuna

    from search_spaces import resolve
    from study.spec.space_file import load_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    size = QUICK if ws.quick else FULL
    space = load_space(resolve("weights"))
    print(f"training {size['n_real']} Sobol-drawn settings ({size['epochs']} epochs each) for the surrogate ...")
    rows = real_trials(space, ws.dataset(), size["n_real"], size["epochs"])
    predict, r2 = fit_surrogate(rows)
    epoch_seconds = float(np.mean([r["epoch_seconds"] for r in rows]))
    print("surrogate leave-one-out R^2 (last epoch): " + ", ".join(f"{m} {v:.2f}" for m, v in zip(OBJECTIVES, r2))
          + f"; {epoch_seconds:.2f} s per epoch")
    real = np.array([r["values"] for r in rows])
    bounds = np.stack([real.max(0), real.min(0)], axis=1)  # (worst, best) per objective
    budget = size["trials"] * size["epochs"] * epoch_seconds / WORKERS  # what the plain search needs
    runs = {}
    for name in SAMPLERS:
        for asha in (False, True):
            key = f"{name}{' + MO-ASHA' if asha else ''}"
            runs[key] = {seed: simulate(space, name, seed, predict, bounds, epochs=size["epochs"],
                                        epoch_seconds=epoch_seconds, seconds=budget, asha=asha)
                         for seed in size["seeds"]}
            print(f"  {key:18s} done", flush=True)
    plain_final = [pts[-1]["hypervolume"] for key, by_seed in runs.items() if "ASHA" not in key
                   for pts in by_seed.values()]
    target = TARGET_SHARE * statistics.mean(plain_final)
    table = {}
    for key, by_seed in runs.items():
        at_end = [hypervolume_at(pts, budget) for pts in by_seed.values()]
        times = [time_to(pts, target) for pts in by_seed.values()]
        table[key] = {"hv_end": statistics.mean(at_end), "hv_end_sd": statistics.pstdev(at_end),
                      "hv_half": statistics.mean(hypervolume_at(pts, budget / 2) for pts in by_seed.values()),
                      "trials": statistics.mean(len(pts) for pts in by_seed.values()),
                      "finished": statistics.mean(sum(p["finished"] for p in pts) for pts in by_seed.values()),
                      "time_to_target_s": statistics.mean(times) if all(map(math.isfinite, times)) else math.inf,
                      "reached": sum(map(math.isfinite, times))}
    n = len(size["seeds"])
    print(f"\nwall-time budget {budget / 60:.1f} min (what {size['trials']} trials of {size['epochs']} epochs take "
          f"{WORKERS} at once); target hypervolume {target:.4f} ({TARGET_SHARE:.0%} of the mean final without "
          f"early stopping); {n} seed(s):")
    for key, row in table.items():
        reach = (f"{row['time_to_target_s'] / 60:.1f} min" if math.isfinite(row["time_to_target_s"]) else
                 f"reached by {row['reached']} of {n} seeds")
        print(f"  {key:18s} trials {row['trials']:5.1f} ({row['finished']:.1f} finished)  HV at half time {row['hv_half']:.4f}  at the end "
              f"{row['hv_end']:.4f} (sd {row['hv_end_sd']:.4f})  to target: {reach}")
    findings = [Finding("5 Search", f"hypervolume in equal wall time: {key} vs random", row["hv_end"],
                        table["random"]["hv_end"], "HV", row["hv_end"] / table["random"]["hv_end"])
                for key, row in table.items() if key != "random" and "ASHA" not in key]
    findings += [Finding("5 Search", f"hypervolume in equal wall time: {name} + MO-ASHA vs {name}",
                         table[f"{name} + MO-ASHA"]["hv_end"], table[name]["hv_end"], "HV",
                         table[f"{name} + MO-ASHA"]["hv_end"] / table[name]["hv_end"], (">=", 1.0))
                 for name in SAMPLERS]
    details = {"objectives": list(OBJECTIVES), "real_trials": rows, "surrogate_loo_r2": dict(zip(OBJECTIVES, r2)),
               "bounds": bounds.tolist(), "epoch_seconds": epoch_seconds, "target_hypervolume": target,
               "seconds_budget": budget,
               "table": table, "curves": {k: {str(s): pts for s, pts in v.items()} for k, v in runs.items()},
               "sizes": size}
    return Outcome("search", findings, details)


def main(argv=None) -> Outcome:
    return cli("search", run, argv, __doc__)


if __name__ == "__main__":
    main()
