"""Analysis: Pareto front and hypervolume against hand answers and Optuna, overfitting detection,
comparisons, the report command and the notebook, on a fixture experiment."""
import os
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from study import analysis as A
from study.report import main as report_main
from study.report import render

from .fixture_experiment import make_experiment

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


def test_hypervolume_hand_and_optuna():
    assert A._hv_min(np.array([[1.0, 2.0], [2.0, 1.0]]), np.array([3.0, 3.0])) == pytest.approx(3.0)
    from optuna._hypervolume import compute_hypervolume

    rng = np.random.default_rng(2)
    pts = rng.random((25, 3))
    ref = np.full(3, 1.1)
    assert A._hv_min(pts, ref) == pytest.approx(compute_hypervolume(pts, ref), rel=1e-9)
    # normalisation: best corner alone fills the whole box up to the reference point
    vals = np.array([[1.0, 1.0], [0.0, 0.0]])
    assert A.hypervolume(vals, ["max", "max"]) == pytest.approx(1.1 ** 2)


def test_overfitting_turning_point():
    u = 1 + 0.1 * (np.arange(1, 11) - 4) ** 2  # minimum at epoch 4, then up for good
    assert A.overfitting_point(u) == {"best_epoch": 4, "overfit_epoch": 5, "epochs_before_overfitting": 4}
    assert A.overfitting_point(np.linspace(2, 1, 8))["overfit_epoch"] is None  # still improving
    assert A.overfitting_point([1.0, 0.5, 0.9, 0.5])["overfit_epoch"] is None  # came back down
    assert A.overfitting_point([1.0, 0.5, 0.504], tolerance=0.01)["overfit_epoch"] is None


@pytest.fixture
def experiment(tmp_path):
    return make_experiment(tmp_path / "exp")


def test_tables_on_fixture(experiment):
    tables = {n: pd.read_parquet(experiment / f"{n}.parquet") for n in ("trials", "epochs", "predictions")}
    trials, epochs = tables["trials"], tables["epochs"]
    objectives = A.study_objectives(experiment)
    front = A.pareto_front(trials, objectives)
    assert set(front["trial_id"]) == {"t3", "t4"}  # the only trials with all three objectives
    assert "t9" not in set(front["trial_id"]) and "t0" not in set(front["trial_id"])  # STL: NaN objectives
    overfit = A.overfitting_table(epochs, trials).set_index(["trial_id", "task"])
    assert overfit.loc[("t1", "oc"), "best_epoch"] == 3 and overfit.loc[("t4", "ml"), "overfit_epoch"] == 10
    stl = A.stl_vs_mtl_overfitting(A.overfitting_table(epochs, trials), A.finished(trials)).set_index(["task", "setting"])
    assert stl.loc[("oc", "STL"), "best_epoch"] == 3 and stl.loc[("oc", "MTL"), "best_epoch"] == 8.5
    history = A.hypervolume_history(trials, objectives)
    assert len(history) == 5 and history["hypervolume"].is_monotonic_increasing
    comparison = A.compare_groups(A.finished(trials), tables["predictions"], group_col="param_config").set_index("metric")
    assert {"STL", "MTL-EQ", "MTL-TP"} <= set(comparison.columns)
    assert comparison.loc["rouge_l", "p_MTL-TP_vs_MTL-EQ"] == comparison.loc["rouge_l", "p_MTL-TP_vs_MTL-EQ"]
    assert comparison["p_holm_MTL-TP_vs_MTL-EQ"].dropna().ge(comparison["p_MTL-TP_vs_MTL-EQ"].dropna()).all()


def test_report_writes_every_plot_and_summary(experiment, capsys):
    report_main([str(experiment)])
    expected = {"pareto", "weight_simplex", "learning_curves", "stl_vs_mtl_curves",
                "stl_vs_mtl_overfitting", "hypervolume", "importance"}
    written = {p.stem for p in (experiment / "plots").glob("*.png")}
    assert expected <= written
    for p in (experiment / "plots").glob("*.png"):
        assert p.stat().st_size > 5000 and p.read_bytes()[:4] == b"\x89PNG"
    summary = (experiment / "summary.md").read_text()
    assert "## Pareto front" in summary and "MTL-TP" in summary and "## Overfitting" in summary
    assert "pareto" in pd.read_parquet(experiment / "trials.parquet").columns
    assert "summary.md" in capsys.readouterr().out


def test_report_objective_flag_is_checked(experiment):
    with pytest.raises(SystemExit):
        report_main([str(experiment), "--objectives", "val_rouge_l:up"])
    out = render(experiment, {"val_rouge_l": "max", "val_oc_accuracy": "max"})
    assert out["pareto"].exists()


@pytest.mark.slow
def test_notebook_runs_top_to_bottom(experiment):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "notebooks" / "pareto_fronts.ipynb", as_version=4)
    os.environ["EXPERIMENT_DIR"] = str(experiment)
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    finally:
        del os.environ["EXPERIMENT_DIR"]
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
