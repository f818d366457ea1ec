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
from study.spec.flags import parse_args
from study.spec.space import SearchSpaceError, stick_breaking
from study.spec.space_file import load_space
from study.results.layout import CONTRACT_COLUMNS, EPOCH_COLUMNS
from study.results.tables import consolidate, load
from study.spec.request import StudyContext
from study.spec.resources import plan_resources

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--n-synthetic", "40", "--image-size", "32", "--weights", "none", "--no-report"]


# ---- search spaces ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["paper", "weights", "full", "smoke", "ablation", "methods"])
def test_shipped_spaces_load(name):
    space = load_space(resolve(name))
    assert space.distributions()
    assert space.modes and set(space.modes) <= {"min", "max"}


IU_FIELDS = {"vitals": False, "categoricals": False, "chief_complaint": True, "icd_title": False, "acuity": False}


@pytest.mark.parametrize("name", ["paper", "weights", "full", "smoke", "ablation", "methods"])
def test_every_shipped_space_runs_on_a_cohort_without_acuity(name):
    """IU X-ray has no acuity: the OC task goes from every point of every shipped space, its
    objectives with it, and what is left passes the space's checks."""
    space = load_space(resolve(name))
    oc_metrics = [m for m in space.metrics if m.startswith("val_oc")]
    space.cohort_fields = IU_FIELDS
    line = space.drop_tasks({"oc": "acuity"}, "the cohort C")
    assert line.startswith(f"the cohort C has no acuity: task oc removed (its head, loss term and objective(s) "
                           f"{', '.join(oc_metrics) or 'none'})")
    assert space.check() == [] and space.metrics and not any(m.startswith("val_oc") for m in space.metrics)
    for sampled in space._corners():
        settings, _ = space.materialize(sampled)
        assert settings["tasks"] and "oc" not in settings["tasks"] and settings.get("beta", 0.0) == 0.0


def test_the_paper_grid_without_acuity_drops_stl_oc_and_rescales_the_weights():
    space = load_space(resolve("paper"))
    line = space.drop_tasks({"oc": "acuity"}, "the cohort C")
    assert line.endswith("; configuration(s) STL-oc dropped")
    assert [c["name"] for c in space.configs] == ["STL-text", "STL-ml", "MTL-EQ", "MTL-TP"]
    settings, record = space.materialize({"config": "MTL-TP"})  # 0.6, 0.3, 0.1 without b: 0.6 / 0.7, 0.1 / 0.7
    assert settings["tasks"] == ["text", "ml"]
    assert (record["alpha"], record["beta"], record["gamma"]) == pytest.approx((6 / 7, 0.0, 1 / 7))
    assert space.materialize({"config": "MTL-EQ"})[1]["alpha"] == pytest.approx(0.5)


def test_searched_task_choices_keep_what_the_cohort_can_train(tmp_path):
    path = tmp_path / "tasks.yaml"
    path.write_text("sampler: random\nfixed: {epochs: 1}\nparams:\n"
                    "  tasks: {type: categorical, choices: [[text], [oc], [text, oc], [text, oc, ml]]}\n")
    space = load_space(path)
    space.drop_tasks({"oc": "acuity"}, "the cohort C")
    assert space.params["tasks"]["choices"] == [["text"], ["text", "ml"]]  # [oc] gone, [text, oc] is [text]
    path.write_text("sampler: random\nobjectives: [{metric: val_rouge_l, mode: max}]\nfixed: {epochs: 1}\n"
                    "params:\n  tasks: {type: categorical, choices: [[oc]]}\n")
    with pytest.raises(SearchSpaceError, match=r"params.tasks: every choice trains only the oc task"):
        load_space(path).drop_tasks({"oc": "acuity"}, "the cohort C")


def test_a_space_needing_the_clinical_inputs_is_refused_on_a_cohort_without_any():
    space = load_space(resolve("ablation"))
    space.cohort_fields = {g: False for g in ("vitals", "categoricals", "chief_complaint", "icd_title")}
    problems = space.check()
    assert len(problems) == 1 and "configs[clinical-only]: modalities: 'clinical' needs a non-imaging input" in problems[0]


