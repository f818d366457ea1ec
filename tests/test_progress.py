"""The console: one line per trial event, in the study's terms (a, b, c; the front), from the records."""
import numpy as np
import pandas as pd
import pytest

from study.sweep.progress import describe, progress_line, study_state


def test_describe_shows_weights_as_a_b_c_and_hides_sampler_variables():
    params = {"loss_weights_u1": 0.55, "loss_weights_u2": 0.71, "alpha": 0.328, "beta": 0.48, "gamma": 0.191,
              "num_heads": 3, "warmup_fraction": 0.1234}
    assert describe(params, 1) == "static a=0.33 b=0.48 c=0.19, num_heads=3, warmup_fraction=0.123 (seed 1)"
    assert describe({"weighting": "cagrad", "cagrad_c": 0.4389}) == "cagrad, cagrad_c=0.439"
    assert describe({"config": "MTL-EQ", "alpha": 1 / 3, "beta": 1 / 3, "gamma": 1 / 3}, 0) == \
        "MTL-EQ a=0.33 b=0.33 c=0.33 (seed 0)"


def test_study_state_by_hand():
    """Configurations A (seeds (0.4, 0.6), (0.6, 0.4): mean (0.5, 0.5)) and B (0.8, 0.2): both on
    the front; hypervolume 0.25 + 0.16 - 0.10 = 0.31 (natural bounds 0..1). A failed and a
    stopped trial count as such and add nothing to the front."""
    objectives = {"val_oc_accuracy": "max", "val_ml_f1": "max"}
    rows = [("a0", "A", "TERMINATED", 0.4, 0.6), ("a1", "A", "TERMINATED", 0.6, 0.4),
            ("b0", "B", "TERMINATED", 0.8, 0.2), ("c0", "C", "ERROR", np.nan, np.nan),
            ("d0", "D", "STOPPED", np.nan, np.nan)]
    trials = pd.DataFrame(rows, columns=["trial_id", "config_id", "status", *objectives]).assign(finished_at=1.0)
    state = study_state(trials, objectives, expected=8)
    assert (state["done"], state["failed"], state["stopped"], state["front"]) == (3, 1, 1, 2)
    assert state["best"] == {"val_oc_accuracy": (pytest.approx(0.8), 1), "val_ml_f1": (pytest.approx(0.5), 2)}
    assert state["hypervolume"] == pytest.approx(0.31)
    line, detail = progress_line("finished", "a=0.33 (seed 1)", {**state, "running": 2},
                                 elapsed=300, durations=[50.0, 60.0, 70.0, 80.0],
                                 scores={"val_oc_accuracy": 0.8, "val_ml_f1": np.nan})
    # 5 of 8 final, 3 to go, 2 at once: 1.5 x the median 65 s = 97.5 s; quartiles 1.5 x 57.5 and 72.5 s
    assert line == ("[  5:00] 5/8 finished a=0.33 (seed 1): oc_acc 0.800 | "
                    "front 2, HV 0.310 | ~100 s left (85-110 s)")
    assert len(line) <= 100
    assert detail.endswith("3 done, 2 running, 1 failed, 1 stopped | best oc_accuracy 0.800 (1 seed), "
                           "ml_f1 0.500 (2 seeds) | front 2, HV 0.310 | ~100 s left (85-110 s)")
    # three objectives and the weights leave no room for the tail: the time left goes, then the front
    crowded, _ = progress_line("finished", "static a=0.33 b=0.48 c=0.19 (seed 0)", {**state, "running": 2}, 300,
                               [60.0], {"val_rouge_l": 0.303, "val_oc_accuracy": 0.531, "val_ml_f1": 0.527})
    assert crowded == "[  5:00] 5/8 finished static a=0.33 b=0.48 c=0.19 (seed 0): rouge_l 0.303 oc_acc 0.531 ml_f1 0.527"
    empty = study_state(pd.DataFrame(), objectives, expected=4)
    assert progress_line("started", "x", {**empty, "running": 1}, 2, [])[0] == (
        "[  0:02] 0/4 started x | no front yet | time left: after a trial")
    long = progress_line("started", "cagrad, cagrad_c=0.439, num_heads=3, warmup_fraction=0.123, schedule=cosine, "
                         "dropout=0.1, d_model=120 (seed 2)", {**state, "running": 2}, 300, [60.0])[0]
    assert len(long) <= 100 and ", ... (seed 2) |" in long and long.endswith("~2 min left (rough)")
    # a started line keeps the front and the time left; the description keeps whole settings,
    # or the method and weights alone, and always the seed
    first = progress_line("started", "static a=0.33 b=0.48 c=0.19, num_heads=4, warmup_fraction=0.268, "
                          "schedule=constant (seed 0)", {**state, "running": 2}, 9, [60.0])[0]
    assert first == ("[  0:09] 5/8 started static a=0.33 b=0.48 c=0.19 (seed 0) | "
                     "front 2, HV 0.310 | ~2 min left (rough)")


def test_the_last_minutes_are_counted_in_seconds():
    """Under two minutes, whole minutes would read "~1 min left (1-1)": the estimate and the
    range of the middle half of the trial times are given in seconds (to 5 s)."""
    from study.sweep.progress import time_left

    # 2 trials left, 1 at a time; times 20, 30, 40, 50 s: median 35, quartiles 27.5 and 42.5 s
    assert time_left([20.0, 30.0, 40.0, 50.0], left=2, running=1) == "~70 s left (55-85 s)"
    assert time_left([600.0] * 4, left=2, running=1) == "~20 min left (20-20)"


def test_a_fixed_weighting_is_named_in_the_progress_line():
    """The weighting a space fixes (not searched, so not a param) still names the trial; a
    finished trial's line keeps the method, the weights and the seed."""
    assert describe({"num_heads": 2}, 0, weighting="pcgrad") == "pcgrad, num_heads=2 (seed 0)"
    assert describe({"alpha": 0.5, "beta": 0.25, "gamma": 0.25, "num_heads": 2}, 1, short=True) == \
        "static a=0.50 b=0.25 c=0.25 (seed 1)"
