"""MO-ASHA: non-dominated sorting against Optuna's, crowding distance and promotions by hand."""
import math

import numpy as np
import pytest
from ray.tune.schedulers import TrialScheduler

from study.analysis.fronts import crowding_distance, nondominated_ranks, promotion_order
from study.sweep.moasha import MultiObjectiveASHA


def test_nondominated_ranks_match_optuna():
    from optuna.study._multi_objective import _fast_non_domination_rank

    rng = np.random.default_rng(0)
    values = rng.integers(0, 6, (60, 3)).astype(float)  # many ties and dominated layers
    ours = nondominated_ranks(values, ["min", "min", "min"])
    assert ours.max() >= 3
    np.testing.assert_array_equal(ours, _fast_non_domination_rank(values))
    flipped = nondominated_ranks(-values, ["max", "max", "max"])
    np.testing.assert_array_equal(flipped, ours)
    # one objective to minimise (a single-task trial's rung): the smaller loss ranks first
    np.testing.assert_array_equal(nondominated_ranks(np.array([[0.5], [0.3]]), ["min"]), [1, 0])
    with pytest.raises(ValueError, match=r"directions must be 'max' or 'min', got \['up'\]"):
        nondominated_ranks(values, ["min", "up", "min"])


def test_crowding_distance_by_hand():
    """Points (0, 4), (1, 2), (3, 1), (4, 0): spans 4 and 4. (1, 2): (3 - 0) / 4 + (4 - 1) / 4 =
    1.5; (3, 1): (4 - 1) / 4 + (2 - 0) / 4 = 1.25; the two extremes infinite."""
    d = crowding_distance(np.array([[0, 4], [1, 2], [3, 1], [4, 0]], float))
    assert np.isinf(d[0]) and np.isinf(d[3]) and d[1:3] == pytest.approx([1.5, 1.25])
    order = promotion_order(np.array([[0, 4], [1, 2], [3, 1], [4, 0], [5, 5]], float), ["min", "min"])
    assert order.tolist()[-1] == 4 and order.tolist()[2:4] == [1, 2]  # dominated last; 1.5 before 1.25


class _Trial:
    def __init__(self, trial_id):
        self.trial_id = trial_id


def _report(scheduler, trial_id, epoch, text=math.nan, oc=math.nan, ml=math.nan):
    return scheduler.on_trial_result(None, _Trial(trial_id), {
        "epoch": epoch, "val_loss_text": text, "val_loss_oc": oc, "val_loss_ml": ml, "evaluated": False})


def test_moasha_promotes_by_every_objective_not_the_text_loss_alone():
    """Rungs at epochs 1 and 3 (grace 1, factor 3, 9 epochs); losses (text, oc, ml), worked by hand.
    A (1, 2, 1) is first at the rung: goes on. B (3, 3, 3) is dominated by A: second of two,
    ceil(2/3) = 1 place: stops. C (0.5, 4, 4) shares front 0 with A, both extremes of a two-point
    front (infinite crowding), the earlier arrival first: third of three, 1 place: stops.
    D (9, 0.1, 0.5) is on front 0 with A and C and an extreme (infinite crowding) where A is not:
    second of four, ceil(4/3) = 2 places: goes on. E and F are dominated by D: stop. ASHA on the
    text loss alone would have kept C and stopped D, the trial with the best OC and ML losses."""
    s = MultiObjectiveASHA(max_t=9, grace_period=1, reduction_factor=3)
    assert s.milestones == [1, 3]
    assert _report(s, "A", 1, text=1.0, oc=2.0, ml=1.0) == TrialScheduler.CONTINUE
    assert _report(s, "B", 1, text=3.0, oc=3.0, ml=3.0) == TrialScheduler.STOP  # dominated by A
    assert _report(s, "C", 1, text=0.5, oc=4.0, ml=4.0) == TrialScheduler.STOP  # front, but crowded out
    for tid, oc in (("D", 0.1), ("E", 0.2), ("F", 0.3)):  # best OC losses, worst text losses
        _report(s, tid, 1, text=9.0, oc=oc, ml=0.5)
    assert _report(s, "A", 2, text=0.9, oc=1.9, ml=0.9) == TrialScheduler.CONTINUE  # between rungs
    assert s.stopped == {"B": 1, "C": 1, "E": 1, "F": 1}
    # the evaluation report at the end is never stopped
    assert s.on_trial_result(None, _Trial("B"), {"epoch": 9, "evaluated": True}) == TrialScheduler.CONTINUE


def test_single_task_trials_are_compared_on_the_tasks_they_have():
    s = MultiObjectiveASHA(max_t=4, grace_period=1, reduction_factor=2)
    _report(s, "mtl", 1, text=1.0, oc=1.0, ml=1.0)
    # an OC-only trial: compared on the OC loss with trials that have it (the MTL trial), and wins
    assert _report(s, "stl-oc", 1, oc=0.5) == TrialScheduler.CONTINUE
    assert _report(s, "stl-oc-2", 1, oc=2.0) == TrialScheduler.STOP  # third of three on OC: ceil(3/2) = 2
    assert _report(s, "stl-ml", 1, ml=0.1) == TrialScheduler.CONTINUE  # best on ML of two


def test_moasha_refuses_a_budget_without_rungs():
    with pytest.raises(ValueError, match="grace_period < max_t"):
        MultiObjectiveASHA(max_t=1, grace_period=1)