def test_paper_grid_has_the_five_named_configurations():
    space = load_space(resolve("paper"))
    assert [c["name"] for c in space.configs] == ["STL-text", "STL-oc", "STL-ml", "MTL-EQ", "MTL-TP"]
    settings, record = space.materialize({"config": "MTL-TP"})
    assert settings["alpha"] > settings["beta"] > settings["gamma"]
    assert (settings["num_heads"], settings["ff_dim"], settings["learning_rate"], settings["batch_size"],
            settings["patience"], settings["warmup_fraction"]) == (3, 256, 3e-5, 32, 10, 0.1)
    assert record["config"] == "MTL-TP"


def test_simplex_parameterisation():
    """Uniform on the simplex means Dirichlet(1, 1, 1): each weight is Beta(1, 2), and b / (1 - a)
    is uniform and independent of a. Kolmogorov-Smirnov tests against those laws pass, and the
    same tests reject the naive map a = u1 (which is not uniform on the simplex)."""
    from scipy.stats import beta, kstest, uniform

    rng = np.random.default_rng(0)
    u = rng.random((20000, 2))
    w = np.array([stick_breaking(*row) for row in u])
    assert np.allclose(w.sum(1), 1.0) and (w >= 0).all()
    for j in range(3):
        assert kstest(w[:, j], beta(1, 2).cdf).pvalue > 0.01, j
    small_a = w[:, 0] < np.median(w[:, 0])  # the split of the rest does not depend on a
    for part in (small_a, ~small_a):
        assert kstest(w[part, 1] / (1 - w[part, 0]), uniform.cdf).pvalue > 0.01
    naive_a = u[:, 0]
    assert kstest(naive_a, beta(1, 2).cdf).pvalue < 1e-6
    ordered = np.array([stick_breaking(*rng.random(2), prioritise="text") for _ in range(100)])
    assert (ordered[:, 0] >= ordered[:, 1]).all() and (ordered[:, 1] >= ordered[:, 2]).all()


def test_repeats_and_baseline_in_a_space(tmp_path):
    space = load_space(resolve("paper"))
    from study.spec.space import group_of

    assert space.repeats == 3 and space.baseline == "STL"
    assert [group_of(c["name"], "STL") for c in space.configs] == ["STL", "STL", "STL", "MTL-EQ", "MTL-TP"]
    ablation = load_space(resolve("ablation"))
    assert ablation.baseline == "both" and ablation.grid_size() == 3
    settings, _ = ablation.materialize({"config": "image-only"})
    assert settings["modalities"] == ["image"] and settings["tasks"] == ["text", "oc", "ml"]
    space.fix({"learning_rate": 1e-3})
    assert space.materialize({"config": "MTL-TP"})[0]["learning_rate"] == 1e-3
    with pytest.raises(ValueError, match="alpha: the space varies it"):
        space.fix({"alpha": 0.5})
    with pytest.raises(SearchSpaceError, match="--set.lr: unknown setting"):
        space.fix({"lr": 0.5})


def test_trial_seed_depends_on_study_seed_configuration_and_repeat_only():
    from study.spec.request import config_id_of, trial_seed

    config = {"loss_weights_u1": 0.25, "num_heads": 3}
    seeds = {trial_seed(0, config, r) for r in range(3)}
    assert len(seeds) == 3 and all(0 <= s < 2 ** 31 for s in seeds)
    assert trial_seed(0, dict(reversed(list(config.items()))), 1) == trial_seed(0, config, 1)  # key order
    assert trial_seed(1, config, 0) != trial_seed(0, config, 0)
    assert trial_seed(0, {**config, "num_heads": 4}, 0) != trial_seed(0, config, 0)
    assert config_id_of(config) == config_id_of(dict(reversed(list(config.items()))))
    space = load_space(resolve("smoke"))
    a = StudyContext(space, "", "/x", 7).request("trial-a", {**config, "loss_weights_u2": 0.5, "repeat": 2})
    b = StudyContext(space, "", "/x", 7).request("trial-b", {**config, "loss_weights_u2": 0.5, "repeat": 2})
    assert a.seed == b.seed and a.config_id == b.config_id and a.repeat == 2  # trial ids do not matter


