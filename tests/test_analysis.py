"""Analysis: every number against a hand-worked value, an independent enumeration or a reference
library (Optuna, SciPy), on points and on a fixture experiment whose values are chosen by hand."""
import json
import itertools
import os
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from study import analysis as A
from study.analysis import hypervolume as HV
from study.report import main as report_main
from study.analysis.report import render
from study.analysis.significance import compare_recipes
from study.results.tables import load

from .fixture_experiment import FINDINGS, make_experiment

ROOT = Path(__file__).resolve().parent.parent


def test_pareto_on_hand_points():
    pts = np.array([[1, 5], [2, 4], [2, 4], [1, 3], [3, 1], [np.nan, 9], [0, 0]], float)
    mask = A.pareto_mask(pts, ["max", "max"])
    assert mask.tolist() == [True, True, True, False, True, False, False]  # ties both kept, NaN never
    assert A.pareto_mask(pts, ["min", "min"]).tolist() == [False] * 6 + [True]
    with pytest.raises(ValueError, match="directions must be 'max' or 'min'"):
        A.pareto_mask(pts, ["up", "max"])


def test_pareto_matches_optuna_best_trials():
    rng = np.random.default_rng(1)
    values = rng.random((40, 3)).round(2)
    directions = ["max", "min", "max"]
    study = optuna.create_study(directions=["maximize", "minimize", "maximize"])
    for v in values:
        study.add_trial(optuna.trial.create_trial(values=list(v)))
    expected = sorted(t.number for t in study.best_trials)
    assert sorted(np.flatnonzero(A.pareto_mask(values, directions))) == expected


def _hv_by_slicing(points: np.ndarray, ref: np.ndarray) -> float:
    """The oracle: exact hypervolume dominated by ``points`` (minimisation) up to ``ref``, by
    slicing along the last objective and recursing (independent of moocore)."""
    points = points[np.all(points < ref, axis=1)]
    if len(points) == 0:
        return 0.0
    if points.shape[1] == 1:
        return float(ref[0] - points[:, 0].min())
    pts = points[np.argsort(points[:, -1])]
    volume = 0.0
    for i, p in enumerate(pts):
        upper = pts[i + 1, -1] if i + 1 < len(pts) else ref[-1]
        if upper > p[-1]:
            volume += (upper - p[-1]) * _hv_by_slicing(pts[: i + 1, :-1], ref[:-1])
    return volume


def test_hypervolume_hand_slicing_and_optuna():
    assert _hv_by_slicing(np.array([[1.0, 2.0], [2.0, 1.0]]), np.array([3.0, 3.0])) == pytest.approx(3.0)
    from optuna._hypervolume import compute_hypervolume

    rng = np.random.default_rng(2)
    pts = rng.random((25, 3))
    ref = np.full(3, 1.1)
    assert _hv_by_slicing(pts, ref) == pytest.approx(compute_hypervolume(pts, ref), rel=1e-9)
    # the study's hypervolume (moocore, after normalising with bounds (worst, best) = (1, 0))
    worst_is_one = np.tile([[1.0, 0.0]], (3, 1))
    got = HV.hypervolume(pts, ["min"] * 3, bounds=worst_is_one, reference=1.1)
    assert got == pytest.approx(_hv_by_slicing(pts, ref), rel=1e-12)
    beyond = np.vstack([pts, [[0.5, 1.2, 0.5]]])  # past the reference in one objective: adds nothing
    assert HV.hypervolume(beyond, ["min"] * 3, bounds=worst_is_one, reference=1.1) == pytest.approx(got)


def _trials(values_by_config: dict, metrics=("val_a", "val_b")) -> pd.DataFrame:
    rows = []
    for cid, values in values_by_config.items():
        for r, v in enumerate(values):
            rows.append({"trial_id": f"{cid}{r}", "config_id": cid, "repeat": r, "status": "TERMINATED",
                         "finished_at": float(len(rows)), **dict(zip(metrics, v))})
    return pd.DataFrame(rows)


def test_fixed_bounds_hypervolume_and_history_by_hand():
    """Two accuracies (natural bounds 0..1, reference at 0): means (0.5, 0.5) then (0.8, 0.2)
    dominate 0.25, then 0.25 + 0.16 - 0.10 = 0.31; a third, dominated configuration adds nothing."""
    objectives = {"val_oc_accuracy": "max", "val_ml_f1": "max"}
    trials = _trials({"A": [(0.4, 0.6), (0.6, 0.4)], "B": [(0.8, 0.2)], "C": [(0.3, 0.1)]},
                     metrics=list(objectives))
    bounds, sources = A.objective_bounds(objectives)
    assert bounds.tolist() == [[0.0, 1.0], [0.0, 1.0]] and sources == ["natural", "natural"]
    history = A.hypervolume_history(trials, objectives)
    assert history["config_id"].tolist() == ["A", "B", "C"]
    np.testing.assert_allclose(history["hypervolume"], [0.25, 0.31, 0.31])
    assert A.objective_bounds({"val_oc_mae": "min"})[0].tolist() == [[4.0, 0.0]]
    observed, how = A.objective_bounds({"val_loss_text": "min"}, np.array([[2.0], [4.0]]))
    assert how == ["observed"] and observed.tolist() == [[4.2, 2.0]]  # 10 % of the span beyond the worst


