"""Watching and steering a sweep, on one small real sweep with MO-ASHA (3 configurations x 2 seeds
of 4 epochs): stopped trials are final and off the front; optuna-dashboard serves the study and,
through its HTTP API, lists every configuration with the objective values that trials.parquet
(written by the trials themselves, independently of the searcher) gives."""
import contextlib
import io
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from study.analysis import configs_with_front, pareto_mask
from study.run import run_study

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--n-synthetic", "40", "--image-size", "32", "--weights", "none", "--no-report"]
OBJECTIVES = ["val_rouge_l", "val_oc_accuracy", "val_ml_f1"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("watch")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        experiment, status = run_study(["--storage", str(root), "--name", "w", "--search-space", "smoke",
                                        "--num-samples", "3", "--repeats", "2", "--max-epochs", "4", "--asha",
                                        "--data-dir", str(root / "cohort"), *TINY])
    return experiment, status, out.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_moasha_stops_trials_that_stay_final_and_off_the_front(sweep):
    """Rungs at epochs 1 and 3, factor 3: after the first trial at a rung, only the best third
    goes on, so some of the six are stopped. Each is STOPPED with the losses it was stopped on
    (its last epoch in epochs.parquet), has no objectives and is never on the front; the sweep
    counts it as stopped (nothing owed, exit status 0); the console has one line per event."""
    experiment, status, out = sweep
    trials = pd.read_parquet(experiment / "trials.parquet")
    stopped = trials[trials["status"] == "STOPPED"]
    assert status == 0 and len(trials) == 6 and 1 <= len(stopped) <= 5
    assert f"{len(stopped)} stopped early by MO-ASHA" in out and "did not finish" not in out
    events = re.findall(r"^\[\s*\d+:\d\d\] \d+/\d+ (\w+) ", out, flags=re.M)  # one console line per event
    assert events.count("stopped") == len(stopped) and events.count("finished") == 6 - len(stopped)
    assert "w_u1" not in out  # Ray's table only with --verbose
    epochs = pd.read_parquet(experiment / "epochs.parquet")
    for _, row in stopped.iterrows():
        last = epochs[epochs["trial_id"] == row["trial_id"]].sort_values("epoch").iloc[-1]
        assert row["epochs_run"] < 4 and row["last_val_loss_text"] == pytest.approx(last["val_loss_text"])
        assert np.isnan(row["val_rouge_l"])
    configs = configs_with_front(trials, dict.fromkeys(OBJECTIVES, "max"))
    only_stopped = set(stopped["config_id"]) - set(trials.loc[trials["status"] == "TERMINATED", "config_id"])
    assert configs["pareto"].any() and not configs.loc[configs["config_id"].isin(only_stopped), "pareto"].any()


@pytest.mark.slow
def test_dashboard_serves_the_study_with_its_trials_and_values(sweep):
    experiment = sweep[0]
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "study.dashboard", str(experiment), "--port", str(port)],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                studies = _get(f"{base}/api/studies")["study_summaries"]
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise AssertionError("the dashboard did not answer")
                time.sleep(0.5)
        assert [s["study_name"] for s in studies] == ["w"]
        detail = _get(f"{base}/api/studies/{studies[0]['study_id']}")
        assert detail["objective_names"] == OBJECTIVES
        trials = pd.read_parquet(experiment / "trials.parquet")
        done = trials[trials["status"] == "TERMINATED"]
        means = done.groupby("param_loss_weights_u1")[OBJECTIVES].mean()  # over the seeds that finished
        shown = {}
        for t in detail["trials"]:
            params = {p["name"]: p["param_internal_value"] for p in t["params"]}
            shown[params["loss_weights_u1"]] = t
        assert set(shown) == set(trials["param_loss_weights_u1"])  # every configuration, once
        for u1, t in shown.items():
            if u1 in means.index:
                assert t["state"] == "Complete"
                np.testing.assert_allclose(t["values"], means.loc[u1].to_numpy(), rtol=1e-9)
                attrs = {a["key"]: float(a["value"]) for a in t["user_attrs"] if a["key"] in "abc"}
                alpha = trials.loc[trials["param_loss_weights_u1"] == u1, "param_alpha"].iloc[0]
                assert attrs["a"] == pytest.approx(alpha)  # the weights as a, b, c
            else:  # every seed stopped by MO-ASHA
                assert t["state"] == "Pruned"
            assert t["intermediate_values"]  # per-epoch curves, stopped trials included
        front = {round(u, 12) for u in means.index[pareto_mask(means.to_numpy(), ["max"] * 3)]}
        best = {round(next(p["param_internal_value"] for p in t["params"] if p["name"] == "loss_weights_u1"), 12)
                for t in detail["best_trials"]}
        assert best == front
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_dashboard_refuses_a_directory_without_a_study(tmp_path):
    done = subprocess.run([sys.executable, "-m", "study.dashboard", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "no optuna.db" in done.stderr and "Traceback" not in done.stderr