def _search(tmp_path, space, repeats):
    from study.results.optuna_db import optuna_storage
    from study.sweep.search import StudySearch

    return StudySearch(space, repeats=repeats, seed=0, study_name="s", storage=optuna_storage(tmp_path))


def test_repeated_search_tells_each_objective_mean_and_survives_a_save(tmp_path):
    """Three seeds per configuration: Optuna is told each objective's mean over the seeds that
    reported it (worked out by hand), the groups survive a save and restore in the middle, and a
    configuration whose every seed failed is FAIL."""
    import optuna

    space = load_space(resolve("smoke"))
    search = _search(tmp_path, space, 3)
    configs = [search.suggest(f"t{i}") for i in range(6)]
    params = [{k: v for k, v in c.items() if k != "repeat"} for c in configs]
    assert params[0] == params[1] == params[2] != params[3] == params[4] == params[5]
    assert [c["repeat"] for c in configs] == [0, 1, 2, 0, 1, 2]
    search.on_trial_complete("t0", {"val_rouge_l": 0.2, "val_oc_accuracy": 0.9, "val_ml_f1": 0.5})
    search.on_trial_complete("t1", {"val_rouge_l": 0.4, "val_oc_accuracy": float("nan"), "val_ml_f1": 0.7})
    search.on_trial_complete("t3", None, error=True)
    search.save(str(tmp_path / "searcher.pkl"))  # a resumed sweep continues half-finished groups
    restored = _search(tmp_path, space, 3)
    restored.restore(str(tmp_path / "searcher.pkl"))
    restored.on_trial_complete("t2", {"val_rouge_l": 0.6, "val_oc_accuracy": 0.7, "val_ml_f1": 0.9})
    restored.on_trial_complete("t4", None, error=True)
    restored.on_trial_complete("t5", None, error=True)
    first, second = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials
    assert first.state.name == "COMPLETE" and first.values == pytest.approx([0.4, 0.8, 0.7])
    assert first.params == params[0] and second.params == params[3]
    assert second.state.name == "FAIL"  # every seed failed: the configuration failed


def test_searcher_study_on_disk_records_curves_and_takes_back_a_draw_lost_in_a_kill(tmp_path):
    """The Optuna study in optuna.db: per-epoch means over seeds (by hand) while trials run, the
    objectives' means at the end. A configuration drawn after the last checkpoint (a SIGKILL
    before Ray saved its state) is drawn again with the same parameters after the restore: the
    storage holds each configuration once. On the old code (no reconciliation) the storage
    held three trials, one RUNNING for ever."""
    import optuna

    space = load_space(resolve("smoke"))
    search = _search(tmp_path, space, 2)
    first = [search.suggest("t0"), search.suggest("t1")]
    search.on_trial_result("t0", {"epoch": 1, "val_loss_text": 2.0, "val_loss_oc": 1.0, "evaluated": False})
    search.on_trial_result("t1", {"epoch": 1, "val_loss_text": 4.0, "val_loss_oc": 3.0, "evaluated": False})
    search.on_trial_result("t0", {"epoch": 2, "val_loss_text": 1.0, "val_loss_oc": 0.5, "evaluated": False})
    search.on_trial_complete("t0", {"val_rouge_l": 0.2, "val_oc_accuracy": 0.5, "val_ml_f1": 0.1})
    search.on_trial_complete("t1", {"val_rouge_l": 0.4, "val_oc_accuracy": 0.3, "val_ml_f1": 0.3})
    search.save(str(tmp_path / "searcher.pkl"))
    lost = search.suggest("t2")  # drawn, then the driver is killed before the next checkpoint

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    done = optuna.load_study(study_name="s", storage=url).trials[0]
    assert done.state == optuna.trial.TrialState.COMPLETE
    assert done.values == pytest.approx([0.3, 0.4, 0.2])  # means over the two seeds
    assert done.intermediate_values == pytest.approx({1: 3.0 + 2.0, 2: 1.0 + 0.5})  # sum of task means
    assert done.user_attrs["val_loss_text"] == pytest.approx([3.0, 1.0])
    assert done.params == {k: v for k, v in first[0].items() if k != "repeat"}

    restored = _search(tmp_path, space, 2)
    restored.restore(str(tmp_path / "searcher.pkl"))
    again = restored.suggest("t2")
    assert again == lost
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert len(trials) == 2 and [t.state.name for t in trials] == ["COMPLETE", "RUNNING"]