def test_hypervolume_interval_collapses_without_spread_and_widens_with_it():
    objectives = {"val_oc_accuracy": "max", "val_ml_f1": "max"}
    steady = _trials({"A": [(0.5, 0.5)] * 3, "B": [(0.8, 0.2)] * 3}, metrics=list(objectives))
    s = A.hypervolume_summary(steady, objectives, n_boot=200)
    assert s["hypervolume"] == pytest.approx(0.31) and s["ci_low"] == s["ci_high"] == pytest.approx(0.31)
    noisy = _trials({"A": [(0.3, 0.7), (0.5, 0.5), (0.7, 0.3)], "B": [(0.8, 0.2)] * 3}, metrics=list(objectives))
    n = A.hypervolume_summary(noisy, objectives, n_boot=500)
    # by hand: the means are (0.5, 0.5) and (0.8, 0.2) again; resampling A's seeds moves it
    assert n["hypervolume"] == pytest.approx(0.31) and n["ci_low"] < 0.30 and n["ci_high"] > 0.315


def _methods(values_by_config: dict, method_of: dict, objectives: dict) -> pd.DataFrame:
    trials = _trials(values_by_config, metrics=list(objectives))
    return trials.assign(param_weighting=trials["config_id"].map(method_of))


def test_method_comparison_by_hand():
    """Two accuracies, natural bounds 0..1, reference point 0. Static S1 (0.6, 0.2), S2 (0.2, 0.6)
    and S3 (0.1, 0.1): the tuned static front dominates 0.12 + 0.12 - 0.04 = 0.20; one static
    configuration alone 0.12, 0.12 or 0.01, on average 0.25 / 3 (a static search of one
    configuration). M at (0.5, 0.5): 0.25, so 0.25 - 0.25 / 3 = 1 / 6 above static at equal
    budget; with all of static: 0.25 + 0.1 * 0.2 twice = 0.29, so it adds 0.09 beyond the tuned
    front, more than one static configuration adds beyond the others (0.16 / 3). N at (0.1, 0.1):
    0.01, 0.25 / 3 - 0.01 below, adds 0. Three identical seeds each: the intervals have no width."""
    objectives = {"val_oc_accuracy": "max", "val_ml_f1": "max"}
    trials = _methods({"S1": [(0.6, 0.2)] * 3, "S2": [(0.2, 0.6)] * 3, "S3": [(0.1, 0.1)] * 3,
                       "M": [(0.5, 0.5)] * 3, "N": [(0.1, 0.1)] * 3},
                      {"S1": "static", "S2": "static", "S3": "static", "M": "pcgrad", "N": "famo"}, objectives)
    table = A.method_comparison(trials, objectives, n_boot=50).set_index("method")
    np.testing.assert_allclose(table["hv"], [0.20, 0.25, 0.01], atol=1e-12)
    np.testing.assert_allclose(table["hv_static_k"], [0.20, 0.25 / 3, 0.25 / 3], atol=1e-12)
    np.testing.assert_allclose(table["hv_diff"], [0.0, 0.25 - 0.25 / 3, 0.01 - 0.25 / 3], atol=1e-12)
    np.testing.assert_allclose(table["contribution"], [0.0, 0.09, 0.0], atol=1e-12)
    np.testing.assert_allclose(table["contribution_low"], table["contribution_high"], atol=1e-12)
    assert table["verdict"].tolist() == ["reference", "better", "worse"]
    # one static configuration adds beyond the other two: S1 0.08, S2 0.08, S3 0: on average 0.16 / 3
    np.testing.assert_allclose(table["static_k_beyond"].iloc[1:], [0.16 / 3] * 2, atol=1e-12)
    np.testing.assert_allclose(table["beyond_diff"].iloc[1:], [0.09 - 0.16 / 3, -0.16 / 3], atol=1e-12)
    assert table["tuned_verdict"].tolist() == ["reference", "beyond", "short"]
    assert table["on_front"].tolist() == [2, 1, 0] and table["configs"].tolist() == [3, 1, 1]
    assert table.loc["pcgrad", "p_beyond"] == 1.0 and table.loc["famo", "p_beyond"] == 0.0

    configs = A.beyond_reference(A.config_table(trials), objectives).set_index("config_id")
    assert configs["reference_front"].tolist() == [True, True, False, False, False]
    assert configs["beyond"].tolist() == [False, False, False, True, False]
    one_seed = _methods({"S1": [(0.6, 0.2)], "M": [(0.5, 0.5)]}, {"S1": "static", "M": "pcgrad"}, objectives)
    assert A.method_comparison(one_seed, objectives, n_boot=20)["verdict"].tolist() == ["reference", "too few seeds"]
    from study.analysis.summary import methods_answer

    answer = methods_answer(table.reset_index())
    assert answer.startswith("**Beyond tuned static weights: pcgrad**") and "Short of it: famo." in answer
    assert "At equal budget (a static search of as many configurations): better pcgrad; worse famo" in answer


def test_method_comparison_seed_noise_matches_exact_enumeration():
    """Q's seeds are (0.1, 0.1) twice and (0.7, 0.7): a resample's mean is (x, x) with
    x = 0.1 + 0.2 k, k ~ Binomial(3, 1/3) copies of the third seed. It lies beyond the static
    front (0.6, 0.2), (0.2, 0.6) when x > 0.2, i.e. k >= 1: probability 1 - (2/3)^3 = 19/27. Its
    hypervolume x^2 against one static configuration's 0.12: below at k <= 1 (0.01, 0.09), above
    at k >= 2 (0.25, 0.49), so the difference's interval runs from 0.01 - 0.12 to 0.49 - 0.12
    and straddles 0: within seed noise."""
    objectives = {"val_oc_accuracy": "max", "val_ml_f1": "max"}
    trials = _methods({"S1": [(0.6, 0.2)] * 3, "S2": [(0.2, 0.6)] * 3, "Q": [(0.1, 0.1), (0.1, 0.1), (0.7, 0.7)]},
                      {"S1": "static", "S2": "static", "Q": "cagrad"}, objectives)
    q = A.method_comparison(trials, objectives, n_boot=6000, seed=3).set_index("method").loc["cagrad"]
    assert q["p_beyond"] == pytest.approx(19 / 27, abs=0.02)
    assert q["hv_diff_low"] == pytest.approx(0.01 - 0.12) and q["hv_diff_high"] == pytest.approx(0.49 - 0.12)
    assert q["verdict"] == "within seed noise"
    # beyond the front, (x, x) adds 0, 0.01, 0.09, 0.29 for k = 0..3, one static configuration
    # 0.08 beyond the other: the difference runs from -0.08 (k = 0, probability 8/27) to 0.21 (1/27)
    assert q["beyond_diff_low"] == pytest.approx(-0.08) and q["beyond_diff_high"] == pytest.approx(0.21)
    assert q["tuned_verdict"] == "within seed noise"
    assert A.method_comparison(trials.assign(param_weighting="static"), objectives)["method"].tolist() == ["static"]


