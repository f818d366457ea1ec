"""Carry out a :class:`~study.spec.plan.StudyPlan`: prepare the data, start (or join) Ray, size the
trials, record ``study.json``, run the Tuner, watch the nodes, consolidate and report, and say
how it ended (the exit status). Everything that could be checked without Ray was checked when
the plan was built.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import time
from pathlib import Path

import pandas as pd
import ray

from model.device import AUTO
from study.analysis.configs import write_front
from study.results.files import write_json_atomic
from study.results.layout import FINAL_STATUSES, OPTUNA_DB, RECORD_TABLES, REPORT_FILES, STUDY, STUDY_LOG
from study.results.lock import DriverLock, StudyLocked
from study.results.lock import describe as describe_holder
from study.results.remote import bundle_dataset
from study.results.tables import consolidate
from data.cli import python_command
from study.spec.flags import resume_command
from study.spec.plan import StudyPlan, check_storage_reach
from study.spec.resources import plan_resources

from study.trial.prepare import prepare_data

from . import tuner as study_tune
from .nodes import NodeWatch, off_this_machine


def execute(plan: StudyPlan) -> tuple[Path, int]:
    """Run the planned study; ``(experiment directory, exit status)``: 0 when every trial
    finished, 1 when the sweep was interrupted or owes trials, or any trial ended in ERROR.
    The study's lock is held throughout: a second driver of the same study is refused before
    it does anything (:mod:`study.results.lock`)."""
    lock = DriverLock(plan.experiment_dir, plan.location.remote)
    try:
        lock.acquire()
    except StudyLocked as exc:
        raise SystemExit(str(exc)) from None
    try:
        return _run(plan, lock)
    finally:
        lock.release()


def _run(plan: StudyPlan, lock: DriverLock) -> tuple[Path, int]:
    args, location, space = plan.args, plan.location, plan.space
    experiment_dir = plan.experiment_dir
    setup_logging(experiment_dir, args.verbose)
    if lock.took_over:
        print(f"taking over the lock of a driver that ended ({describe_holder(lock.took_over)})")
    clock = time.perf_counter()
    timings = {}
    dataset = prepare_data(args, plan.cohort_dir)
    timings["prepare_seconds"] = time.perf_counter() - clock
    if dataset.meta.get("warning"):
        print(f"WARNING: {dataset.meta['warning']}")
    env = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"), "PYTHONWARNINGS": "ignore"}
    if not args.verbose:  # Ray's notice that token authentication is on (it is, as it should be)
        for handler in logging.getLogger("ray").handlers:
            handler.addFilter(lambda record: "Token authentication is enabled" not in record.getMessage())
    try:  # without --address: a Ray of our own, never one that `ray start` left running here
        ray.init(address=args.address or "local", log_to_driver=args.verbose, include_dashboard=False,
                 logging_level=logging.INFO if args.verbose else logging.WARNING,
                 runtime_env={"env_vars": env})
    except (ConnectionError, RuntimeError) as exc:
        raise SystemExit(f"--address {args.address}: {str(exc).strip().splitlines()[0]}") from None
    timings["ray_start_seconds"] = time.perf_counter() - clock - timings["prepare_seconds"]
    context = plan.context(_dataset_location(location, dataset, experiment_dir))
    try:
        check_storage_reach(args, location, off_this_machine(plan.shape, ray.util.get_node_ip_address()))
        resources = plan_resources(context, study_tune.cluster_resources(), args.max_concurrent, plan.shape)
    except (SystemExit, ValueError) as exc:
        ray.shutdown()
        raise SystemExit(str(exc)) from None
    if args.resume:
        location.read_study()  # keep created/resumed history from the shared copy
    write_study_json(experiment_dir, args, plan, dataset, resources)
    location.push(STUDY)
    print(f"study {args.name}: {plan.num_configs} configuration(s) of {space.path.name} x {space.repeats} seed(s) "
          f"= {plan.expected} trial(s), up to {resources.max_concurrent} at once, {args.workers_per_trial} "
          f"worker(s) each; results in {experiment_dir}")
    start = time.perf_counter()
    stopped_by_user = False
    trials = None
    watch = NodeWatch(plan.shape)
    try:
        if args.resume and study_tune.tune.Tuner.can_restore(location.ray_state_uri):
            tuner = study_tune.restore_tuner(context, resources, location.ray_state_uri)
        else:
            tuner = study_tune.build_tuner(context, resources, num_configs=plan.num_configs, repeats=space.repeats,
                                           name=args.name, storage=location.experiment_uri, asha=args.asha,
                                           verbose=args.verbose)
        with watch:
            tuner.fit()
    except KeyboardInterrupt:
        stopped_by_user = True
    finally:
        timings["sweep_seconds"] = time.perf_counter() - start
        trials = summarize(location, space, args)
        ray.shutdown()
        timings["report_seconds"] = time.perf_counter() - start - timings["sweep_seconds"]
        record_run(experiment_dir, {"started": time.time() - (time.perf_counter() - clock), **timings},
                   **watch.record())
        location.push(STUDY)
    started = float(os.environ.get("MTL_STUDY_STARTED", time.time() - (time.perf_counter() - clock)))
    print(f"wall time: {time.time() - started:.0f} s (since the command started; the sweep "
          f"{timings['sweep_seconds']:.0f} s)")
    owed = unfinished_trials(trials, plan.expected) if trials is not None else plan.expected
    failed = int((trials["status"] == "ERROR").sum()) if trials is not None and len(trials) else 0
    if failed:
        print(f"\n{failed} trial(s) failed: their errors are in {experiment_dir / 'trials.parquet'} "
              f"(column error) and trials/<id>/trial.log")
    if stopped_by_user or owed:
        print(f"\nthe sweep did not finish ({owed} of {plan.expected} trial(s) owed); continue it with\n  "
              f"{resume_command(args)}")
    return experiment_dir, 1 if (stopped_by_user or owed or failed) else 0


def _dataset_location(location, dataset, experiment_dir: Path) -> str:
    """Where trials find the prepared dataset: its path, or on remote storage one self-contained
    copy that every node fetches once (uploaded file by file, ``meta.json`` last)."""
    if not location.remote:
        return str(dataset.directory)
    rel = f"dataset/{dataset.meta['fingerprint']}"
    if not location.remote.exists(f"{rel}/meta.json"):
        bundle = bundle_dataset(dataset.directory, experiment_dir / rel)
        location.remote.upload(bundle, rel, last="meta.json")  # meta.json marks it complete
    return f"{location.experiment_uri}/{rel}"


def setup_logging(experiment_dir: Path, verbose: bool) -> None:
    experiment_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    file_handler = logging.FileHandler(experiment_dir / STUDY_LOG)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(file_handler)
    console = logging.StreamHandler()
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    root.addHandler(console)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)


def package_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("ray", "tensorflow", "keras", "optuna", "pandas", "pyarrow", "numpy", "bert-score",
                "rouge-score", "pycocoevalcap", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def write_study_json(experiment_dir: Path, args, plan, dataset, resources) -> None:
    path, space = experiment_dir / STUDY, plan.space
    previous = json.loads(path.read_text()) if path.exists() else {}
    record = {
        "created": previous.get("created", dt.datetime.now().isoformat(timespec="seconds")),
        "resumed": previous.get("resumed", []) + ([dt.datetime.now().isoformat(timespec="seconds")]
                                                  if args.resume else []),
        "command": " ".join(sys.argv), "config": vars(args),
        "search_space": {"path": str(space.path), "text": plan.space_text,
                         "objectives": space.objectives, "sampler": space.sampler_name,
                         "repeats": space.repeats, "baseline": space.baseline,
                         "tasks_removed": plan.tasks_removed},
        "seeds": {"study": args.seed, "data": args.data_seed if args.data == "synthetic" else None},
        "versions": package_versions(),
        "data": {"source": args.data, "prepared_dir": str(dataset.directory), **dataset.meta},
        # what the study asks; each trial's resolved precision and XLA are in trials.parquet
        "device_policy": {k: ("searched" if k in space.params else space.fixed.get(k, AUTO))
                          for k in ("precision", "jit_compile")} | {"rule": "model.device"},
        "resources": {"trial": resources.trial_resources, "worker": resources.worker_resources,
                      "max_concurrent": resources.max_concurrent, "sized_by": resources.sized_by},
        "runs": previous.get("runs", []),  # where each invocation's time went (see record_run)
    }
    write_json_atomic(path, record, indent=2)


def record_run(experiment_dir: Path, timings: dict, **facts) -> None:
    """Append this invocation's phase times (seconds) and other facts (the nodes that joined and
    ended while it ran) to study.json."""
    path = experiment_dir / STUDY
    record = json.loads(path.read_text())
    record["runs"] = record.get("runs", []) + [{**{k: round(v, 3) for k, v in timings.items()}, **facts}]
    write_json_atomic(path, record, indent=2)


def summarize(location, space, args):
    """Consolidate the records, print the front of configuration means, render the report, push.
    Returns the trial table."""
    from study.analysis.summary import front_table  # matplotlib and seaborn: only once the sweep ends

    experiment_dir = location.local_dir
    location.pull_records()
    trials = consolidate(experiment_dir)
    objectives = dict(zip(space.metrics, space.modes))
    configs = write_front(experiment_dir, trials, objectives)
    counts = trials["status"].value_counts().to_dict() if len(trials) else {}
    print(f"\n{len(trials)} trial(s) of {len(configs)} configuration(s) recorded: {counts}")
    if counts.get("STOPPED"):
        print(f"{counts['STOPPED']} stopped early by MO-ASHA (final, not interrupted: recorded with the "
              f"losses they were stopped on, never on the front)")
    if "pareto" in configs:
        with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
            print(f"\nPareto front of configuration means, mean [95 % CI] over seeds "
                  f"({', '.join(f'{m} {d}' for m, d in objectives.items())}):")
            print(front_table(configs, objectives).to_string(index=False))
    if not args.no_report and len(trials):
        from study.analysis.report import render

        try:
            render(experiment_dir, configs=configs)
            print(f"\nplots and summary: {experiment_dir / 'plots'}/, {experiment_dir / 'summary.md'}")
        except Exception as exc:  # the results are safe on disk; the report can be redone
            print(f"\ncould not render the report ({type(exc).__name__}: {exc}); "
                  f"retry with: {python_command()} -m study.report {experiment_dir}")
    location.push(*RECORD_TABLES, OPTUNA_DB, *REPORT_FILES, STUDY_LOG)
    where = location.experiment_uri if location.remote else experiment_dir
    print(f"\nresults: {where}/trials.parquet, configs.parquet, epochs.parquet, predictions.parquet, study.json")
    print(f"logs:    {where}/study.log (and trials/<id>/trial.log)")
    return trials


def unfinished_trials(trials, expected: int) -> int:
    """Trials the sweep owes: expected minus those with a final record. A trial stopped early by
    the scheduler (``STOPPED``) or failed for good (``ERROR``) is final, not interrupted."""
    final = int(trials["status"].isin(FINAL_STATUSES).sum()) if len(trials) else 0
    return max(0, expected - final)