def test_curves_are_written_at_most_every_few_seconds_and_whole_at_the_end(tmp_path, monkeypatch):
    """A trial waits at each report until the driver has handled it, so the per-epoch record is
    written at most once per CURVE_WRITE_SECONDS per configuration; nothing is lost: a seed's end
    and a searcher save write every epoch. Two seeds interleaved as concurrent trials report: each
    epoch's intermediate value is the sum of that epoch's task means over the seeds that reached
    it (hand-computed). The old code wrote every epoch and gave epoch 1 the value of epoch 2, the
    newest epoch then in the curve."""
    import optuna

    from study.sweep import search as search_module

    clock = [1000.0]
    monkeypatch.setattr(search_module.time, "monotonic", lambda: clock[0])
    search = _search(tmp_path, load_space(resolve("smoke")), 2)
    search.suggest("t0"), search.suggest("t1")
    writes = []
    for name in ("set_trial_user_attr", "set_trial_intermediate_value"):
        real = getattr(search.storage, name)
        monkeypatch.setattr(search.storage, name, lambda *a, _real=real, _name=name: (writes.append(_name), _real(*a)))
    url = f"sqlite:///{tmp_path / 'optuna.db'}"

    def stored():
        return optuna.load_study(study_name="s", storage=url).trials[0]

    search.on_trial_result("t0", {"epoch": 1, "val_loss_text": 2.0, "val_loss_oc": 1.0})
    assert stored().intermediate_values == {1: 3.0} and len(writes) == 3  # the first epoch: at once
    clock[0] += 1.0
    search.on_trial_result("t0", {"epoch": 2, "val_loss_text": 1.0, "val_loss_oc": 0.5})
    search.on_trial_result("t1", {"epoch": 1, "val_loss_text": 4.0, "val_loss_oc": 3.0})
    assert len(writes) == 3 and stored().intermediate_values == {1: 3.0}  # within the interval: kept
    clock[0] += search_module.CURVE_WRITE_SECONDS
    search.on_trial_result("t0", {"epoch": 3, "val_loss_text": 0.5, "val_loss_oc": 0.25})
    assert stored().intermediate_values == pytest.approx({1: 3.0 + 2.0, 2: 1.5, 3: 0.75})
    search.on_trial_result("t1", {"epoch": 2, "val_loss_text": 3.0, "val_loss_oc": 2.0})
    search.save(str(tmp_path / "searcher.pkl"))  # a checkpoint: optuna.db holds what it holds
    assert stored().intermediate_values == pytest.approx({1: 5.0, 2: (1.0 + 3.0) / 2 + (0.5 + 2.0) / 2, 3: 0.75})
    search.on_trial_result("t1", {"epoch": 3, "val_loss_text": 1.5, "val_loss_oc": 1.25})
    search.on_trial_complete("t1", {"val_rouge_l": 0.4, "val_oc_accuracy": 0.3, "val_ml_f1": 0.3})
    done = stored()
    assert done.intermediate_values == pytest.approx({1: 5.0, 2: 3.25, 3: (0.5 + 1.5) / 2 + (0.25 + 1.25) / 2})
    assert done.user_attrs["val_loss_text"] == pytest.approx([3.0, 2.0, 1.0])


