"""Search spaces: YAML files parsed and validated into Optuna distributions and trial settings.

Format (see ``search_spaces/*.yaml``)::

    description: what the space is for
    sampler: tpe            # tpe (multi-objective TPE) | gp | nsga2 | nsga3 | random | grid
    sampler_options: {}     # keyword arguments of the Optuna sampler (e.g. population_size)
    num_samples: 16         # configurations to try (``--num-samples`` overrides)
    repeats: 3              # seeds per configuration (``--repeats`` overrides; default 1)
    baseline: STL           # grid only: the group every other group is compared with
    objectives:             # one per task by default
      - {metric: val_rouge_l, mode: max}
    fixed: {epochs: 8}      # settings every trial shares
    params:                 # what the sampler searches
      loss_weights: {type: simplex, prioritise: text}
      num_heads: {type: categorical, choices: [1, 2, 3, 4, 6]}
      warmup_fraction: {type: float, low: 0.0, high: 0.3}
      learning_rate: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
    configs:                # grid only: named settings, one trial each
      - {name: MTL-EQ, alpha: 1, beta: 1, gamma: 1}

**Loss weights on the simplex.** ``type: simplex`` searches two uniform variables u1, u2 and maps
them by stick-breaking to a = 1 - sqrt(1 - u1), b = (1 - a) u2, c = 1 - a - b: the inverse CDF of
Beta(1, 2) for the first stick makes (a, b, c) uniform on the simplex a + b + c = 1.
``prioritise: text`` sorts them so that a >= b >= c (the paper's MTL-TP constraint), which is
uniform over that ordered region.

**Repeats.** Every configuration the sampler proposes (or every named configuration of a grid) is
trained ``repeats`` times with different seeds; the sampler is told the mean over those seeds.

**Conditional parameters.** A setting only one weighting strategy reads is sampled only when
the space chooses that strategy: with ``weighting`` among the params, ``loss_weights`` (and
``alpha``, ``beta``, ``gamma``) only in ``static`` trials, ``cagrad_c`` only in ``cagrad`` trials.
An adaptive method's trials then carry no inert a, b, c into the sampler, the parameter
importance or the simplex plot (Optuna's define-by-run: the strategy is drawn first). A param no
chosen strategy reads is refused.

**A budget per choice.** ``weighting: {type: categorical, choices: [...], budget: {static: 8,
pcgrad: 1, ...}}`` gives every choice its own number of configurations (``num_samples`` is their
sum); the choices take turns, and the sampler draws the other parameters. A choice with nothing
else to sample gets 1: more would train the same configuration again (raise ``repeats``).

**Groups and baseline.** In a grid of named configurations, a *group* is a name and every name
that extends it with ``-`` (``STL`` holds ``STL-text``, ``STL-oc``, ``STL-ml``). ``baseline``
names the group the others are compared with; a metric's baseline value comes from the baseline
configurations that have it (``rouge_l`` from ``STL-text``).
"""
from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from model.config import CLINICAL_INPUTS
from study.evaluation.names import task_of_metric

from .settings import LOSS_WEIGHTS, SETTING_KEYS, TASKS, build_configs, strategy_of_setting

DEFAULT_OBJECTIVES = [{"metric": "val_rouge_l", "mode": "max"},
                      {"metric": "val_oc_accuracy", "mode": "max"},
                      {"metric": "val_ml_f1", "mode": "max"}]

SAMPLERS = ("tpe", "gp", "nsga2", "nsga3", "random", "grid")

MAX_CHECKED_POINTS = 512  # corners checked jointly up to this many, else one parameter at a time


class SearchSpaceError(ValueError):
    """The search space file breaks a rule; the message names the file, the key and the value."""


def stick_breaking(u1: float, u2: float, prioritise: str | None = None) -> tuple[float, float, float]:
    """Stick-breaking map from the unit square to the simplex (uniform); see the module docs."""
    a = 1.0 - math.sqrt(1.0 - u1)
    b = (1.0 - a) * u2
    weights = (a, b, max(0.0, 1.0 - a - b))
    return tuple(sorted(weights, reverse=True)) if prioritise == "text" else weights


