"""Reading a search-space file: strict YAML (no key twice), every key, domain and setting checked,
and the conditions between parameters; errors name the file, the key and the value. The format
is described in :mod:`study.spec.space`."""
from __future__ import annotations

from pathlib import Path

import yaml

from study.evaluation.names import TASK_METRICS, task_of_metric

from .settings import SETTING_KEYS, strategy_of_setting
from .space import (DEFAULT_OBJECTIVES, SAMPLERS, SearchSpace, SearchSpaceError, check_setting, fail,
                    group_of)

PARAM_KEYS = {"float": ("type", "low", "high", "log", "step"), "int": ("type", "low", "high", "log", "step"),
              "categorical": ("type", "choices", "budget"), "simplex": ("type", "prioritise")}
TOP_KEYS = {"description", "sampler", "sampler_options", "num_samples", "repeats", "objectives",
            "fixed", "params", "configs", "baseline"}


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping",
                    key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_yaml(text: str, source) -> object:
    """Parse YAML text strictly (no duplicate keys); errors name ``source`` and the line."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}:" if where else ""
        raise SearchSpaceError(f"{source}:{line} {getattr(exc, 'problem', None) or exc}") from None


def _check_param(path, name, spec):
    key = f"params.{name}"
    if not isinstance(spec, dict) or "type" not in spec:
        fail(path, key, f"expected a mapping with a 'type', got {spec!r}")
    kind = spec["type"]
    known = PARAM_KEYS.get(kind)
    if known is None:
        fail(path, f"{key}.type", f"must be one of float, int, categorical, simplex; got {kind!r}")
    unknown = sorted(set(spec) - set(known))
    if unknown:
        fail(path, f"{key}.{unknown[0]}", f"unknown key for type {kind}; known: {list(known)}")
    if kind == "simplex":
        if name != "loss_weights":
            fail(path, key, "type simplex is only for 'loss_weights' (it sets alpha, beta, gamma)")
        if spec.get("prioritise") not in (None, "text"):
            fail(path, f"{key}.prioritise", f"must be 'text' or absent, got {spec['prioritise']!r}")
        return
    if name not in SETTING_KEYS:
        fail(path, key, f"unknown setting; known: {sorted(SETTING_KEYS)}")
    if kind in ("float", "int"):
        for bound in ("low", "high"):
            if not isinstance(spec.get(bound), (int, float)) or isinstance(spec.get(bound), bool):
                fail(path, f"{key}.{bound}", f"expected a number, got {spec.get(bound)!r}")
        if spec["low"] >= spec["high"]:
            fail(path, key, f"low must be < high, got low={spec['low']}, high={spec['high']}")
        if spec.get("log") and spec["low"] <= 0:
            fail(path, f"{key}.low", f"must be > 0 with log: true, got {spec['low']}")
    elif kind == "categorical":
        if not isinstance(spec.get("choices"), list) or not spec["choices"]:
            fail(path, f"{key}.choices", f"expected a non-empty list, got {spec.get('choices')!r}")
        budget = spec.get("budget")
        if budget is not None:
            if not isinstance(budget, dict) or set(budget) != set(spec["choices"]):
                fail(path, f"{key}.budget", f"expected configurations for every choice {spec['choices']}, got {budget!r}")
            for choice, n in budget.items():
                if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                    fail(path, f"{key}.budget.{choice}", f"expected a positive integer (configurations), got {n!r}")


def _check_conditions(path, params: dict, fixed: dict) -> None:
    """Refuse a param no trial reads (its strategy is never chosen), and a budget per choice
    that would train one configuration again and again."""
    chosen = params.get("weighting", {}).get("choices") or [fixed.get("weighting", "static")]
    where = "params.weighting.choices" if "weighting" in params else "fixed.weighting" if "weighting" in fixed else "the default weighting"
    for name in params:
        owner = strategy_of_setting(name)
        if owner is not None and owner not in chosen:
            fail(path, f"params.{name}", f"only weighting {owner} reads it, and {where} is {chosen if len(chosen) > 1 else chosen[0]!r}: "
                                          f"no trial would use the sampled value")
    for name, spec in params.items():
        for choice, n in (spec.get("budget") or {}).items():
            others = [p for p in params if p != name and (name != "weighting" or strategy_of_setting(p) in (None, choice))]
            if n > 1 and not others:
                fail(path, f"params.{name}.budget.{choice}", f"{n} configurations of {choice} would all be the same "
                                                                 f"(nothing else is sampled with it); give 1 and raise repeats for more seeds")


def load_space(path: str | Path, text: str | None = None) -> SearchSpace:
    """Parse and validate a search space file (or its ``text``, named ``path`` in errors)."""
    path = Path(path)
    raw = load_yaml(path.read_text() if text is None else text, path)
    if not isinstance(raw, dict):
        raise SearchSpaceError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    for key in raw:
        if key not in TOP_KEYS:
            fail(path, key, f"unknown key; known: {sorted(TOP_KEYS)}")
    sampler = raw.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        fail(path, "sampler", f"must be one of {list(SAMPLERS)}, got {sampler!r}")
    objectives = raw.get("objectives", DEFAULT_OBJECTIVES)
    if not isinstance(objectives, list) or not objectives:
        fail(path, "objectives", f"expected a non-empty list, got {objectives!r}")
    for i, o in enumerate(objectives):
        if not isinstance(o, dict) or not str(o.get("metric", "")).startswith("val_"):
            fail(path, f"objectives[{i}].metric", f"must name a validation metric (val_...), got {o!r}")
        if o.get("mode") not in ("min", "max"):
            fail(path, f"objectives[{i}].mode", f"must be 'min' or 'max', got {o.get('mode')!r}")
        if task_of_metric(o["metric"]) is None:
            known = sorted(f"val_{m}" for names in TASK_METRICS.values() for m in names)
            fail(path, f"objectives[{i}].metric", f"no trial reports {o['metric']!r}; known: {known}")
    fixed = raw.get("fixed") or {}
    for k, v in fixed.items():
        check_setting(path, "fixed", k, v)
    params = raw.get("params") or {}
    for name, spec in params.items():
        _check_param(path, name, spec)
    configs = raw.get("configs") or []
    if configs and sampler != "grid":
        fail(path, "configs", f"named configs need sampler: grid, got {sampler!r}")
    if configs and params:
        fail(path, "configs", "use either configs or params, not both")
    if params.get("loss_weights", {}).get("type") == "simplex":
        clash = sorted(k for k in ("alpha", "beta", "gamma") if k in fixed)
        if clash:
            fail(path, f"fixed.{clash[0]}", f"loss_weights (simplex) sets alpha, beta and gamma; remove "
                                             f"the fixed {', '.join(clash)} or the simplex parameter")
    names = set()
    for i, c in enumerate(configs):
        if not isinstance(c, dict) or "name" not in c:
            fail(path, f"configs[{i}]", f"expected a mapping with a 'name', got {c!r}")
        if c["name"] in names:
            fail(path, f"configs[{i}].name", f"duplicate name {c['name']!r}")
        names.add(c["name"])
        for k, v in c.items():
            if k != "name":
                check_setting(path, f"configs[{i}]", k, v)
    _check_conditions(path, params, fixed)
    if sampler == "grid" and not configs:
        for name, spec in params.items():
            if spec["type"] != "categorical":
                fail(path, f"params.{name}", "the grid sampler needs categorical params (or configs)")
    if not params and not configs:
        fail(path, "params", "a search space needs params (or configs for a grid)")
    budgeted = [n for n, spec in params.items() if "budget" in spec]
    if budgeted and sampler == "grid":
        fail(path, f"params.{budgeted[0]}.budget", "a budget per choice is for the samplers that draw (tpe, gp, nsga2, nsga3, random); a grid runs each choice once")
    if len(budgeted) > 1:
        fail(path, f"params.{budgeted[1]}.budget", f"only one param may have a budget; {budgeted[0]} has one")
    default_samples = sum(params[budgeted[0]]["budget"].values()) if budgeted else 8
    num_samples = raw.get("num_samples", default_samples)
    if budgeted and num_samples != default_samples:
        fail(path, "num_samples", f"must be the sum of params.{budgeted[0]}.budget ({default_samples}) or absent, got {num_samples!r}")
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
        fail(path, "num_samples", f"expected a positive integer, got {num_samples!r}")
    repeats = raw.get("repeats", 1)
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        fail(path, "repeats", f"expected a positive integer (seeds per configuration), got {repeats!r}")
    baseline = raw.get("baseline")
    if baseline is not None:
        if not configs:
            fail(path, "baseline", "a baseline names a group of named configs (sampler: grid)")
        if not any(group_of(c["name"], baseline) == baseline for c in configs):
            fail(path, "baseline", f"no config is named {baseline!r} or {baseline + '-...'!r}; "
                                    f"configs: {[c['name'] for c in configs]}")
    return SearchSpace(path, raw.get("description", ""), sampler, raw.get("sampler_options") or {},
                       num_samples, objectives, fixed, params, configs, repeats, baseline)