def test_unfinished_counts_stopped_and_failed_trials_as_final(tmp_path):
    """Statuses as the records give them: a finished, a failed and a stopped trial are final; a
    trial with only a checkpoint (killed mid-training) is owed."""
    from study.sweep.driver import unfinished_trials

    records = {"a": ("result.json", {"trial_id": "a", "status": "TERMINATED", "error": None, "best_epoch": 1,
                                     "epochs_run": 1, "train_seconds": 1.0, "params": {}, "metrics": {}}),
               "b": ("error.json", {"trial_id": "b", "error": "boom", "params": {}}),
               "c": ("stopped.json", {"trial_id": "c", "error": "stopped by the scheduler", "params": {}}),
               "d": ("checkpoint/checkpoint.json", {"latest": "epoch-0001"})}
    for tid, (name, payload) in records.items():
        (tmp_path / "trials" / tid / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "trials" / tid / name).write_text(json.dumps(payload))
    trials = consolidate(tmp_path)
    assert sorted(trials["status"]) == ["ERROR", "STOPPED", "TERMINATED"]
    assert unfinished_trials(trials, 4) == 1 and unfinished_trials(trials, 6) == 3


def test_finish_times_come_from_the_records_not_the_files(tmp_path):
    """A pull from object storage rewrites every record file; the order in which trials finished
    (hypervolume history) must survive that, so it comes from the trial's own clock."""
    for i, (name, payload) in enumerate([
        ("result.json", {"trial_id": "a", "status": "TERMINATED", "error": None, "best_epoch": 1,
                         "epochs_run": 1, "train_seconds": 1.0, "params": {}, "metrics": {}, "finished": 200.0}),
        ("error.json", {"trial_id": "b", "error": "boom", "params": {}, "time": 100.0})]):
        d = tmp_path / "trials" / payload["trial_id"]
        d.mkdir(parents=True)
        (d / name).write_text(json.dumps(payload))
        os.utime(d / name, (5000.0 + i, 5000.0 + i))  # as written by the last pull
    trials = consolidate(tmp_path).set_index("trial_id")
    assert trials.loc["a", "finished_at"] == 200.0 and trials.loc["b", "finished_at"] == 100.0


def test_resume_uses_the_recorded_search_space(tmp_path):
    from study.spec.plan import load_study_space
    from study.results.remote import Location

    space_file = tmp_path / "mine.yaml"
    space_file.write_text("sampler: random\nnum_samples: 2\nparams: {num_heads: {type: categorical, choices: [2]}}\n")
    location = Location(str(tmp_path), "x")
    location.local_dir.mkdir()
    recorded = space_file.read_text()
    (location.local_dir / "study.json").write_text(json.dumps({"config": {}, "search_space": {"path": str(space_file), "text": recorded}}))
    space_file.write_text("sampler: random\nnum_samples: 9\nparams: {num_heads: {type: categorical, choices: [3]}}\n")
    args = parse_args(["--storage", str(tmp_path), "--name", "x", "--resume", "--search-space", str(space_file)])
    space, text = load_study_space(args, location)
    assert text == recorded and space.num_samples == 2 and space.params["num_heads"]["choices"] == [2]


