"""What keeps a study of a thousand configurations affordable: incremental records, bootstraps
drawn at once and over processes, one driver per study. Each against an independent oracle: a
full consolidation, the loop of draws it replaced, a single process, a process that holds the lock."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import study.analysis as A
from study.analysis import methods as M
from study.analysis import parallel
from study.results import lock as L
from study.results.tables import Records, collect, consolidate, load

ROOT = Path(__file__).resolve().parent.parent


def _trial(experiment: Path, tid: str, config: str, repeat: int, value: float, *, finished=True):
    d = experiment / "trials" / tid
    d.mkdir(parents=True)
    pd.DataFrame({"epoch": [1, 2], "val_loss_text": [1.0, 0.9], "train_loss_text": [1.1, 0.8],
                  "trial_id": tid}).to_parquet(d / "epochs.parquet", index=False)
    pd.DataFrame({"sample_id": [0, 1], "rouge_l": [value, value / 2], "trial_id": tid}).to_parquet(
        d / "predictions.parquet", index=False)
    record = {"trial_id": tid, "status": "TERMINATED", "error": None, "params": {"alpha": value},
              "settings": {"weighting": "static"}, "best_epoch": 2, "epochs_run": 2, "train_seconds": 1.0,
              "config_id": config, "repeat": repeat, "seed": repeat, "finished": 100.0 + len(list(d.parent.iterdir())),
              "metrics": {"val_rouge_l": value, "test_rouge_l": value - 0.01}}
    if finished:
        (d / "result.json").write_text(json.dumps(record))
    else:
        (d / "error.json").write_text(json.dumps({**record, "error": "boom", "time": 50.0}))


def test_records_added_one_by_one_equal_a_full_consolidation_and_load_sees_every_trial(tmp_path):
    exp = tmp_path / "study"
    _trial(exp, "a0", "A", 0, 0.3)
    records = Records(exp)
    assert len(records.open()) == 1  # a resumed sweep starts from every trial directory
    for tid, config, repeat, value, finished in (("a1", "A", 1, 0.35, True), ("b0", "B", 0, 0.2, False),
                                                 ("b1", "B", 1, 0.25, True)):
        _trial(exp, tid, config, repeat, value, finished=finished)
        records.add(tid)
        on_disk = pd.read_parquet(exp / "trials.parquet")
        pd.testing.assert_frame_equal(on_disk, collect(exp)[0], check_dtype=False)
    records.add("a1")  # a trial reported twice stays one row
    assert pd.read_parquet(exp / "trials.parquet")["trial_id"].tolist().count("a1") == 1
    # b0 failed, then a retry finished it: its result supersedes the error, as in a full collect
    (exp / "trials" / "b0" / "error.json").unlink()
    (exp / "trials" / "b0" / "result.json").write_text(json.dumps(
        {**json.loads((exp / "trials" / "b1" / "result.json").read_text()), "trial_id": "b0", "repeat": 0, "seed": 0}))
    records.add("b0")
    on_disk = pd.read_parquet(exp / "trials.parquet")
    assert on_disk.set_index("trial_id").loc["b0", "status"] == "TERMINATED"
    pd.testing.assert_frame_equal(on_disk, collect(exp)[0], check_dtype=False)
    # the epochs and predictions were consolidated at open() only; load() adds the others' parts
    assert set(pd.read_parquet(exp / "predictions.parquet")["trial_id"]) == {"a0"}
    live, full = load(exp), collect(exp)
    for name, table in (("epochs", full[1]), ("predictions", full[2])):
        key = ["trial_id", "epoch" if name == "epochs" else "sample_id"]
        pd.testing.assert_frame_equal(live[name].sort_values(key).reset_index(drop=True)[table.columns],
                                      table.sort_values(key).reset_index(drop=True), check_dtype=False)
    consolidate(exp)  # at the end of the sweep: the same tables, now whole on disk
    assert set(pd.read_parquet(exp / "predictions.parquet")["trial_id"]) == {"a0", "a1", "b0", "b1"}


def _ragged(n_configs=40, seed=1, k=3):
    rng = np.random.default_rng(seed)
    return {f"c{i}": rng.random((int(rng.integers(1, 5)), k)) for i in range(n_configs)}


def test_resampled_means_equal_the_draw_by_draw_loop_they_replaced():
    values = _ragged()
    rng = np.random.default_rng(7)  # the loop of earlier versions: draw by draw, config by config
    loop = np.array([[v[rng.integers(0, len(v), len(v))].mean(axis=0) for v in values.values()]
                     for _ in range(50)])
    at_once = M.resampled_means(values, 50, np.random.default_rng(7), max_bytes=3000)  # several blocks
    assert at_once.shape == loop.shape  # the same draws (a different pick would differ by ~0.1),
    np.testing.assert_allclose(at_once, loop, rtol=0, atol=1e-14)  # summed in another order


def _method_trials(n=24, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n):
        method = ("static", "pcgrad", "famo")[c % 3]
        for r in range(3):
            rows.append({"trial_id": f"{c}-{r}", "config_id": f"c{c}", "status": "TERMINATED",
                         "setting_weighting": method, "finished_at": float(len(rows)),
                         "val_rouge_l": rng.random() * 0.4, "val_ml_f1": rng.random()})
    return pd.DataFrame(rows)


def test_methods_bootstrap_over_processes_equals_one_process(monkeypatch):
    trials, objectives = _method_trials(), {"val_rouge_l": "max", "val_ml_f1": "max"}
    alone = A.method_comparison(trials, objectives, n_boot=60)
    monkeypatch.setattr(parallel, "MIN_SECONDS", 0.0)
    monkeypatch.setattr(parallel, "workers_available", lambda: 2)
    calls = []
    real = parallel.subprocess.Popen
    monkeypatch.setattr(parallel.subprocess, "Popen", lambda *a, **k: calls.append(a) or real(*a, **k))
    split = A.method_comparison(trials, objectives, n_boot=60)
    assert len(calls) == 2  # it did go to two processes
    pd.testing.assert_frame_equal(split, alone)


def test_a_failing_bootstrap_worker_says_why():
    with pytest.raises(RuntimeError, match="a bootstrap worker failed: .*ZeroDivisionError"):
        parallel.map_draws(_divide, np.zeros((4, 1)), 0.0, seconds_each=100.0, workers=2)


def _divide(block, by):
    return [1 / by for _ in block]


# ---- one driver per study -----------------------------------------------------------------------
def _holder(tmp_path: Path) -> subprocess.Popen:
    """A process that takes the study's lock and keeps it until killed."""
    code = ("import sys, time; from pathlib import Path; from study.results.lock import DriverLock; "
            "DriverLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "s")], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_driver_is_refused_naming_the_first_and_a_dead_one_does_not_block(tmp_path):
    holder = _holder(tmp_path)
    try:
        with pytest.raises(L.StudyLocked, match=rf"host {socket.gethostname()}, pid {holder.pid}, since 20"):
            L.DriverLock(tmp_path / "s").acquire()
    finally:
        holder.kill()
        holder.wait()
    lock = L.DriverLock(tmp_path / "s")  # the holder was killed: its lock is stale
    lock.acquire()
    assert lock.took_over["pid"] == holder.pid
    assert json.loads((tmp_path / "s" / "driver.lock").read_text())["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / "s" / "driver.lock").exists()


def test_a_lock_from_another_host_holds_while_its_heartbeat_is_fresh(tmp_path):
    path = tmp_path / "s" / "driver.lock"
    path.parent.mkdir()
    other = {"host": "node-7", "pid": 1, "since": "2026-12-01T10:00:00"}
    path.write_text(json.dumps({**other, "heartbeat": time.time() - 10}))
    with pytest.raises(L.StudyLocked, match="host node-7, pid 1, since 2026-12-01T10:00:00"):
        L.DriverLock(tmp_path / "s").acquire()
    path.write_text(json.dumps({**other, "heartbeat": time.time() - L.STALE_AFTER_SECONDS - 1}))
    lock = L.DriverLock(tmp_path / "s")
    lock.acquire()  # stale: its driver stopped beating
    lock.release()


def test_the_command_refuses_a_study_another_driver_runs_before_any_work(tmp_path):
    holder = _holder(tmp_path)
    try:
        out = subprocess.run([sys.executable, "study/run.py", "--storage", str(tmp_path), "--name", "s",
                              "--data-dir", str(tmp_path / "cohort"), "--n-synthetic", "40", "--image-size", "32",
                              "--weights", "none", "--no-report", "--search-space", "smoke"],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pid {holder.pid}" in lines[0] and "another driver is running this study" in lines[0]
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["driver.lock"]  # nothing started
    assert not (tmp_path / "cohort").exists()