def test_pareto_probability_matches_exact_enumeration():
    """A is steady at (0.5, 0.5); B's three seeds average (0.5, 0.5) too, so both means are on the
    front, but B's resampled mean can dominate A or be dominated by it. Enumerating all 27
    equally likely resamples of B's seeds gives the exact probabilities."""
    a = [(0.5, 0.5)] * 3
    b = [(0.7, 0.6), (0.3, 0.4), (0.5, 0.5)]
    trials = _trials({"A": a, "B": b})
    objectives = {"val_a": "max", "val_b": "max"}
    configs = A.configs_with_front(trials, objectives, n_boot=20000)
    assert configs.set_index("config_id")["pareto"].tolist() == [True, True]  # the means tie

    exact = {"A": 0, "B": 0}
    for draw in itertools.product(range(3), repeat=3):
        mean_b = np.mean([b[i] for i in draw], axis=0)
        a_dominates = np.all(0.5 >= mean_b) and np.any(0.5 > mean_b)
        b_dominates = np.all(mean_b >= 0.5) and np.any(mean_b > 0.5)
        exact["A"] += not b_dominates
        exact["B"] += not a_dominates
    p = configs.set_index("config_id")["p_pareto"]
    assert p["A"] == pytest.approx(exact["A"] / 27, abs=0.01)
    assert p["B"] == pytest.approx(exact["B"] / 27, abs=0.01)
    assert 0.2 < p["A"] < 0.9 and 0.2 < p["B"] < 0.9  # membership really changes under the bootstrap


def test_config_table_mean_and_t_interval_by_hand():
    trials = _trials({"A": [(0.5, 1.0), (0.6, 1.0), (0.7, 1.0)], "B": [(0.2, 0.3)]})
    trials.loc[len(trials)] = {"trial_id": "A9", "config_id": "A", "repeat": 3, "status": "ERROR",
                               "finished_at": 99.0}
    configs = A.config_table(trials).set_index("config_id")
    half = 4.302652729911275 * 0.1 / np.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert configs.loc["A", "val_a_mean"] == pytest.approx(0.6)
    assert configs.loc["A", "val_a_std"] == pytest.approx(0.1)
    assert (configs.loc["A", "val_a_ci_low"], configs.loc["A", "val_a_ci_high"]) == pytest.approx((0.6 - half, 0.6 + half))
    assert configs.loc["A", "repeats"] == 4 and configs.loc["A", "repeats_finished"] == 3
    assert np.isnan(configs.loc["B", "val_a_std"])  # one seed: no spread claimed


def test_config_table_equals_a_per_configuration_student_t_on_a_large_ragged_table():
    """The table computed at once equals scipy's Student-t interval taken configuration by
    configuration: 300 configurations of 1 to 5 seeds, missing values, failed trials."""
    from scipy import stats

    rng = np.random.default_rng(3)
    rows = []
    for c in range(300):
        for r in range(rng.integers(1, 6)):
            rows.append({"trial_id": f"{c}-{r}", "config_id": f"c{c}", "repeat": r,
                         "status": "ERROR" if rng.random() < 0.1 else "TERMINATED", "finished_at": float(len(rows)),
                         "param_x": c % 7, "val_ml_f1": rng.random() if rng.random() > 0.1 else np.nan,
                         "val_oc_mae": rng.random() * 3})
    trials = pd.DataFrame(rows)
    table = A.config_table(trials).set_index("config_id")
    for cid, group in trials.groupby("config_id"):
        done = group[group["status"] == "TERMINATED"]
        assert table.loc[cid, "repeats"] == len(group) and table.loc[cid, "repeats_finished"] == len(done)
        assert table.loc[cid, "finished_at"] == group["finished_at"].max()
        for m, (lo, hi) in (("val_ml_f1", (0, 1)), ("val_oc_mae", (0, 4))):
            v = done[m].dropna().to_numpy()
            if len(v) == 0:
                assert np.isnan(table.loc[cid, f"{m}_mean"])
                continue
            assert table.loc[cid, f"{m}_mean"] == pytest.approx(v.mean(), abs=1e-12)
            if len(v) < 2:
                assert np.isnan(table.loc[cid, f"{m}_ci_low"]) and np.isnan(table.loc[cid, f"{m}_std"])
                continue
            low, high = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
            assert table.loc[cid, f"{m}_ci_low"] == pytest.approx(max(low, lo), abs=1e-12)
            assert table.loc[cid, f"{m}_ci_high"] == pytest.approx(min(high, hi), abs=1e-12)


