"""optuna-dashboard on a finished smoke study: through its HTTP API it lists the study, every
configuration and their objective values, which agree with trials.parquet (written by the trials
themselves, independently of the searcher's study)."""
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from study.analysis import pareto_mask
from study.run import main as run_main

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--n-synthetic", "40", "--image-size", "32", "--weights", "none", "--no-report"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("dash")
    run_main(["--storage", str(root), "--name", "smoke", "--search-space", "smoke", "--num-samples", "3",
              "--repeats", "2", "--max-epochs", "1", "--data-dir", str(root / "cohort"), *TINY])
    return root / "smoke"


@pytest.mark.slow
def test_dashboard_serves_the_study_with_its_trials_and_values(smoke_study):
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "study.dashboard", str(smoke_study), "--port", str(port)],
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
                    raise AssertionError(f"the dashboard did not answer: {server.stdout.read() if server.poll() is not None else ''}")
                time.sleep(0.5)
        assert [s["study_name"] for s in studies] == ["smoke"]
        detail = _get(f"{base}/api/studies/{studies[0]['study_id']}")
        assert detail["objective_names"] == ["val_rouge_l", "val_oc_accuracy", "val_ml_f1"]
        trials = pd.read_parquet(smoke_study / "trials.parquet")
        objectives = ["val_rouge_l", "val_oc_accuracy", "val_ml_f1"]
        means = trials.groupby("param_loss_weights_u1")[objectives].mean()
        shown = {}
        for t in detail["trials"]:
            params = {p["name"]: p["param_internal_value"] for p in t["params"]}
            shown[params["loss_weights_u1"]] = t
        assert len(shown) == len(means) == 3 and all(t["state"] == "Complete" for t in shown.values())
        for u1, row in means.iterrows():
            np.testing.assert_allclose(shown[u1]["values"], row.to_numpy(), rtol=1e-9)
            attrs = {a["key"]: float(a["value"]) for a in shown[u1]["user_attrs"] if a["key"] in "abc"}
            alpha = trials.loc[trials["param_loss_weights_u1"] == u1, "param_alpha"].iloc[0]
            assert attrs["a"] == pytest.approx(alpha)  # the weights as a, b, c
        on_front = pareto_mask(means.to_numpy(), ["max"] * 3)  # the front of trials.parquet's means
        front = {round(u, 12) for u in means.index[on_front]}
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