@dataclass
class SearchSpace:
    path: Path
    description: str
    sampler_name: str
    sampler_options: dict
    num_samples: int
    objectives: list
    fixed: dict
    params: dict
    configs: list = field(default_factory=list)
    repeats: int = 1
    baseline: str | None = None
    removed_tasks: tuple = ()   # tasks the cohort cannot train (see drop_tasks)
    cohort_fields: dict = field(default_factory=dict)  # what the cohort has (data.schema.fields_present)

    # ---- what Optuna/Tune need ----------------------------------------------------------------
    @property
    def metrics(self) -> list[str]:
        return [o["metric"] for o in self.objectives]

    @property
    def modes(self) -> list[str]:
        return [o["mode"] for o in self.objectives]

    def distributions(self) -> dict:
        if self.configs:
            return {"config": optuna.distributions.CategoricalDistribution([c["name"] for c in self.configs])}
        out = {}
        for name, spec in self.params.items():
            kind = spec["type"]
            if kind == "simplex":
                out[f"{name}_u1"] = optuna.distributions.FloatDistribution(0.0, 1.0)
                out[f"{name}_u2"] = optuna.distributions.FloatDistribution(0.0, 1.0)
            elif kind == "float":
                out[name] = optuna.distributions.FloatDistribution(
                    spec["low"], spec["high"], log=spec.get("log", False), step=spec.get("step"))
            elif kind == "int":
                out[name] = optuna.distributions.IntDistribution(
                    spec["low"], spec["high"], log=spec.get("log", False), step=spec.get("step", 1))
            else:
                out[name] = optuna.distributions.CategoricalDistribution(spec["choices"])
        return out

    def is_active(self, name: str, sampled: dict) -> bool:
        """Whether param ``name`` is sampled at a point whose values so far are ``sampled``: a
        strategy's own setting only when the space chose that strategy (see the module docs)."""
        owner = strategy_of_setting(name)
        return owner is None or "weighting" not in self.params or sampled.get("weighting") == owner

    def suggest(self, trial) -> None:
        """Define-by-run: draw this point's parameters on an Optuna ``trial`` (the weighting
        strategy first, then what it reads). Ray's ``OptunaSearch`` records what is drawn."""
        distributions = self.distributions()
        if self.configs:
            trial.suggest_categorical("config", distributions["config"].choices)
        for name in sorted(self.params, key=lambda n: n != "weighting"):
            if not self.is_active(name, trial.params):
                continue
            for key in ([f"{name}_u1", f"{name}_u2"] if self.params[name]["type"] == "simplex" else [name]):
                d = distributions[key]
                if isinstance(d, optuna.distributions.FloatDistribution):
                    trial.suggest_float(key, d.low, d.high, log=d.log, step=d.step)
                elif isinstance(d, optuna.distributions.IntDistribution):
                    trial.suggest_int(key, d.low, d.high, log=d.log, step=d.step)
                else:
                    trial.suggest_categorical(key, d.choices)
        _, record = self.materialize(trial.params)
        for short, key in (("a", "alpha"), ("b", "beta"), ("c", "gamma")):  # the weights as the paper names them
            if key in record and "loss_weights_u1" in trial.params:
                trial.set_user_attr(short, record[key])

    @property
    def budget(self) -> tuple[str, dict] | None:
        """``(param, {choice: configurations})`` for the param with a budget per choice, if any."""
        return next(((n, s["budget"]) for n, s in self.params.items() if "budget" in s), None)

    def enqueued(self) -> list[dict]:
        """With a budget per choice: one partial point per configuration, the choices taking
        turns (so a sweep stopped early has tried every choice), for Optuna's ``enqueue_trial``."""
        if self.budget is None:
            return []
        name, budget = self.budget
        left, points = dict(budget), []
        while any(left.values()):
            for choice in budget:
                if left[choice]:
                    points.append({name: choice})
                    left[choice] -= 1
        return points

    def sampler(self, seed: int):
        opts = dict(self.sampler_options)
        if self.sampler_name == "grid":
            grid = ({"config": [c["name"] for c in self.configs]} if self.configs else
                    {n: s["choices"] for n, s in self.params.items()})
            return optuna.samplers.GridSampler(grid, seed=seed)
        cls = {"tpe": optuna.samplers.TPESampler, "gp": optuna.samplers.GPSampler,
               "nsga2": optuna.samplers.NSGAIISampler, "nsga3": optuna.samplers.NSGAIIISampler,
               "random": optuna.samplers.RandomSampler}[self.sampler_name]
        with warnings.catch_warnings():  # e.g. TPE's ``group``, marked experimental: the space chose it
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return cls(seed=seed, **opts)

    def fix(self, settings: dict) -> None:
        """Fix settings for every trial (``--set``), checked as the file's ``fixed`` is. A setting
        the sampler searches or a named config sets cannot be fixed: that would silently change
        what the space means."""
        for key, value in settings.items():
            check_setting(self.path, "--set", key, value)
            varied = key in self.params or any(key in c for c in self.configs)
            if varied or (key in ("alpha", "beta", "gamma") and "loss_weights" in self.params):
                raise ValueError(f"{key}: the space varies it (params or configs), so it cannot be fixed")
            self.fixed[key] = value

    def drop_tasks(self, missing: dict[str, str], cohort: str) -> str | None:
        """Remove the tasks whose target the cohort lacks (``missing``: task -> field, e.g.
        ``{"oc": "acuity"}``) before anything runs: their objectives go, configurations (or
        ``tasks`` choices) that train only them are dropped, every other point trains the rest
        with the removed tasks' loss weights set to 0 and the others rescaled to sum 1 (so a, b, c
        stay on the simplex). Returns the one line that says so, or ``None`` when nothing changes;
        raises :class:`SearchSpaceError` when every objective or configuration needs them."""
        gone = {t: f for t, f in missing.items() if t in TASKS}
        if not gone:
            return None
        lost = [m for m in self.metrics if task_of_metric(m) in gone]
        needs = " and ".join(f"the {t} task (the cohort has no {f})" for t, f in gone.items())
        if len(lost) == len(self.objectives):
            fail(self.path, "objectives", f"every objective ({', '.join(lost)}) needs {needs}; {cohort} cannot "
                                          f"train it: choose a space with text or ml objectives")
        dropped = [c["name"] for c in self.configs if not self._trains({**self.fixed, **c}, gone)]
        if self.configs and len(dropped) == len(self.configs):
            fail(self.path, "configs", f"every configuration trains only {needs}; {cohort} cannot train it")
        if "tasks" in self.params:  # a searched choice of tasks keeps the choices that train something
            choices = []
            for choice in self.params["tasks"]["choices"]:
                kept = self._trains({"tasks": choice}, gone)
                if kept and kept not in choices:
                    choices.append(kept)
            if not choices:
                fail(self.path, "params.tasks", f"every choice trains only {needs}; {cohort} cannot train it")
            self.params["tasks"]["choices"] = choices
        self.objectives = [o for o in self.objectives if o["metric"] not in lost]
        self.configs = [c for c in self.configs if c["name"] not in dropped]
        self.removed_tasks = tuple(gone)
        return (f"{cohort} has no {', '.join(gone.values())}: task {', '.join(gone)} removed (its head, loss term "
                f"and objective(s) {', '.join(lost) or 'none'})"
                + (f"; configuration(s) {', '.join(dropped)} dropped" if dropped else ""))

    @staticmethod
    def _trains(settings: dict, gone) -> list[str]:
        """The tasks a point trains once those in ``gone`` are removed."""
        tasks = settings.get("tasks", TASKS)
        return [t for t in ([tasks] if isinstance(tasks, str) else tasks) if t not in gone]

    def check(self) -> list[str]:
        """Problems no trial could get past, found in the driver before any trial starts: each
        setting a corner of the space produces is built into the model's and training's
        configuration (all corners together while there are at most ``MAX_CHECKED_POINTS``,
        else each parameter's extremes in turn), and every objective must be one that some
        configuration's tasks report. One line per problem, naming the point and the rule."""
        problems, tasks_trained = {}, set()
        for sampled in self._corners():
            settings, record = self.materialize(sampled)
            try:
                model_cfg, _, _ = build_configs(settings, fields=self.cohort_fields)
            except ValueError as exc:
                where = (f"configs[{sampled['config']}]" if "config" in sampled else "params at " + ", ".join(
                    f"{k}={round(v, 3) if isinstance(v, float) else v!r}" for k, v in record.items() if "_u" not in k))
                problems.setdefault(str(exc), f"{self.path}: {where}: {exc}")
                continue
            tasks_trained.update(model_cfg.tasks)
        for i, o in enumerate(self.objectives):
            task = task_of_metric(o["metric"])
            if tasks_trained and task not in tasks_trained:
                problems[o["metric"]] = (f"{self.path}: objectives[{i}]: {o['metric']} needs the {task} task, "
                                         f"which no configuration trains (tasks trained: {sorted(tasks_trained)})")
        return list(problems.values())

    def _corners(self) -> list[dict]:
        """Sampled-value dicts at the extremes of the space (see :meth:`check`)."""
        if self.configs:
            return [{"config": c["name"]} for c in self.configs]
        options = {}
        for name, spec in self.params.items():
            if spec["type"] == "simplex":  # equal weights (a corner of the simplex zeroes two tasks)
                options[name] = [{f"{name}_u1": 5 / 9, f"{name}_u2": 0.5}]
            elif spec["type"] == "categorical":
                options[name] = [{name: c} for c in spec["choices"]]
            else:
                options[name] = [{name: spec["low"]}, {name: spec["high"]}]
        names = list(options)
        if math.prod(len(v) for v in options.values()) <= MAX_CHECKED_POINTS:
            combos = itertools.product(*(options[n] for n in names))
        else:
            base = [options[n][0] for n in names]
            combos = [base[:i] + [choice] + base[i + 1:] for i, n in enumerate(names) for choice in options[n]]
        points = []
        for combo in combos:
            point = {k: v for part in combo for k, v in part.items()}
            point = {k: v for k, v in point.items() if self.is_active(k.removesuffix("_u1").removesuffix("_u2"), point)}
            if point not in points:
                points.append(point)
        return points

    def grid_size(self) -> int | None:
        if self.sampler_name != "grid":
            return None
        if self.configs:
            return len(self.configs)
        return math.prod(len(s["choices"]) for s in self.params.values())

    # ---- from sampled values to trial settings ------------------------------------------------
    def materialize(self, sampled: dict) -> tuple[dict, dict]:
        """``(settings, record)``: the trial's full settings and the parameters to log as
        ``param_<name>`` (sampled values plus derived loss weights)."""
        settings = dict(self.fixed)
        record = {}
        if self.configs:
            chosen = next(c for c in self.configs if c["name"] == sampled["config"])
            settings.update({k: v for k, v in chosen.items() if k != "name"})
            record["config"] = chosen["name"]
        for name, spec in self.params.items():
            if not self.is_active(name, sampled):
                continue
            if spec["type"] == "simplex":
                u1, u2 = sampled[f"{name}_u1"], sampled[f"{name}_u2"]
                a, b, c = stick_breaking(u1, u2, spec.get("prioritise"))
                settings.update(alpha=a, beta=b, gamma=c)
                record.update({f"{name}_u1": u1, f"{name}_u2": u2})
            else:
                settings[name] = sampled[name]
                record[name] = sampled[name]
        if self.removed_tasks:  # the cohort cannot train them (drop_tasks)
            settings["tasks"] = self._trains(settings, self.removed_tasks)
            weights = {LOSS_WEIGHTS[t]: settings.get(LOSS_WEIGHTS[t], 1.0) for t in TASKS}  # 1.0: build_configs' default
            kept = sum(w for k, w in weights.items() if k not in {LOSS_WEIGHTS[t] for t in self.removed_tasks})
            for task, key in LOSS_WEIGHTS.items():
                if key in settings or "loss_weights" in self.params:
                    settings[key] = 0.0 if task in self.removed_tasks else (weights[key] / kept if kept else 0.0)
        if settings.get("weighting", "static") == "static":  # weights other strategies never read
            for k in ("alpha", "beta", "gamma"):
                if k in settings:
                    record[k] = settings[k]
        return settings, record