def test_hierarchical_bootstrap_reduces_to_known_bootstraps():
    """One seed a side: only samples are resampled (paired), so the interval is scipy's paired
    percentile bootstrap of the mean difference. Constant samples: only seeds are resampled, so
    it is scipy's independent two-sample percentile bootstrap of the difference of means."""
    from scipy.stats import bootstrap

    mean = lambda s, n: s["x"] / n  # noqa: E731
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.6, 0.2, 200), rng.normal(0.5, 0.2, 200)
    r = compare_recipes({"x": a[None]}, {"x": b[None]}, mean, n_boot=20000)
    ref = bootstrap((a - b,), np.mean, n_resamples=20000, method="percentile", random_state=1).confidence_interval
    assert r.diff == pytest.approx((a - b).mean())
    assert (r.ci_low, r.ci_high) == pytest.approx((ref.low, ref.high), abs=0.004)

    seeds_a, seeds_b = rng.normal(0.6, 0.05, 8), rng.normal(0.55, 0.05, 8)
    r = compare_recipes({"x": np.repeat(seeds_a[:, None], 30, 1)}, {"x": np.repeat(seeds_b[:, None], 30, 1)},
                        mean, n_boot=20000)
    ref = bootstrap((seeds_a, seeds_b), lambda x, y: x.mean() - y.mean(), n_resamples=20000,
                    method="percentile", random_state=1, paired=False).confidence_interval
    assert (r.ci_low, r.ci_high) == pytest.approx((ref.low, ref.high), abs=0.004)
    from scipy.stats import ttest_ind
    assert r.p_seed == pytest.approx(ttest_ind(seeds_a, seeds_b, equal_var=False).pvalue)

    same = compare_recipes({"x": a[None]}, {"x": a[None]}, mean, n_boot=999)
    assert same.diff == 0 and same.p_value == 1.0
    far = compare_recipes({"x": a[None] + 1}, {"x": a[None]}, mean, n_boot=999)
    assert far.p_value == pytest.approx(2 / 1000) and far.ci_low == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same samples"):
        compare_recipes({"x": a[None]}, {"x": a[None, :10]}, mean)


def test_overfitting_onset_by_hand():
    assert A.overfitting_point([1.0, 0.8, 0.6, 0.65, 0.7, 0.75]) == {
        "best_epoch": 3, "min_loss": 0.6, "onset": 4, "overfit": True}
    assert A.overfitting_point([1.0, 0.6, 0.603, 0.7])["onset"] == 4        # 0.603 is within 1 %
    assert A.overfitting_point([1.0, 0.6, 0.603, 0.7], tolerance=0.0)["onset"] == 3
    assert A.overfitting_point([1.0, 0.6, 0.7, 0.602])["overfit"] is False  # came back down
    assert A.overfitting_point(np.linspace(2, 1, 8))["onset"] is None       # still improving


@pytest.fixture
def experiment(tmp_path):
    return make_experiment(tmp_path / "exp")


def test_missing_head_is_missing_never_wrong(experiment):
    predictions = pd.read_parquet(experiment / "predictions.parquet")
    scores = A.per_sample_scores(predictions).groupby("trial_id")[["oc_correct", "ml_label_accuracy"]].mean()
    assert scores.loc["t00"].isna().all()                      # STL-text has neither head
    assert scores.loc["t10", "oc_correct"] == pytest.approx(0.5)  # STL-oc: 3 of 6, by construction
    assert scores.loc["t20", "ml_label_accuracy"] == pytest.approx(0.8)  # STL-ml: 24 of 30
    assert np.isnan(scores.loc["t10", "ml_label_accuracy"])


def test_paper_comparison_against_hand_values(experiment):
    trials = pd.read_parquet(experiment / "trials.parquet")
    predictions = pd.read_parquet(experiment / "predictions.parquet")
    table = A.compare_to_baseline(trials, predictions, baseline="STL", n_boot=500).set_index(["metric", "group"])
    assert set(table.index.get_level_values("group")) == {"MTL-EQ", "MTL-TP"}
    # each task's baseline comes from its own single-task configuration, undiluted
    assert table.loc[("oc_accuracy", "MTL-EQ"), "baseline_mean"] == pytest.approx(3 / 6)
    assert table.loc[("oc_accuracy", "MTL-TP"), "group_mean"] == pytest.approx(5 / 6)
    assert table.loc[("oc_mae", "MTL-EQ"), "diff"] == pytest.approx(2 / 6 - 3 / 6)
    assert table.loc[("ml_label_accuracy", "MTL-EQ"), "diff"] == pytest.approx(0.9 - 0.8)
    assert table.loc[("rouge_l", "MTL-TP"), "baseline_mean"] == pytest.approx(0.31)  # STL-text seeds 0.30..0.32
    assert table.loc[("rouge_l", "MTL-TP"), "group_mean"] == pytest.approx(0.71)
    from pycocoevalcap.bleu.bleu import Bleu
    from .fixture_experiment import GENERATED, N, REFERENCE
    from study.evaluation.text import normalize_text
    for group in ("MTL-EQ", "MTL-TP"):
        ref = {i: [normalize_text(REFERENCE)] for i in range(N)}
        bleu_group = Bleu(4).compute_score(ref, {i: [normalize_text(GENERATED[group])] for i in range(N)}, verbose=0)[0]
        bleu_stl = Bleu(4).compute_score(ref, {i: [normalize_text(GENERATED["STL-text"])] for i in range(N)}, verbose=0)[0]
        assert table.loc[("bleu2", group), "diff"] == pytest.approx(bleu_group[1] - bleu_stl[1], abs=1e-9)
    p = table["p"].to_numpy()
    order = np.argsort(p)
    m = len(p)
    expected = np.maximum.accumulate(np.minimum(1, (m - np.arange(m)) * p[order]))  # Holm by hand
    np.testing.assert_allclose(table["p_holm"].to_numpy()[order], expected)
    # MTL-TP is right wherever STL-oc is, plus on 2 of 6 samples, with every seed: the difference
    # is <= 0 only in resamples that miss both samples, probability (4/6)^6, so p = 2 (4/6)^6
    assert table.loc[("oc_accuracy", "MTL-TP"), "p"] == pytest.approx(2 * (4 / 6) ** 6, abs=0.04)
    assert table.loc[("oc_accuracy", "MTL-TP"), "verdict"] == "no significant difference"  # 6 samples


