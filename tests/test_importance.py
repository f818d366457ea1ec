"""Parameter importance: the numbers optuna-dashboard computes from an Optuna study of the same
configurations, and a ranking in the study's terms that finds the parameter an objective
was made to depend on."""
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from study import analysis as A
from study.spec.space import stick_breaking
from study.spec.space_file import load_space

SPACE = load_space(Path(__file__).resolve().parent.parent / "search_spaces" / "weights.yaml")
OBJECTIVES = dict(zip(SPACE.metrics, SPACE.modes))


def _configurations(n: int = 40, seed: int = 0) -> tuple[pd.DataFrame, list[dict], np.ndarray]:
    """``n`` configurations as the sampler draws them, with objectives made to depend on one
    parameter each: ROUGE-L on a, OC accuracy on the schedule, ML F1 on nothing (noise)."""
    rng = np.random.default_rng(seed)
    drawn, rows, values = [], [], []
    for i in range(n):
        point = {"loss_weights_u1": float(rng.random()), "loss_weights_u2": float(rng.random()),
                 "num_heads": int(rng.choice([1, 2, 3, 4, 6])),
                 "warmup_fraction": float(rng.uniform(0, 0.3)),
                 "schedule": str(rng.choice(["constant", "linear", "cosine", "inverse_sqrt"]))}
        a, b, c = stick_breaking(point["loss_weights_u1"], point["loss_weights_u2"])
        v = [0.2 + 0.2 * a + 0.002 * rng.random(), 0.3 + 0.2 * (point["schedule"] == "cosine")
             + 0.002 * rng.random(), 0.5 + 0.1 * rng.random()]
        drawn.append(point)
        values.append(v)
        rows.append({"config_id": f"c{i}", "status": "TERMINATED", "repeats_finished": 2,
                     **{f"param_{k}": x for k, x in point.items()},
                     "param_alpha": a, "param_beta": b, "param_gamma": c,
                     **{f"{m}_mean": x for m, x in zip(OBJECTIVES, v)}})
    return pd.DataFrame(rows), drawn, np.array(values)


def test_sampler_terms_give_the_dashboard_s_numbers():
    """The oracle is what optuna-dashboard does with ``optuna.db``: a multi-objective study of the
    configuration means, ``get_param_importances`` with PED-ANOVA and the target negated for
    an objective to maximise."""
    configs, drawn, values = _configurations()
    study = optuna.create_study(directions=["maximize" if m == "max" else "minimize" for m in SPACE.modes])
    dists = SPACE.distributions()
    for point, v in zip(drawn, values):
        study.add_trial(optuna.trial.create_trial(params=point, distributions=dists, values=list(v)))
    ours = A.parameter_importance(configs, SPACE, in_terms_of="sampler", methods=("ped-anova",))
    for i, metric in enumerate(OBJECTIVES):
        with pytest.warns(UserWarning):  # PED-ANOVA's note on targets, which the dashboard silences
            expected = optuna.importance.get_param_importances(
                study, target=lambda t, i=i: -t.values[i], evaluator=optuna.importance.PedAnovaImportanceEvaluator())
        got = ours[ours["objective"] == metric].set_index("param")["importance"].to_dict()
        assert got == pytest.approx(dict(expected))


def test_study_terms_rank_a_b_c_and_fanova_finds_what_each_objective_depends_on():
    configs, _, _ = _configurations()
    table = A.parameter_importance(configs, SPACE)
    assert set(table["method"]) == {"fanova", "ped-anova"}
    assert set(table["param"]) == {"a", "b", "c", "num_heads", "warmup_fraction", "schedule"}
    fanova = table[table["method"] == "fanova"].set_index(["objective", "param"])["importance"]
    assert fanova["val_rouge_l", "a"] > 0.9 and fanova["val_oc_accuracy", "schedule"] > 0.9
    # the same weights under the sampler's names: the importance of a is spread over u1 and u2
    raw = A.parameter_importance(configs, SPACE, in_terms_of="sampler", methods=("fanova",))
    assert {"loss_weights_u1", "loss_weights_u2"} <= set(raw["param"]) and "a" not in set(raw["param"])


def test_a_large_study_gets_a_smaller_forest_that_still_finds_the_dependence():
    from study.analysis.importance import fanova_trees

    assert [fanova_trees(n) for n in (10, 256, 257, 1000, 3000)] == [64, 64, 63, 16, 8]  # by hand
    configs, _, _ = _configurations(n=400, seed=1)
    fanova = A.parameter_importance(configs, SPACE, methods=("fanova",)).set_index(["objective", "param"])
    assert fanova.loc[("val_rouge_l", "a"), "importance"] > 0.9  # 40 trees
    assert fanova.loc[("val_oc_accuracy", "schedule"), "importance"] > 0.9


def test_too_few_configurations_give_no_importance():
    configs, _, _ = _configurations(n=1)
    assert A.parameter_importance(configs, SPACE).empty
    with pytest.raises(ValueError, match="in_terms_of must be one of"):
        A.parameter_importance(configs, SPACE, in_terms_of="raw")
    with pytest.raises(ValueError, match="methods must be among .* got 'shap'"):
        A.parameter_importance(configs, SPACE, methods=("shap",))


def test_the_importance_plot_draws_each_method_s_numbers():
    import matplotlib

    matplotlib.use("Agg")
    from study.analysis.plots import importance_figure

    configs, _, _ = _configurations()
    table = A.parameter_importance(configs, SPACE)
    fig = importance_figure(table)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["fANOVA: variance over all configurations",
                                                      "PED-ANOVA: what sets the top 10 % apart"]
    for ax, method in zip(fig.axes, ("fanova", "ped-anova")):
        drawn = sorted(round(p.get_width(), 6) for p in ax.patches if p.get_height() > 0 and p.get_width() > 0)
        expected = sorted(round(v, 6) for v in table.loc[table["method"] == method, "importance"] if v > 0)
        assert drawn == expected