def test_conditional_space_samples_each_strategy_s_settings_in_its_own_trials_only():
    """methods.yaml through Ray's OptunaSearch, as the study builds it (define-by-run plus the
    budget's enqueued turns): the YAML's budget is met exactly, the strategies take turns, and
    every trial's sampled parameters are exactly those its strategy reads."""
    from ray.tune.search.optuna import OptunaSearch

    space = load_space(resolve("methods"))
    budget = space.params["weighting"]["budget"]
    search = OptunaSearch(space.suggest, metric=space.metrics, mode=space.modes, sampler=space.sampler(0),
                          points_to_evaluate=space.enqueued())
    reads = {"static": {"loss_weights_u1", "loss_weights_u2"}, "dwa": {"dwa_temperature"},
             "gradnorm": {"gradnorm_alpha"}, "cagrad": {"cagrad_c"}, "famo": {"famo_lr"}, "dbmtl": {"dbmtl_beta"}}
    order = []
    for i in range(sum(budget.values())):
        config = search.suggest(f"t{i}")
        order.append(config["weighting"])
        assert set(config) - {"weighting"} == reads.get(config["weighting"], set()), config
        settings, record = space.materialize(config)
        assert ("alpha" in record) == (config["weighting"] == "static"), record
        search.on_trial_complete(f"t{i}", {m: 0.1 * (i % 7) for m in space.metrics})
    assert {m: order.count(m) for m in budget} == budget
    assert order[:len(budget)] == list(budget)  # every strategy once before any twice
    static = [c for c in space._corners() if c.get("weighting") == "static"]
    assert static and all("cagrad_c" not in c for c in static)  # corners are conditional too


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
    ("repeats: 0\nparams: {num_heads: {type: categorical, choices: [1]}}", "repeats: expected a positive integer"),
    ("baseline: STL\nparams: {num_heads: {type: categorical, choices: [1]}}", "baseline: a baseline names a group"),
    ("sampler: grid\nbaseline: STL\nconfigs: [{name: MTL}]", "baseline: no config is named 'STL'"),
    ("sampler: grid\nconfigs: [{name: a, modalities: [image, audio]}]", "configs[0].modalities: must be a non-empty"),
    # conditional parameters and budgets per choice
    ("params: {cagrad_c: {type: float, low: 0.1, high: 0.9}}",
     "params.cagrad_c: only weighting cagrad reads it, and the default weighting is 'static'"),
    ("fixed: {weighting: pcgrad}\nparams: {loss_weights: {type: simplex}}",
     "params.loss_weights: only weighting static reads it, and fixed.weighting is 'pcgrad'"),
    ("params: {weighting: {type: categorical, choices: [static, dwa]}, famo_lr: {type: float, low: 0.01, high: 0.1}}",
     "params.famo_lr: only weighting famo reads it, and params.weighting.choices is ['static', 'dwa']"),
    ("params: {weighting: {type: categorical, choices: [static, dwa], budget: {static: 2}}, loss_weights: {type: simplex}}",
     "params.weighting.budget: expected configurations for every choice ['static', 'dwa']"),
    ("params: {weighting: {type: categorical, choices: [static, dwa], budget: {static: 2, dwa: 0}}}",
     "params.weighting.budget.dwa: expected a positive integer"),
    ("params: {weighting: {type: categorical, choices: [static, pcgrad], budget: {static: 2, pcgrad: 3}}, "
     "loss_weights: {type: simplex}}", "params.weighting.budget.pcgrad: 3 configurations of pcgrad would all be the same"),
    ("num_samples: 5\nparams: {weighting: {type: categorical, choices: [static, pcgrad], budget: {static: 2, pcgrad: 1}}, "
     "loss_weights: {type: simplex}}", "num_samples: must be the sum of params.weighting.budget (3) or absent, got 5"),
    ("sampler: grid\nparams: {weighting: {type: categorical, choices: [static, pcgrad], budget: {static: 1, pcgrad: 1}}}",
     "params.weighting.budget: a budget per choice is for the samplers that draw"),
    ("params: {dropout: {type: float, low: 0.0, high: 0.3, choices: [1]}}", "params.dropout.choices: unknown key"),
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
    with pytest.raises(SystemExit, match=r"study.yaml: unknown key\(s\) \['num_sample'\]; known: \[.*'num_samples'"):
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
def test_paper_grid_sweep_writes_contract_files_and_reproduces(tmp_path):
    """The paper grid with two seeds per configuration: the contract files and one row per trained
    model. Run again with one seed per configuration, one trial at a time: the same seed and
    identical validation metrics for every (configuration, repeat 0), whatever else the study
    holds and however many trials ran at once."""
    exp = sweep(tmp_path, "--search-space", "paper", "--max-epochs", "1", "--repeats", "2", "--name", "paper")
    tables = load(exp)
    trials, epochs, preds = tables["trials"], tables["epochs"], tables["predictions"]
    names = ["STL-text", "STL-oc", "STL-ml", "MTL-EQ", "MTL-TP"]
    assert sorted(trials["param_config"]) == sorted(names * 2)
    assert trials["trial_id"].is_unique and (trials["status"] == "TERMINATED").all()
    assert sorted(trials["repeat"]) == [0] * 5 + [1] * 5 and trials.groupby("config_id")["repeat"].nunique().eq(2).all()
    assert set(CONTRACT_COLUMNS) <= set(trials.columns)
    assert {"param_alpha", "param_beta", "param_gamma"} <= set(trials.columns)
    by = trials[trials["repeat"] == 0].set_index("param_config")
    assert by.loc["STL-oc", ["val_rouge_l", "val_ml_f1", "test_bleu4"]].isna().all()  # null, not zero
    assert by.loc["STL-oc", ["val_oc_accuracy", "test_oc_mae"]].notna().all()
    assert by.loc["MTL-TP", ["val_rouge_l", "val_oc_accuracy", "val_ml_f1"]].notna().all()
    assert set(EPOCH_COLUMNS) <= set(epochs.columns) and len(epochs) == 10
    stl_oc = epochs[epochs["trial_id"] == by.loc["STL-oc", "trial_id"]]
    assert stl_oc["val_loss_text"].isna().all() and stl_oc["weight_oc"].notna().all()
    assert set(preds["trial_id"]) == set(trials["trial_id"])
    assert {"cider", "bleu_correct4", "bleu_testlen"} <= set(preds.columns)
    configs = pd.read_parquet(exp / "configs.parquet").set_index("param_config")
    assert len(configs) == 5 and (configs["repeats_finished"] == 2).all()
    mtl_tp = trials[trials["param_config"] == "MTL-TP"]["val_rouge_l"]
    assert configs.loc["MTL-TP", "val_rouge_l_mean"] == pytest.approx(mtl_tp.mean())
    study = json.loads((exp / "study.json").read_text())
    assert study["versions"]["ray"] and study["data"]["weights_used"] == "random"
    assert study["seeds"] == {"study": 0, "data": 0} and study["search_space"]["repeats"] == 2
    assert "RANDOM" in study["data"]["warning"]
    # the device rule on this CPU: asked "auto", every trial trained in float32 without XLA
    assert study["device_policy"] == {"precision": "auto", "jit_compile": "auto", "rule": "model.device"}
    assert (trials["device"] == "cpu").all() and (trials["precision"] == "float32").all()
    assert not trials["jit_compile"].astype(bool).any()
    run = study["runs"][-1]  # where this invocation's time went
    assert all(run[k] >= 0 for k in ("prepare_seconds", "ray_start_seconds", "sweep_seconds", "report_seconds"))
    assert trials["seed"].is_unique and (trials["setup_seconds"] > 0).all()
    assert (trials["started_at"] < trials["finished_at"]).all() and (trials["eval_seconds"] > 0).all()
    for trial_id in trials["trial_id"]:  # each trial's own log, even in a reused trial process
        assert "model.train: epoch 1:" in (exp / "trials" / trial_id / "trial.log").read_text()
        # finished: the evaluated weights and the configs that rebuild the model, no resume checkpoint
        kept = exp / "trials" / trial_id
        assert (kept / "weights.npz").exists() and not (kept / "checkpoint").exists()
        assert json.loads((kept / "model.json").read_text())["model_config"]["num_heads"] >= 1
    assert not (exp / "driver.lock").exists()  # the driver let go of its study
    # Tune's own loggers are off: no second copy of every result in ray/tune_*/ (and no torch
    # import in the driver for the TensorBoard one)
    assert list((exp / "ray").glob("experiment_state-*.json"))  # Tune's state is there
    logged = [p for p in (exp / "ray").rglob("*") if p.name in ("progress.csv", "result.json", "params.pkl")
              or p.name.startswith("events.out.tfevents")]
    assert not logged, logged

    again = load(sweep(tmp_path, "--search-space", "paper", "--max-epochs", "1", "--repeats", "1",
                       "--name", "paper-again", "--max-concurrent", "1"))["trials"]
    key = ["config_id", "repeat"]
    first = trials[trials["repeat"] == 0].set_index(key).sort_index()
    second = again.set_index(key).sort_index()
    assert len(second) == 5
    assert first.index.equals(second.index) and (first["seed"] == second["seed"]).all()
    val = [c for c in trials if c.startswith("val_")]
    pd.testing.assert_frame_equal(first[val], second[val])