def test_examples_are_stratified_and_marked():
    cohort = pd.DataFrame({"sample_id": [f"s{j}" for j in range(12)], "split": ["test"] * 11 + ["train"]})
    for j, f in enumerate(FINDINGS):
        cohort[f] = [1 if k in (j, j + 5) else 0 for k in range(12)]  # s10 and s11 are normal
    chosen = A.choose_examples(cohort, normal=2, per_finding=1, seed=0)
    assert chosen[0] == "s10" and len(chosen) == 6           # the only normal test study, then one per finding
    assert [int(s[1:]) % 5 for s in chosen[1:]] == [0, 1, 2, 3, 4]
    assert A.choose_examples(cohort, seed=0) == chosen         # fixed: the same page every time
    assert A.marked("The heart is normal. The heart is normal.") == (
        "The heart is normal. <mark>The</mark> <mark>heart</mark> <mark>is</mark> <mark>normal.</mark>")
    assert A.marked("no effusion. no effusion.") == "no effusion. no effusion."  # 2 words: no 4-gram


def test_quality_claims_against_hand_values(experiment):
    """Every report-writing group against each one before it on the four measures, one Holm family."""
    from .fixture_experiment import QUALITY

    trials = pd.read_parquet(experiment / "trials.parquet")
    predictions = pd.read_parquet(experiment / "predictions.parquet")
    table = A.quality_comparison(trials, predictions, baseline="STL", n_boot=999)
    assert list(dict.fromkeys(zip(table["group"], table["baseline"]))) == [
        ("MTL-EQ", "STL"), ("MTL-TP", "STL"), ("MTL-TP", "MTL-EQ")]
    assert sorted(set(table["metric"])) == ["hallucinated", "missed", "repeat_4gram", "repeat_sentence"]
    assert len(table) == 12 and (table["better"] == "min").all()
    table = table.set_index(["metric", "group", "baseline"])
    names = {"STL": "STL-text", "MTL-EQ": "MTL-EQ", "MTL-TP": "MTL-TP"}
    for k, metric in enumerate(("repeat_4gram", "repeat_sentence", "hallucinated", "missed")):
        for group, against in (("MTL-EQ", "STL"), ("MTL-TP", "STL"), ("MTL-TP", "MTL-EQ")):
            row = table.loc[(metric, group, against)]
            mean = QUALITY[names[group]][k] + 0.01 * np.arange(6).mean()
            assert row["group_mean"] == pytest.approx(mean)
            assert row["diff"] == pytest.approx(QUALITY[names[group]][k] - QUALITY[names[against]][k])
    # a difference the same on every sample and seed: every resample agrees, p = 2 / 1000, and
    # Holm over the 9 non-zero differences of the 12 multiplies by at most 12: 0.024, still < 0.05
    nonzero = table["diff"].abs() > 1e-9
    assert table.loc[nonzero, "p"].to_numpy() == pytest.approx(2 / 1000)
    assert (table.loc[nonzero, "p_holm"] <= 12 * 2 / 1000 + 1e-12).all()
    assert table.loc[("hallucinated", "MTL-TP", "STL"), "verdict"] == "better"      # 0.5 vs 1.5
    assert table.loc[("repeat_4gram", "MTL-EQ", "STL"), "verdict"] == "worse"       # 0.5 vs 0.2
    assert table.loc[("repeat_sentence", "MTL-TP", "STL"), "verdict"] == "no significant difference"  # equal
    assert table.loc[("missed", "MTL-EQ", "STL"), "p_holm"] == 1.0



def test_stl_vs_mtl_overfitting_over_seeds(experiment):
    trials = pd.read_parquet(experiment / "trials.parquet")
    epochs = pd.read_parquet(experiment / "epochs.parquet")
    overfit = A.overfitting_table(epochs, trials)
    row = overfit.set_index(["trial_id", "task"]).loc[("t11", "oc")]
    assert (row["best_epoch"], row["onset"], row["min_loss"]) == (4, 5, pytest.approx(1.0))
    table = A.stl_vs_mtl_overfitting(overfit).set_index("task")
    # oc: STL-oc best at 3, 4, 5; MTL-EQ 8, 9, 10 and MTL-TP 9, 10, 11 (12 epochs: all rise after)
    assert table.loc["oc", "stl_best_epoch"] == pytest.approx(4.0)
    assert table.loc["oc", "mtl_best_epoch"] == pytest.approx(9.5)
    assert (table.loc["oc", "stl_runs"], table.loc["oc", "mtl_runs"]) == (3, 6)
    assert table.loc["oc", "mtl_overfit"] == 6 and table.loc["oc", "stl_overfit"] == 3  # all rise 2 % after
    assert table.loc["oc", "mtl_onset"] == pytest.approx(10.5)
    from scipy.stats import ttest_ind
    assert table.loc["oc", "p_best_epoch"] == pytest.approx(
        ttest_ind([8, 9, 10, 9, 10, 11], [3, 4, 5], equal_var=False).pvalue)


