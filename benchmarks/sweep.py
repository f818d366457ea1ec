"""1. Ray overhead and 6. concurrency: the same trials run three ways, side by side.

    python -m benchmarks.sweep [--quick]

* **tune, 1 at a time**: ``python study/run.py`` (space ``benchmarks/spaces/sweep.yaml``: the
  default study's model and space, 40 epochs, about a minute per trial here), one trial at a time
  with every CPU;
* **plain loop**: ``python -m benchmarks.plain_loop``, the same trials (the settings and seeds
  the sweep recorded) with the same data, epochs and evaluation, in one process without Ray;
* **tune, 2 at a time**: ``study/run.py`` again, two trials at once with half the CPUs each
  (the random sampler's fixed seed draws the same settings).

The first two run in rounds, back to back, the order alternating (three rounds, one with
``--quick``): on this kind of machine whole stretches of epochs run at half speed in any process,
so one pair of runs says mostly which side drew more of them. The overhead is the median of the
rounds' ratios, reported with their range.

Each wall time is measured from outside the process. Where the difference goes comes from what
the runs record: ``study.json`` (data check, Ray start), each trial's ``started_at`` and
``finished_at``, setup / training / evaluation seconds. Ray Train's worker start (only paid by
trials with ``--workers-per-trial`` > 1) is timed separately with a two-worker Train run that only
sets up ``MultiWorkerMirroredStrategy``. A scaling model for a cluster is computed from these
parts (see the README for its assumptions).
"""
from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

from .common import ROOT, Finding, Outcome, cli, run_python

SPACE = ROOT / "benchmarks" / "spaces" / "sweep.yaml"
N_TRIALS = 2
ROUNDS = {"full": 3, "quick": 1}  # (study/run.py, plain loop) pairs
DATA_PARALLEL_EFFICIENCY = 0.9  # assumed for the scaling model (not measurable on this machine)


def _mwms_ready(config):
    """A Train worker that only does the start-up every multi-worker trial does."""
    import tensorflow as tf

    tf.distribute.MultiWorkerMirroredStrategy()


def train_worker_start(storage: Path, workers: int, cpus_per_worker: float) -> float:
    """Seconds for Ray Train to start ``workers`` TensorFlow workers and form their strategy."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # ray.train.tensorflow imports TensorFlow here
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer

    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "3"}})
    try:
        trainer = TensorflowTrainer(
            _mwms_ready,
            scaling_config=ScalingConfig(num_workers=workers, resources_per_worker={"CPU": cpus_per_worker}),
            run_config=RunConfig(name=f"worker-start-{time.time():.0f}", storage_path=str(storage)))
        start = time.perf_counter()
        trainer.fit()
        return time.perf_counter() - start
    finally:
        ray.shutdown()


def timeline(trial_root: Path, started: float, wall: float) -> dict:
    """Where one run's wall time went, from the trial records under ``trial_root``."""
    from study.results.tables import collect

    trials, epochs, _ = collect(trial_root)
    seconds = epochs.loc[epochs["epoch"] > 1, "seconds"]  # the first epoch also traces the steps
    first, last = trials["started_at"].min(), trials["finished_at"].max()
    duration = (trials["finished_at"] - trials["started_at"]).sum()
    out = {"wall": wall, "trials": len(trials),
           "before_first_trial": first - started, "after_last_trial": started + wall - last,
           "first_start_to_last_finish": last - first,
           "trial_setup": trials["setup_seconds"].sum(), "training": trials["train_seconds"].sum(),
           "evaluation": trials["eval_seconds"].sum(),
           "trial_records": duration - trials[["setup_seconds", "train_seconds", "eval_seconds"]].sum().sum(),
           "between_trials": last - first - duration,  # meaningful when trials run one at a time
           "mean_trial": duration / len(trials),
           # epochs far above the median: on a shared 2-vCPU machine they come in any process
           "epoch_median": float(seconds.median()), "slow_epochs": int((seconds > 1.5 * seconds.median()).sum()),
           "epochs": int(len(seconds)),
           "settings": sorted(json.dumps(p, sort_keys=True) for p in
                              trials.filter(like="param_").to_dict("records"))}
    study_path = trial_root / "study.json"
    if study_path.exists():
        run = json.loads(study_path.read_text())["runs"][-1]
        out.update(data_check=run["prepare_seconds"], ray_start=run["ray_start_seconds"])
    return out