@pytest.mark.slow
def test_failing_trial_is_recorded_while_others_finish(tmp_path):
    space = tmp_path / "fails.yaml"
    # a divergence only training can see (a setting the driver can check, such as 5 heads for
    # d_model 48, is refused before any trial starts: tests/test_inputs.py)
    space.write_text("sampler: grid\nfixed: {epochs: 1, d_model: 48, ff_dim: 32, batch_size: 8}\n"
                     "configs:\n  - {name: good, num_heads: 2}\n"
                     "  - {name: bad, num_heads: 2, learning_rate: 1.0e+30, clip_norm: null, warmup_fraction: 0.0}\n"
                     "  - {name: also-good, num_heads: 3}\n")
    from study.run import run_study

    exp, status = run_study(["--storage", str(tmp_path), "--data-dir", str(tmp_path / "cohort"), *TINY,
                             "--search-space", str(space), "--name", "f", "--max-failures", "0"])
    assert status == 1  # the process exits non-zero: a trial failed
    trials = pd.read_parquet(exp / "trials.parquet").set_index("param_config")
    assert trials.loc["bad", "status"] == "ERROR"
    assert "NonFiniteLossError: non-finite" in trials.loc["bad", "error"]
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
    assert len(list((exp / "ray" / "train").glob("train-*"))) == 2, "each trial ran through Ray Train"
    for trial_dir in (exp / "trials").glob("*"):
        assert sorted(p.name for p in (trial_dir / "workers").glob("*.json")) == ["rank-0.json", "rank-1.json"]