def test_report_writes_every_plot_and_summary(experiment, capsys):
    report_main([str(experiment)])
    expected = {"pareto", "weight_simplex", "learning_curves", "stl_vs_mtl_curves",
                "stl_vs_mtl_overfitting", "hypervolume", "importance"}
    written = {p.stem for p in (experiment / "plots").glob("*.png")}
    assert expected <= written
    for p in (experiment / "plots").glob("*.png"):
        assert p.stat().st_size > 5000 and p.read_bytes()[:4] == b"\x89PNG"
    summary = (experiment / "summary.md").read_text()
    assert "## Pareto front of configuration means" in summary and "## MTL-EQ, MTL-TP against STL" in summary
    assert "**oc, MTL-TP** does not differ significantly from STL" in summary and "## Overfitting" in summary
    configs = pd.read_parquet(experiment / "configs.parquet")
    assert len(configs) == 5 and {"p_pareto", "val_rouge_l_ci_low"} <= set(configs.columns)
    assert "pareto" in pd.read_parquet(experiment / "trials.parquet").columns
    assert (experiment / "comparison.csv").exists() and (experiment / "quality.csv").exists()
    assert "## Repetition and faithfulness" in summary and "**text, MTL-TP** beats STL on 3 of 4" in summary
    # the examples page: one study per finding (the fixture has no normal one), thumbnails beside them
    page = (experiment / "examples.md").read_text()
    assert [line.split(":")[1].strip() for line in page.splitlines() if line.startswith("## ")] == FINDINGS
    assert len(list((experiment / "plots" / "examples").glob("example-*.png"))) == 5
    assert "| MTL-TP | no pleural effusion. the heart is normal. |" in page and "[examples.md](examples.md)" in summary
    assert "summary.md" in capsys.readouterr().out


def test_report_compares_weighting_methods_when_the_study_has_several(experiment, tmp_path):
    """The paper fixture with its last configuration relabelled as a PCGrad run: the report adds
    the methods section, ``methods.csv`` and the plot; the static-only fixture has none of them."""
    import shutil

    copy = tmp_path / "methods"
    shutil.copytree(experiment, copy)
    trials = pd.read_parquet(copy / "trials.parquet")
    trials["param_weighting"] = np.where(trials["config_id"] == "c4", "pcgrad", "static")
    trials.to_parquet(copy / "trials.parquet")
    render(copy)
    summary = (copy / "summary.md").read_text()
    assert "## Weighting methods against tuned static weights" in summary
    assert (copy / "plots" / "methods_on_front.png").stat().st_size > 5000
    assert pd.read_csv(copy / "methods.csv")["method"].tolist() == ["static", "pcgrad"]
    render(experiment)
    assert not (experiment / "methods.csv").exists() and "Weighting methods" not in (experiment / "summary.md").read_text()


def test_hypervolume_plot_takes_an_interval_that_lies_above_the_estimate(tmp_path):
    """The methods study's report failed here: its front's bootstrap interval (0.1704 to 0.1817)
    lay wholly above the hypervolume of the means (0.1700): resampling seeds raises a maximum of
    noisy means. The plot used to draw it as an error bar from the estimate (negative length).
    The interval is drawn at every step that has one, and the axis starts at 0."""
    from study.analysis.plots import hypervolume_curve, hypervolume_figure

    history = pd.DataFrame({"n_configs": [1, 2, 3], "config_id": ["a", "b", "c"],
                            "hypervolume": [0.1, 0.170, 0.170], "ci_low": [0.08, np.nan, 0.1704],
                            "ci_high": [0.12, np.nan, 0.1817]})
    summary = {"hypervolume": 0.1700, "ci_low": 0.1704, "ci_high": 0.1817, "seeds": 2}
    ax = hypervolume_figure(history, summary).axes[0]
    np.testing.assert_allclose(ax.lines[0].get_xydata(), [[1, 0.1], [2, 0.170], [3, 0.170]])  # as computed
    segments = ax.collections[-1].get_segments()  # the intervals, drawn from their own ends
    np.testing.assert_allclose(np.array(segments), [[[1, 0.08], [1, 0.12]], [[3, 0.1704], [3, 0.1817]]])
    assert ax.get_ylim()[0] == 0
    assert hypervolume_curve(history, summary, tmp_path / "hv.png").read_bytes()[:4] == b"\x89PNG"
    one_seed = hypervolume_figure(history.assign(ci_low=np.nan, ci_high=np.nan), {"seeds": 1}).axes[0]
    assert [t.get_text() for t in one_seed.get_legend().get_texts()] == ["1 seed per configuration: no interval"]


def test_the_hypervolume_history_carries_its_interval_at_every_step():
    """Configuration A's seeds spread, B's agree: by hand, the interval at step 1 is the spread
    of A's resampled box alone; at step 2 B's box joins it and the interval narrows relative
    to its value; a one-seed study has no interval anywhere; the last step is the summary's."""
    objectives = {"val_oc_accuracy": "max", "val_ml_f1": "max"}
    trials = _trials({"A": [(0.3, 0.7), (0.5, 0.5), (0.7, 0.3)], "B": [(0.8, 0.2)] * 3}, metrics=list(objectives))
    history = A.hypervolume_history(trials, objectives, n_boot=400)
    np.testing.assert_allclose(history["hypervolume"], [0.25, 0.31])
    first, last = history.iloc[0], history.iloc[1]
    # step 1: A's resampled mean (x, 1 - x) has box x (1 - x) <= 0.25, 0.21 for x = 0.3 or 0.7
    assert first["ci_high"] == pytest.approx(0.25) and 0.2 <= first["ci_low"] < 0.25
    assert last["ci_low"] < 0.31 < last["ci_high"] or last["ci_high"] == pytest.approx(0.31)
    summary = A.hypervolume_summary(trials, objectives, n_boot=400)
    assert (summary["ci_low"], summary["ci_high"]) == (last["ci_low"], last["ci_high"])
    single = A.hypervolume_history(_trials({"A": [(0.5, 0.5)], "B": [(0.8, 0.2)]}, metrics=list(objectives)),
                                   objectives)
    assert single["ci_low"].isna().all() and single["hypervolume"].tolist() == pytest.approx([0.25, 0.31])
    many = _trials({f"c{i:02d}": [(0.01 * i, 0.5), (0.01 * i + 0.01, 0.5)] for i in range(60)}, metrics=list(objectives))
    spaced = A.hypervolume_history(many, objectives, n_boot=50)
    assert spaced["ci_low"].notna().sum() == A.hypervolume.INTERVAL_STEPS and spaced["ci_low"].iloc[-1] > 0


