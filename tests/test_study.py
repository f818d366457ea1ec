"""Study: search-space validation (fast) and end-to-end sweeps through Ray (slow)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from search_spaces import available, resolve
from study.run import main as run_main
from study.run import parse_args
from study.space import SearchSpaceError, load_space, simplex_weights
from study.store import CONTRACT_COLUMNS, EPOCH_COLUMNS, consolidate, load
from study.tune import StudyContext, plan_resources

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--n-synthetic", "40", "--image-size", "32", "--weights", "none", "--no-report"]


# ---- search spaces ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["paper", "weights", "full", "smoke"])
def test_shipped_spaces_load(name):
    space = load_space(resolve(name))
    assert space.distributions()
    assert space.modes and set(space.modes) <= {"min", "max"}


def test_paper_grid_has_the_five_named_configurations():
    space = load_space(resolve("paper"))
    assert [c["name"] for c in space.configs] == ["STL-text", "STL-oc", "STL-ml", "MTL-EQ", "MTL-TP"]
    settings, record = space.materialize({"config": "MTL-TP"})
    assert settings["alpha"] > settings["beta"] > settings["gamma"]
    assert (settings["num_heads"], settings["ff_dim"], settings["learning_rate"], settings["batch_size"],
            settings["patience"], settings["warmup_fraction"]) == (3, 256, 3e-5, 32, 10, 0.1)
    assert record["config"] == "MTL-TP"


def test_simplex_parameterisation():
    rng = np.random.default_rng(0)
    w = np.array([simplex_weights(*rng.random(2)) for _ in range(20000)])
    assert np.allclose(w.sum(1), 1.0) and (w >= 0).all()
    assert np.allclose(w.mean(0), 1 / 3, atol=0.01)  # uniform on the simplex: each mean 1/3
    ordered = np.array([simplex_weights(*rng.random(2), prioritise="text") for _ in range(100)])
    assert (ordered[:, 0] >= ordered[:, 1]).all() and (ordered[:, 1] >= ordered[:, 2]).all()


@pytest.mark.parametrize("text, message", [
    ("sampler: bayes\nparams: {num_heads: {type: categorical, choices: [1]}}", "sampler: must be one of"),
    ("params: {num_heads: {type: float, low: 4, high: 2}}", "params.num_heads: low must be < high"),
    ("params: {heads: {type: categorical, choices: [1]}}", "params.heads: unknown setting"),
    ("params: {learning_rate: {type: float, low: 0, high: 1, log: true}}", "params.learning_rate.low: must be > 0"),
    ("params: {num_heads: {type: categorical, choices: []}}", "params.num_heads.choices: expected a non-empty list"),
    ("fixed: {epoch: 3}\nparams: {num_heads: {type: categorical, choices: [1]}}", "fixed.epoch: unknown setting"),
    ("objectives: [{metric: test_rouge_l, mode: max}]\nparams: {dropout: {type: float, low: 0, high: 1}}",
     "objectives[0].metric: must name a validation metric"),
    ("params: {loss_weights: {type: simplex, prioritise: oc}}", "params.loss_weights.prioritise"),
    ("sampler: grid\nconfigs: [{name: a, tasks: [vqa]}]", "configs[0].tasks: must be a non-empty list"),
    ("sampler: tpe\nconfigs: [{name: a}]", "configs: named configs need sampler: grid"),
    ("banana: 1", "banana: unknown key"),
])
def test_invalid_space_names_the_key(tmp_path, text, message):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(SearchSpaceError) as err:
        load_space(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_unknown_space_name_lists_shipped_ones():
    with pytest.raises(FileNotFoundError, match="shipped: .*smoke"):
        resolve("nope")
    assert {"paper", "weights", "full", "smoke"} <= set(available())


def test_config_file_keys_are_checked(tmp_path):
    cfg = tmp_path / "study.yaml"
    cfg.write_text("num_samples: 3\nsearch_space: smoke\n")
    args = parse_args(["--config", str(cfg), "--seed", "4"])
    assert (args.num_samples, args.search_space, args.seed) == (3, "smoke", 4)
    args = parse_args(["--config", str(cfg), "--num-samples", "7"])  # flags override the file
    assert args.num_samples == 7
    cfg.write_text("num_sample: 3\n")
    with pytest.raises(SystemExit):
        parse_args(["--config", str(cfg)])


def test_resource_plan_avoids_the_deadlock(tmp_path):
    space = load_space(resolve("smoke"))
    in_process = plan_resources(StudyContext(space, "", "", 0), {"CPU": 2.0}, None)
    assert in_process.trial_resources == {"cpu": 1.0} and in_process.max_concurrent == 2
    train = StudyContext(space, "", "", 0, workers_per_trial=2)
    plan = plan_resources(train, {"CPU": 4.0}, 5)
    assert plan.trial_resources == {"cpu": 0.01} and plan.max_concurrent == 1
    assert plan.worker_resources == {"CPU": 1.0}
    with pytest.raises(ValueError, match="one trial needs 2 worker"):
        plan_resources(StudyContext(space, "", "", 0, workers_per_trial=2, gpus_per_worker=1), {"CPU": 8.0}, None)


def test_resume_reuses_the_recorded_settings(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "study.json").write_text(json.dumps({"config": {
        "search_space": "smoke", "num_samples": 4, "max_epochs": 2, "name": "old", "resume": False}}))
    args = parse_args(["--storage", str(tmp_path), "--name", "x", "--resume"])
    assert (args.search_space, args.num_samples, args.max_epochs, args.name) == ("smoke", 4, 2, "x")


def test_existing_experiment_suggests_resume(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "study.json").write_text("{}")
    with pytest.raises(SystemExit, match="--name x --resume"):
        run_main(["--storage", str(tmp_path), "--name", "x", "--search-space", "smoke"])


# ---- sweeps -------------------------------------------------------------------------------------
def sweep(tmp_path, *extra):
    return run_main(["--storage", str(tmp_path), "--data-dir", str(tmp_path / "cohort"), *TINY, *extra])


@pytest.mark.slow
def test_paper_grid_sweep_writes_contract_files(tmp_path):
    exp = sweep(tmp_path, "--search-space", "paper", "--max-epochs", "1", "--name", "paper")
    tables = load(exp)
    trials, epochs, preds = tables["trials"], tables["epochs"], tables["predictions"]
    assert sorted(trials["param_config"]) == sorted(["STL-text", "STL-oc", "STL-ml", "MTL-EQ", "MTL-TP"])
    assert trials["trial_id"].is_unique and (trials["status"] == "TERMINATED").all()
    assert set(CONTRACT_COLUMNS) <= set(trials.columns)
    assert {"param_alpha", "param_beta", "param_gamma"} <= set(trials.columns)
    by = trials.set_index("param_config")
    assert by.loc["STL-oc", ["val_rouge_l", "val_ml_f1", "test_bleu4"]].isna().all()  # null, not zero
    assert by.loc["STL-oc", ["val_oc_accuracy", "test_oc_mae"]].notna().all()
    assert by.loc["MTL-TP", ["val_rouge_l", "val_oc_accuracy", "val_ml_f1"]].notna().all()
    assert set(EPOCH_COLUMNS) <= set(epochs.columns) and len(epochs) == 5
    stl_oc = epochs[epochs["trial_id"] == by.loc["STL-oc", "trial_id"]]
    assert stl_oc["val_loss_text"].isna().all() and stl_oc["weight_oc"].notna().all()
    assert set(preds["trial_id"]) == set(trials["trial_id"])
    study = json.loads((exp / "study.json").read_text())
    assert study["versions"]["ray"] and study["data"]["weights_used"] == "random"
    assert "RANDOM" in study["data"]["warning"]
    run = study["runs"][-1]  # where this invocation's time went
    assert all(run[k] >= 0 for k in ("prepare_seconds", "ray_start_seconds", "sweep_seconds", "report_seconds"))
    assert trials["seed"].is_unique and (trials["setup_seconds"] > 0).all()
    assert (trials["started_at"] < trials["finished_at"]).all() and (trials["eval_seconds"] > 0).all()
    for trial_id in trials["trial_id"]:  # each trial's own log, even in a reused trial process
        assert "model.train: epoch 1:" in (exp / "trials" / trial_id / "trial.log").read_text()


@pytest.mark.slow
def test_failing_trial_is_recorded_while_others_finish(tmp_path):
    space = tmp_path / "fails.yaml"
    space.write_text("sampler: grid\nfixed: {epochs: 1, d_model: 48, ff_dim: 32, batch_size: 8}\n"
                     "configs:\n  - {name: good, num_heads: 2}\n  - {name: bad, num_heads: 5}\n"
                     "  - {name: also-good, num_heads: 3}\n")
    exp = sweep(tmp_path, "--search-space", str(space), "--name", "f", "--max-failures", "0")
    trials = pd.read_parquet(exp / "trials.parquet").set_index("param_config")
    assert trials.loc["bad", "status"] == "ERROR"
    assert "d_model must be divisible by num_heads" in trials.loc["bad", "error"]
    assert (trials.loc[["good", "also-good"], "status"] == "TERMINATED").all()


@pytest.mark.slow
def test_trials_with_two_ray_train_workers(tmp_path):
    """Two trials, one after the other (the resources admit one), each a 2-worker Ray Train run:
    the second starts too (a trial reporting Tune's "done" would leak the first's workers)."""
    exp = sweep(tmp_path, "--search-space", "smoke", "--num-samples", "2", "--max-epochs", "1",
                "--workers-per-trial", "2", "--cpus-per-worker", "0.5", "--name", "ddp")
    trials = pd.read_parquet(exp / "trials.parquet")
    assert len(trials) == 2 and (trials["status"] == "TERMINATED").all()
    assert trials["val_rouge_l"].notna().all()  # evaluated and reported
    assert len(list((exp / "ray_train").glob("train-*"))) == 2, "each trial ran through Ray Train"
    for trial_dir in (exp / "trials").glob("*"):
        assert sorted(p.name for p in (trial_dir / "workers").glob("*.json")) == ["rank-0.json", "rank-1.json"]


def _finished(exp: Path) -> dict:
    return {p.parent.name: p.read_text() for p in (exp / "trials").glob("*/result.json")}


@pytest.mark.slow
def test_sigkill_then_resume_runs_every_trial_exactly_once(tmp_path):
    args = [sys.executable, str(ROOT / "study" / "run.py"), "--storage", str(tmp_path),
            "--data-dir", str(tmp_path / "cohort"), *TINY, "--search-space", "smoke",
            "--num-samples", "4", "--max-concurrent", "1", "--max-epochs", "2", "--name", "k"]
    exp = tmp_path / "k"
    proc = subprocess.Popen(args, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(_finished(exp)) < 1:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # driver, Ray and trial processes at once
    proc.wait()
    before = _finished(exp)
    assert 1 <= len(before) < 4
    mtimes = {t: (exp / "trials" / t / "result.json").stat().st_mtime for t in before}
    # exactly the resume command the tool prints: the settings come from study.json
    subprocess.run([sys.executable, str(ROOT / "study" / "run.py"), "--storage", str(tmp_path),
                    "--name", "k", "--resume"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    trials = consolidate(exp)
    assert len(trials) == 4 and trials["trial_id"].is_unique
    assert (trials["status"] == "TERMINATED").all()
    for trial_id, text in before.items():  # finished trials untouched
        assert _finished(exp)[trial_id] == text
        assert (exp / "trials" / trial_id / "result.json").stat().st_mtime == mtimes[trial_id]
        row = trials.set_index("trial_id").loc[trial_id]
        assert row["train_seconds"] == json.loads(text)["train_seconds"]
    epochs = pd.read_parquet(exp / "epochs.parquet")
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