def _finished(exp: Path) -> dict:
    return {p.parent.name: p.read_text() for p in (exp / "trials").glob("*/result.json")}


@pytest.mark.slow
def test_sigkill_then_resume_runs_every_trial_exactly_once(tmp_path):
    """Two configurations x two seeds, killed after the first finished trial, then resumed with
    the printed command: every (configuration, seed) trained once, finished ones untouched."""
    args = [sys.executable, str(ROOT / "study" / "run.py"), "--storage", str(tmp_path),
            "--data-dir", str(tmp_path / "cohort"), *TINY, "--search-space", "smoke",
            "--num-samples", "2", "--repeats", "2", "--max-concurrent", "1", "--max-epochs", "2", "--name", "k"]
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
    # exactly the resume command the tool prints, pasted in the project's directory: the settings
    # come from study.json
    import shlex

    from study.spec.flags import resume_command

    hint = resume_command(parse_args(["--storage", str(tmp_path), "--name", "k", "--resume"]))
    assert hint.startswith(".venv/bin/python study/run.py ") or hint.startswith(f"{sys.executable} study/run.py ")
    subprocess.run(shlex.split(hint), cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=600)
    trials = consolidate(exp)
    assert len(trials) == 4 and trials["trial_id"].is_unique
    assert (trials["status"] == "TERMINATED").all()
    # two configurations, each with both seeds exactly once, even across the kill
    assert sorted(trials.groupby("config_id")["repeat"].apply(sorted).tolist()) == [[0, 1], [0, 1]]
    for trial_id, text in before.items():  # finished trials untouched
        assert _finished(exp)[trial_id] == text
        assert (exp / "trials" / trial_id / "result.json").stat().st_mtime == mtimes[trial_id]
        row = trials.set_index("trial_id").loc[trial_id]
        assert row["train_seconds"] == json.loads(text)["train_seconds"]
    epochs = pd.read_parquet(exp / "epochs.parquet")
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    # the searcher's Optuna study on disk agrees with the records the trials wrote themselves
    import optuna

    study = optuna.load_study(study_name="k", storage=f"sqlite:///{exp / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]  # each configuration once
    objectives = ["val_rouge_l", "val_oc_accuracy", "val_ml_f1"]
    means = trials.groupby("config_id")[objectives + ["param_loss_weights_u1"]].mean()
    told = {round(t.params["loss_weights_u1"], 12): t for t in study.trials}
    for _, row in means.iterrows():
        t = told[round(row["param_loss_weights_u1"], 12)]
        assert t.values == pytest.approx(row[objectives].tolist())
        assert sorted(t.intermediate_values) == [1, 2]
    from study.analysis.fronts import pareto_mask

    front = {round(t.params["loss_weights_u1"], 12) for t in study.best_trials}
    on_front = pareto_mask(means[objectives].to_numpy(), ["max"] * 3)  # trials.parquet's front of means
    assert front == {round(u, 12) for u in means.loc[on_front, "param_loss_weights_u1"]}