def test_pareto_plot_draws_the_means_their_intervals_and_the_front(experiment):
    """The points are the configuration means, the error bars end at the Student-t interval over
    seeds, the rings are the configurations on the front (the hand-made fixture's values)."""
    from study.analysis.plots import pareto_figure

    objectives = {"val_rouge_l": "max", "val_oc_accuracy": "max", "val_ml_f1": "max"}
    configs = A.finished(A.configs_with_front(load(experiment)["trials"], objectives))
    ax = pareto_figure(configs, objectives).axes[0]                     # rouge_l against oc_accuracy
    both = configs.dropna(subset=[f"{m}_mean" for m in objectives])     # MTL-EQ and MTL-TP
    xerr, yerr = ax.collections[0], ax.collections[1]
    points, rings = ax.collections[2], ax.collections[3]
    np.testing.assert_allclose(points.get_offsets(), both[["val_rouge_l_mean", "val_oc_accuracy_mean"]].to_numpy())
    np.testing.assert_allclose([s[:, 1] for s in yerr.get_segments()],
                               both[["val_oc_accuracy_ci_low", "val_oc_accuracy_ci_high"]].to_numpy())
    np.testing.assert_allclose([s[:, 0] for s in xerr.get_segments()],
                               both[["val_rouge_l_ci_low", "val_rouge_l_ci_high"]].to_numpy())
    # means 0.55 / 0.62 / 0.66 and 0.60 / 0.55 / 0.64: neither dominates, both ringed
    assert len(rings.get_offsets()) == 2 and both["pareto"].all()
    assert sorted(t.get_text() for t in ax.texts) == sorted(both["config_id"])  # the front's ids, as in summary.md


def test_report_objective_flag_is_checked(experiment):
    with pytest.raises(SystemExit, match="--objectives 'val_rouge_l:up': expected METRIC:max or METRIC:min"):
        report_main([str(experiment), "--objectives", "val_rouge_l:up"])
    out = render(experiment, {"val_rouge_l": "max", "val_oc_accuracy": "max"})
    assert out["pareto"].exists()


@pytest.mark.slow
def test_the_notebook_runs_as_users_run_it_even_on_a_busy_machine(experiment, tmp_path):
    """Exactly ``jupyter nbconvert --to notebook --execute notebooks/pareto_fronts.ipynb``, with
    four busy processes on the machine (the condition in which its widget cell hung for good),
    ``EXPERIMENT_DIR`` relative to where the command was started, and Ray unimportable: it ends
    within the bound, every code cell shows something, no cell fails, and nothing is written into
    the study's folder. On the old notebook this run never finished."""
    import hashlib
    import subprocess
    import sys

    def snapshot():
        return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(experiment.rglob("*")) if p.is_file()}

    before = snapshot()
    fake = tmp_path / "no-ray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('Ray is not installed here')\n")
    out = ROOT / "notebooks" / "pareto_fronts.nbconvert.ipynb"
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4)]
    try:
        done = subprocess.run([str(Path(sys.executable).with_name("jupyter")), "nbconvert", "--to", "notebook",
                               "--execute", "notebooks/pareto_fronts.ipynb"], cwd=ROOT, capture_output=True, text=True,
                              timeout=300, env={**os.environ, "EXPERIMENT_DIR": os.path.relpath(experiment, ROOT),
                                                "PYTHONPATH": f"{fake.parent}:{ROOT}"})
    finally:
        for process in busy:
            process.kill()
    import nbformat

    try:
        assert done.returncode == 0, done.stderr[-3000:]
        nb = nbformat.read(out, as_version=4)
    finally:
        out.unlink(missing_ok=True)
    code = [c for c in nb.cells if c.cell_type == "code" and "# Parameters" not in c.source]
    assert all(c.get("outputs") for c in code), [c.source[:60] for c in code if not c.get("outputs")]
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 3   # the pair, the hypervolume, the curves
    assert snapshot() == before, "the notebook wrote into the study's folder"


def test_every_setting_is_recorded_and_a_fixed_weighting_names_the_method(tmp_path):
    """A space that fixes ``weighting: pcgrad`` searches no ``weighting``: the method comes from the
    recorded settings (``setting_weighting``), not the ``static`` fallback of a missing param."""
    from study.results.tables import consolidate

    for tid, weighting in (("a", "pcgrad"), ("b", "static")):
        d = tmp_path / "trials" / tid
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps({
            "trial_id": tid, "status": "TERMINATED", "error": None, "best_epoch": 1, "epochs_run": 1,
            "train_seconds": 1.0, "params": {"num_heads": 2}, "config_id": tid, "repeat": 0, "finished": 1.0,
            "settings": {"weighting": weighting, "tasks": ["text", "oc"], "num_heads": 2, "epochs": 3},
            "metrics": {"val_rouge_l": 0.3, "val_oc_accuracy": 0.5}}))
    trials = consolidate(tmp_path).set_index("trial_id")
    assert trials.loc["a", "setting_weighting"] == "pcgrad" and trials.loc["a", "setting_tasks"] == "text,oc"
    assert trials.loc["b", "setting_epochs"] == 3 and "param_weighting" not in trials
    assert A.weighting_of(trials.reset_index()).to_dict() == {"a": "pcgrad", "b": "static"}