BREAKDOWN = ("before_first_trial", "trial_setup", "training", "evaluation", "trial_records",
             "between_trials", "after_last_trial")


def overhead_breakdown(tune: dict, plain: dict) -> dict:
    """Seconds tune spent beyond the plain loop, per phase (the parts sum to the wall difference)."""
    return {k: tune[k] - plain[k] for k in BREAKDOWN}


def scaling_model(gpus: int, workers_per_trial: int, *, setup: float, train: float, evaluation: float,
                  between: float, worker_start: float, efficiency: float = DATA_PARALLEL_EFFICIENCY) -> float:
    """Trials per hour on ``gpus`` GPUs (one worker per GPU) with ``workers_per_trial`` each.

    A trial takes setup + between-trial overhead + train / (K * efficiency) + evaluation (on one
    worker) + Ray Train's worker start when K > 1; floor(G / K) trials run at once.
    """
    k = workers_per_trial
    trial = setup + between + train / (k * (efficiency if k > 1 else 1.0)) + evaluation + (worker_start if k > 1 else 0.0)
    return (gpus // k) * 3600.0 / trial


def paired_rounds(rounds: list[dict]) -> dict:
    """The Ray-overhead answer from rounds of (study/run.py, plain loop) run back to back.

    Each round's ratio pairs two runs minutes apart, so a slow stretch of the machine that lasts
    longer than a round hits both sides; the answer is the median of the rounds' ratios with
    their range, and each phase's difference averaged over the rounds.

    The median round (the lower middle one for an even number of rounds) is named, so that the
    two wall times reported beside the ratio are one round's and their quotient is the ratio.
    """
    ratios = [r["tune"]["wall"] / r["plain"]["wall"] for r in rounds]
    per_round = [overhead_breakdown(r["tune"], r["plain"]) for r in rounds]
    middle = ratios.index(statistics.median_low(ratios))
    return {"ratios": ratios, "median_ratio": ratios[middle], "median_round": middle,
            "range": (min(ratios), max(ratios)), "breakdowns": per_round,
            "mean_breakdown": {k: statistics.fmean(b[k] for b in per_round) for k in BREAKDOWN}}


def run(ws) -> Outcome:
    ws.dataset()  # prepared once, before any timing
    cores = os.cpu_count() or 2
    stamp = f"{time.time():.0f}"
    runs, logs = ws.root / "runs", ws.root / "logs"
    flags = ["study/run.py", "--search-space", str(SPACE), "--num-samples", str(N_TRIALS), "--seed", "0",
             "--storage", str(runs), *ws.study_flags(), *(["--max-epochs", "1"] if ws.quick else [])]
    one_at_a_time = ["--cpus-per-worker", str(cores), "--max-concurrent", "1"]
    first = runs / f"sweep-{stamp}-one-at-a-time-1"  # the plain loop re-runs what this one recorded

    def tune(r):
        name = f"sweep-{stamp}-one-at-a-time-{r}"
        t0, wall = run_python([*flags, "--name", name, *one_at_a_time], logs / f"sweep-tune1-{r}.log")
        return timeline(runs / name, t0, wall)

    def plain(r):
        out = runs / f"sweep-{stamp}-plain-{r}"
        t0, wall = run_python(["-m", "benchmarks.plain_loop", str(first), str(out)], logs / f"sweep-plain-{r}.log")
        return timeline(out, t0, wall)

    rounds = []
    for r in range(1, ROUNDS["quick" if ws.quick else "full"] + 1):
        # the order alternates (round 1 must record the trials first) so that neither side is
        # always the one that runs later
        order = ("tune", "plain") if r % 2 else ("plain", "tune")
        print(f"round {r}: {N_TRIALS} trials, {' then '.join(order)} ...", flush=True)
        rounds.append({side: (tune if side == "tune" else plain)(r) for side in order})
        print(f"  {rounds[-1]['tune']['wall']:.1f} s vs {rounds[-1]['plain']['wall']:.1f} s "
              f"({rounds[-1]['tune']['wall'] / rounds[-1]['plain']['wall']:.3f}x)", flush=True)
    paired = paired_rounds(rounds)
    print("tune, 2 at a time ...", flush=True)
    name2 = f"sweep-{stamp}-two-at-a-time"
    t0, wall = run_python([*flags, "--name", name2, "--cpus-per-worker", str(cores / 2), "--max-concurrent", "2"],
                          logs / "sweep-tune2.log")
    measured = {"tune1": rounds[0]["tune"], "plain": rounds[0]["plain"], "tune2": timeline(runs / name2, t0, wall)}
    print("Ray Train worker start (2 workers) ...", flush=True)
    worker_start = train_worker_start(runs, 2, cores / 2)

    tune1, plain, tune2 = measured["tune1"], measured["plain"], measured["tune2"]
    per_hour = {k: 3600 * m["trials"] / m["wall"] for k, m in measured.items()}
    steady = {k: 3600 * m["trials"] / m["first_start_to_last_finish"] for k, m in measured.items()}
    n = tune1["trials"]
    parts = {"setup": tune1["trial_setup"] / n, "train": tune1["training"] / n,
             "evaluation": tune1["evaluation"] / n,
             "between": (tune1["between_trials"] + tune1["trial_records"]) / n, "worker_start": worker_start}
    model = {f"{g} GPU, {k} worker(s)/trial": scaling_model(g, k, **parts)
             for g in (1, 2, 4, 8, 16) for k in (1, 2, 4) if k <= g}
    low, high = paired["range"]
    print(f"\nwall time for {n} trials of {tune1['mean_trial']:.0f} s, {len(rounds)} round(s): study/run.py "
          f"{paired['median_ratio']:.3f}x the plain loop (median; rounds {low:.3f}x to {high:.3f}x)")
    print("  where the difference goes (s, mean over rounds): "
          + ", ".join(f"{k.replace('_', ' ')} {v:+.1f}" for k, v in paired["mean_breakdown"].items())
          + " (trial setup: opening the dataset and building the model)")
    print(f"  of which Ray start {statistics.fmean(r['tune']['ray_start'] for r in rounds):.1f} s; Ray Train worker "
          f"start (2 workers, only with --workers-per-trial > 1): {worker_start:.1f} s per trial")
    for r, rnd in enumerate(rounds, 1):
        t, b = rnd["tune"], rnd["plain"]
        print(f"  round {r}: median epoch {t['epoch_median']:.2f} s vs {b['epoch_median']:.2f} s; over 1.5x the "
              f"median: {t['slow_epochs']} of {t['epochs']} vs {b['slow_epochs']} of {b['epochs']} "
              "(their number decides most of a round's ratio; docs/benchmarks.md)")
    same = all(r["tune"]["settings"] == tune2["settings"] for r in rounds)
    print(f"trials/hour: 1 at a time {per_hour['tune1']:.0f}, 2 at a time {per_hour['tune2']:.0f} "
          f"(steady state {steady['tune1']:.0f} vs {steady['tune2']:.0f}); same settings in every run: {same}")
    findings = [
        Finding("1 Ray overhead", f"{n} trials of {tune1['mean_trial']:.0f} s: study/run.py vs plain loop "
                f"(median of {len(rounds)} round(s), {low:.2f}-{high:.2f}: round {paired['median_round'] + 1}'s walls)",
                rounds[paired["median_round"]]["tune"]["wall"], rounds[paired["median_round"]]["plain"]["wall"],
                "s", paired["median_ratio"], ("<=", 1.10)),
        Finding("6 Concurrency", "trials/hour: 2 at once (1 CPU each) vs 1 at once (2 CPUs)",
                per_hour["tune2"], per_hour["tune1"], "trials/h", per_hour["tune2"] / per_hour["tune1"]),
    ]
    details = {"runs": measured, "rounds": rounds, "ratios": paired["ratios"],
               "median_ratio": paired["median_ratio"], "median_round": paired["median_round"],  # index into rounds
               "overhead_breakdowns": paired["breakdowns"],
               "overhead_breakdown": paired["mean_breakdown"], "train_worker_start": worker_start,
               "trials_per_hour": per_hour, "steady_state_trials_per_hour": steady, "same_settings": same,
               "scaling_model": {"parameters": {**parts, "efficiency": DATA_PARALLEL_EFFICIENCY},
                                 "trials_per_hour": model}}
    return Outcome("sweep", findings, details)


def main(argv=None) -> Outcome:
    return cli("sweep", run, argv, __doc__)


if __name__ == "__main__":
    main()
