"""Benchmarks: their arithmetic on made-up numbers, and every one at --quick size through
``python -m benchmarks`` (checking what they report, never how fast anything ran)."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from benchmarks import search, sweep
from benchmarks.__main__ import BENCHMARKS
from benchmarks.__main__ import main as bench_main
from benchmarks.common import Finding, format_table
from search_spaces import resolve
from study.spec.space_file import load_space


def test_finding_checks_its_target_and_rejects_unknown_ops():
    assert Finding("1 x", "m", 1.05, 1.0, "s", 1.05, ("<=", 1.10)).met is True
    assert Finding("2 x", "m", 5.0, 40.0, "s", 8.0, (">=", 10)).met is False
    assert Finding("3 x", "m", 1.0, 2.0, "s", 2.0).met is None
    with pytest.raises(ValueError, match="target op must be one of .* got '<'"):
        Finding("1 x", "m", 1.0, 1.0, "s", 1.0, ("<", 1.0))
    table = format_table([Finding("1 Ray overhead", "two trials", 110.0, 100.0, "s", 1.1, ("<=", 1.10))])
    assert table.splitlines()[0].split() == ["benchmark", "measure", "ours", "baseline", "ratio", "target", "met"]
    assert "1.10" in table and "<= 1.1" in table and table.rstrip().endswith("yes")


def test_overhead_breakdown_is_the_difference_of_each_phase():
    """Each phase of the sweep minus the same phase of the plain loop, worked out by hand."""
    phases = ("before_first_trial", "trial_setup", "training", "evaluation", "between_trials",
              "after_last_trial", "trial_records")
    tune = dict(zip(phases, (12.0, 2.0, 100.0, 10.0, 4.0, 1.5, 0.5)))
    plain = dict(zip(phases, (6.0, 1.8, 99.0, 9.5, 0.0, 0.2, 0.3)))
    parts = sweep.overhead_breakdown(tune, plain)
    assert parts == pytest.approx({"before_first_trial": 6.0, "trial_setup": 0.2, "training": 1.0, "evaluation": 0.5,
                                   "between_trials": 4.0, "after_last_trial": 1.3, "trial_records": 0.2})



def test_paired_rounds_take_the_median_ratio_and_average_each_phase():
    """Three rounds worked out by hand: ratios 1.10, 1.25, 1.04; median 1.10, range 1.04-1.25."""
    zero = dict.fromkeys(sweep.BREAKDOWN, 0.0)

    def side(wall, before):
        return {**zero, "wall": wall, "before_first_trial": before}

    rounds = [{"tune": side(110.0, 10.0), "plain": side(100.0, 4.0)},
              {"tune": side(125.0, 9.0), "plain": side(100.0, 3.0)},
              {"tune": side(104.0, 8.0), "plain": side(100.0, 5.0)}]
    paired = sweep.paired_rounds(rounds)
    assert paired["ratios"] == pytest.approx([1.10, 1.25, 1.04])
    assert paired["median_ratio"] == pytest.approx(1.10)  # not the mean (1.13) nor the ratio of sums
    assert paired["median_round"] == 0  # the walls reported beside it: 110 s and 100 s, one round's
    four = sweep.paired_rounds([*rounds, {"tune": side(130.0, 9.0), "plain": side(100.0, 3.0)}])
    assert (four["median_round"], four["median_ratio"]) == (0, pytest.approx(1.10))  # lower middle of 1.04, 1.10, 1.25, 1.30
    assert paired["range"] == pytest.approx((1.04, 1.25))
    assert paired["mean_breakdown"]["before_first_trial"] == pytest.approx((6 + 6 + 3) / 3)
    assert [b["before_first_trial"] for b in paired["breakdowns"]] == pytest.approx([6.0, 6.0, 3.0])

def test_scaling_model_arithmetic():
    parts = dict(setup=2.0, train=90.0, evaluation=6.0, between=2.0, worker_start=20.0, efficiency=0.9)
    assert sweep.scaling_model(1, 1, **parts) == pytest.approx(3600 / 100)
    assert sweep.scaling_model(8, 1, **parts) == pytest.approx(8 * 3600 / 100)
    two = 2.0 + 2.0 + 90.0 / (2 * 0.9) + 6.0 + 20.0
    assert sweep.scaling_model(8, 2, **parts) == pytest.approx(4 * 3600 / two)
    assert sweep.scaling_model(1, 2, **parts) == 0  # a two-worker trial does not fit on one GPU


def test_search_simulation_runs_the_study_s_schedule_with_and_without_moasha():
    """Made-up learning curves (each task's loss falls with its own weight, over 4 epochs of 10 s,
    2 trials at once) for 160 s: without early stopping exactly 8 trials end, the last at
    4 x 10 s x 8 / 2 = 160 s; MO-ASHA stops some at its rung (epoch 1 of 4), and the freed time
    goes to more trials. Every sampler runs, and the hypervolume never shrinks nor exceeds the box."""
    space = load_space(resolve("weights"))

    def predict(settings):
        final = np.array([1 - settings["alpha"], 1 - settings["beta"], 1 - settings["gamma"]])
        return np.stack([final + 0.5 * (4 - e) for e in range(1, 5)])  # (epochs, objectives)

    bounds = np.array([[2.5, 0.0]] * 3)  # (worst, best) per objective
    for name in search.SAMPLERS:
        plain = search.simulate(space, name, 0, predict, bounds, epochs=4, epoch_seconds=10.0, seconds=160.0,
                                asha=False)
        assert [p["trials"] for p in plain] == list(range(1, 9)) and plain[-1]["seconds"] == pytest.approx(160.0)
        assert all(p["finished"] for p in plain)
        values = [p["hypervolume"] for p in plain]
        assert all(0.0 <= v <= 1.1 ** 3 for v in values) and np.all(np.diff(values) >= -1e-12)
        early = search.simulate(space, name, 0, predict, bounds, epochs=4, epoch_seconds=10.0, seconds=160.0,
                                asha=True)
        stopped = sum(not p["finished"] for p in early)
        assert stopped >= 1 and len(early) > 8 and all(p["seconds"] <= 160.0 for p in early)
    assert search.time_to(plain, plain[-1]["hypervolume"]) <= 160.0 and search.time_to(plain, 10.0) == float("inf")
    assert search.hypervolume_at(plain, 160.0) == plain[-1]["hypervolume"] and search.hypervolume_at(plain, 5.0) == 0.0
    f = search.features({"alpha": 0.5, "beta": 0.3, "gamma": 0.2, "num_heads": 3, "warmup_fraction": 0.1,
                         "schedule": "cosine"})
    np.testing.assert_allclose(f, [0.5, 0.3, 0.2, 0.5, 0.1, 0, 0, 1, 0])


@pytest.mark.slow
def test_every_benchmark_runs_at_quick_size_and_writes_results(tmp_path, capsys):
    out = tmp_path / "results.json"
    # the weighting benchmark starts one process per strategy (11 TensorFlow start-ups): make bench only
    quick = [name for name in BENCHMARKS if name != "weighting"]
    bench_main(["--quick", "--only", *quick, "--workdir", str(tmp_path / "work"), "--output", str(out)])
    printed = capsys.readouterr().out
    assert "benchmark  " in printed and f"results: {out}" in printed
    data = json.loads(out.read_text())
    assert data["quick"] is True and data["machine"]["cores"] >= 1 and data["machine"]["tensorflow"]
    by_name = {b["name"]: b for b in data["benchmarks"]}
    assert set(by_name) == {"feature_cache", "decoding", "throughput", "labeler", "iu_text", "search", "sweep", "scale"}
    findings = [f for b in data["benchmarks"] for f in b["findings"]]
    assert {f["benchmark"].split()[0] for f in findings} == {"1", "2", "3", "4", "5", "6", "7", "9", "10"}
    for f in findings:
        assert math.isfinite(f["ratio"]) and f["met"] in (True, False, None)
        assert f["target"] is None or f["target"][0] in ("<=", ">=")

    cache = by_name["feature_cache"]["details"]
    assert cache["first_preparation_images"] == 48  # a fresh workspace encodes every image once
    assert cache["second_preparation_images"] == 0 and cache["sweep_images"] == 0

    decoding = by_name["decoding"]["details"]["rows"][0]
    assert decoding["speedup"] == pytest.approx(decoding["naive_s"] / decoding["cached_s"])

    throughput = by_name["throughput"]["details"]
    assert throughput["step_flops"] > 0 and set(throughput["variants"]) == {"float32", "mixed bfloat16", "float32 + XLA"}
    assert 0 < throughput["matmul_share"] <= 1 and sum(p["share"] for p in throughput["profile"]) <= 1 + 1e-9

    real = by_name["iu_text"]["details"]["iu_xray"]  # every real report with a text, under the defaults
    assert real["reports"] == 3927 and real["vocabulary"] == 1000 and 0 < real["held_out_coverage"] < 1

    labeler = by_name["labeler"]["details"]
    assert labeler["reports"] == 200 and labeler["labeler_per_s"] > 0 and labeler["tokenizer_per_s"] > 0

    found = by_name["search"]["details"]
    assert set(found["surrogate_loo_r2"]) == {"val_loss_text", "val_loss_oc", "val_loss_ml"}
    assert len(found["real_trials"]) == 4 and found["epoch_seconds"] > 0
    assert set(found["curves"]) == {f"{n}{a}" for n in search.SAMPLERS for a in ("", " + MO-ASHA")}
    for key, curves in found["curves"].items():  # hypervolumes of 3 objectives, reference 1.1
        for points in curves.values():
            assert all(0 <= p["hypervolume"] <= 1.1 ** 3 and p["seconds"] <= found["seconds_budget"] + 1e-6
                       for p in points)
            assert len(points) == 6 if "ASHA" not in key else len(points) >= 6

    scale = by_name["scale"]["details"]  # this tree against the baseline's code, side by side
    assert [r["configs"] for r in scale["analysis"]] == [5, 10] and len(scale["bookkeeping"]) == 2
    for row in scale["analysis"]:
        parts = ("front", "hypervolume", "methods", "overfitting", "recipes")
        assert row["ours"]["report"] > 0 and row["ours"]["parts"] == pytest.approx(sum(row["ours"][p] for p in parts))
        if row["baseline"] is not None:  # a clone without history has no baseline to extract
            assert row["same_answers"] is True  # fronts, P(on front), hypervolumes, methods, recipes

    runs = by_name["sweep"]["details"]
    assert runs["same_settings"] is True and runs["train_worker_start"] > 0
    assert len(runs["rounds"]) == 1 == len(runs["ratios"])  # --quick: one round
    for rnd, parts in zip(runs["rounds"], runs["overhead_breakdowns"]):
        tune, plain = rnd["tune"], rnd["plain"]
        assert tune["trials"] == plain["trials"] == 2 and tune["ray_start"] > 0
        assert sum(parts.values()) == pytest.approx(tune["wall"] - plain["wall"], abs=0.01)


def test_packed_trials_per_gpu_hour_by_hand():
    """benchmarks.packing's table from hand-made records: 1 trial in 100 s is 36 per GPU-hour;
    4 trials from t=0 to t=200 s are 72 (gain 2); a failed trial does not count."""
    from benchmarks.packing import packing_rows

    one = pd.DataFrame({"status": ["TERMINATED"], "started_at": [10.0], "finished_at": [110.0]})
    four = pd.DataFrame({"status": ["TERMINATED"] * 4 + ["ERROR"], "started_at": [0.0, 5.0, 5.0, 10.0, 0.0],
                         "finished_at": [150.0, 190.0, 200.0, 180.0, 999.0]})
    table = packing_rows({4: four, 1: one}).set_index("trials_per_gpu")
    assert table.loc[1, "trials_per_gpu_hour"] == pytest.approx(36.0)
    assert table.loc[4, "trials"] == 4 and table.loc[4, "span_s"] == 200.0
    assert table.loc[4, "trials_per_gpu_hour"] == pytest.approx(72.0) and table.loc[4, "gain"] == pytest.approx(2.0)


def test_report_text_statistics_by_hand():
    """benchmarks.iu_text on written reports: ten short ones and one of 60 words seen once."""
    from benchmarks.iu_text import text_statistics

    reports = ["The heart is normal. XXXX."] * 10 + [" ".join(f"w{i}" for i in range(60))]
    stats = text_statistics(reports)
    # words: the heart is normal . xxxx . -> 7 tokens, 9 with <start>/<end>; the long one 62
    assert stats["reports"] == 11 and stats["distinct_words"] == 6 + 60
    assert stats["vocabulary"] == 4 + 6  # specials + the words seen twice in the 70 % split
    assert stats["length_max"] == 62 and stats["truncated_share"] == pytest.approx(1 / 11)
    assert stats["length_quantiles"]["0.5"] == 9.0
    assert stats["deidentified_share"] == pytest.approx(10 / (70 + 60))
    # 4 reports are held out: with the long one among them, 21 of 81 tokens are known, else all 28
    if stats["held_out_reports_with_unknown"] == pytest.approx(1 / 4):
        assert stats["held_out_coverage"] == pytest.approx(21 / 81)
    else:
        assert stats["held_out_reports_with_unknown"] == 0 and stats["held_out_coverage"] == 1.0