def test_one_seed_gives_no_interval_and_no_probability_of_the_front(experiment, tmp_path):
    """With one seed per configuration the summary says so instead of printing a degenerate
    interval ("0.0873 to 0.0873") or P(on front) = 1."""
    import shutil

    copy = tmp_path / "one-seed"
    shutil.copytree(experiment, copy)
    trials = pd.read_parquet(copy / "trials.parquet")
    trials[trials["repeat"].isin([0]) | (trials["status"] != "TERMINATED")].to_parquet(copy / "trials.parquet")
    objectives = A.study_objectives(copy)
    hv = A.hypervolume_summary(pd.read_parquet(copy / "trials.parquet"), objectives)
    assert hv["seeds"] == 1 and np.isnan(hv["ci_low"]) and np.isnan(hv["ci_high"]) and hv["hypervolume"] > 0
    render(copy)
    summary = (copy / "summary.md").read_text()
    assert "(one seed: no interval)" in summary and "interval over seeds" not in summary
    configs = pd.read_parquet(copy / "configs.parquet")
    assert configs["p_pareto"].isna().all()
    front = summary.split("## Pareto front of configuration means")[1].split("##")[0]
    assert "one seed: no interval" in front and "| 1.00 |" not in front


def test_the_notebook_finds_a_relative_experiment_or_says_where_it_looked(experiment, tmp_path, monkeypatch):
    from study.analysis.notebook import resolve_experiment

    monkeypatch.chdir(experiment.parent)
    assert resolve_experiment(experiment.name, results=tmp_path) == experiment.resolve()
    with pytest.raises(FileNotFoundError, match=r"EXPERIMENT_DIR=nowhere: no trials.parquet there \(looked in .*nowhere"):
        resolve_experiment("nowhere", results=tmp_path)
    with pytest.raises(FileNotFoundError, match="no experiment under"):
        resolve_experiment(None, results=tmp_path / "empty")


@pytest.mark.parametrize("values, expected", [
    ([0.9], (0.9, np.nan, np.nan)),                                    # one seed: no interval
    ([0.95, 1.0], (0.975, 0.975 - 12.706 * 0.025, 1.0)),               # t(1) = 12.706: clipped at 1
    ([0.1, 0.2, 0.3, 0.4, 0.5], (0.3, 0.3 - 2.776 * np.sqrt(0.025 / 5), 0.3 + 2.776 * np.sqrt(0.025 / 5))),
])
def test_intervals_never_leave_the_metric_s_range(values, expected):
    """Hand-made tables of one, two and five seeds of an F1: the mean, and the Student-t
    interval clipped to 0..1 (t values from tables: 12.706 for 1 and 2.776 for 4 degrees of
    freedom; sd of 0.1..0.5 is sqrt(0.025))."""
    trials = pd.DataFrame({"trial_id": [f"t{i}" for i in range(len(values))], "config_id": "c", "status": "TERMINATED",
                           "val_ml_f1": values, "val_oc_mae": [0.1] * len(values), "finished_at": 1.0})
    row = A.config_table(trials).iloc[0]
    got = (row["val_ml_f1_mean"], row["val_ml_f1_ci_low"], row["val_ml_f1_ci_high"])
    np.testing.assert_allclose(got, expected, atol=2e-3)
    if len(values) > 1:  # a constant MAE: interval of zero width, never below the range's 0
        assert row["val_oc_mae_ci_low"] >= 0.0


def test_the_summary_warns_first_and_shows_what_it_has(experiment, tmp_path):
    """Random encoder weights and the synthetic cohort are said before any number; a study
    without single-task trials writes no STL-vs-MTL plot and says how many runs overfit; the
    test split of the front is shown; plots are embedded with a caption."""
    import shutil

    copy = tmp_path / "mtl-only"
    shutil.copytree(experiment, copy)
    trials = pd.read_parquet(copy / "trials.parquet")
    mtl = trials[trials["param_config"].str.startswith("MTL")]
    mtl.to_parquet(copy / "trials.parquet")
    for table in ("epochs", "predictions"):
        part = pd.read_parquet(copy / f"{table}.parquet")
        part[part["trial_id"].isin(mtl["trial_id"])].to_parquet(copy / f"{table}.parquet")
    record = json.loads((copy / "study.json").read_text())
    record["data"] = {"source": "synthetic", "warning": "image encoder has RANDOM weights: offline"}
    (copy / "study.json").write_text(json.dumps(record))
    out = render(copy)
    summary = (copy / "summary.md").read_text()
    head = summary.split("## Pareto front")[0]
    assert "random weights" in head and "Synthetic cohort" in head
    assert "stl_vs_mtl_overfitting" not in out and not (copy / "plots" / "stl_vs_mtl_overfitting.png").exists()
    assert "- **oc**: 6 of 6 runs overfit" in summary            # MTL-EQ and MTL-TP, three seeds each
    assert "### The same configurations on the test split" in summary and "test_ml_f1 (95 % CI)" in summary
    assert "![pareto](plots/pareto.png)" in summary and (copy / "overfitting.csv").exists()