def group_of(config_name: str, baseline: str | None = None) -> str:
    """``STL-text`` -> ``STL`` when ``STL`` is the baseline; other names are their own group."""
    if baseline and config_name.startswith(f"{baseline}-"):
        return baseline
    return config_name


def fail(path, key, message):
    raise SearchSpaceError(f"{path}: {key}: {message}")


def check_setting(path, where, key, value):
    if key not in SETTING_KEYS:
        fail(path, f"{where}.{key}", f"unknown setting; known: {sorted(SETTING_KEYS)}")
    if key == "tasks":
        tasks = [value] if isinstance(value, str) else value
        if not tasks or set(tasks) - {"text", "oc", "ml"}:
            fail(path, f"{where}.tasks", f"must be a non-empty list from [text, oc, ml], got {value!r}")
    if key == "modalities":
        chosen = [value] if isinstance(value, str) else value
        if not chosen or set(chosen) - {"image", "clinical"}:
            fail(path, f"{where}.modalities", f"must be a non-empty list from [image, clinical], got {value!r}")
    if key == "clinical_inputs":
        chosen = [value] if isinstance(value, str) else value
        if not chosen or set(chosen) - set(CLINICAL_INPUTS):
            fail(path, f"{where}.clinical_inputs", f"must be a non-empty list from {list(CLINICAL_INPUTS)}, got {value!r}")
    try:  # the value on its own (with every other setting at its default)
        build_configs({key: value})
    except ValueError as exc:
        fail(path, f"{where}.{key}", str(exc))
