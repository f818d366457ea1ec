"""Run a multi-objective study of loss weighting and hyperparameters with Ray Tune + Optuna.

    python study/run.py                              # default study, embedded synthetic cohort
    python study/run.py --search-space smoke         # a ~2 minute first try
    python study/run.py --name my-sweep --resume     # continue an interrupted sweep
    python study/run.py --address auto --workers-per-trial 2 --gpus-per-worker 1   # on a cluster

Flags override the YAML file given with --config (its keys are the flags' long names with
underscores, e.g. ``num_samples: 32``). Results land in STORAGE/NAME/. Two halves: the plan
(:func:`study.spec.plan.build_plan`, everything checked before Ray starts) and its execution
(:func:`study.sweep.driver.execute`).
"""
from __future__ import annotations

import errno
import logging
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.schema import CohortError  # noqa: E402
from study.spec.flags import parse_args, resume_command  # noqa: E402
from study.spec.plan import build_plan, explain_os_error  # noqa: E402
from study.spec.space import SearchSpaceError  # noqa: E402


def main(argv=None) -> Path:
    """Run a study (see the module docs); returns its directory. ``python study/run.py`` exits
    with :func:`run_study`'s status."""
    return run_study(argv)[0]


def run_study(argv=None) -> tuple[Path, int]:
    """``(experiment directory, exit status)``: 0 when every trial finished, 1 when the sweep was
    interrupted or owes trials, or any trial ended in ERROR."""
    os.environ["MTL_STUDY_STARTED"] = str(time.time())  # the command's start, for wall time and progress
    args = parse_args(argv)
    quiet(args.verbose)
    try:
        plan = build_plan(args)
        from study.sweep.driver import execute  # Ray is imported only once the plan stands

        return execute(plan)
    except (SearchSpaceError, CohortError) as exc:
        raise SystemExit(str(exc)) from None
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT):
            raise
        message = explain_os_error(exc, args)
        study = Path(args.storage) / args.name / "study.json" if args.name else None
        if study is not None and study.exists():
            message += f"; continue with: {resume_command(args)}"
        raise SystemExit(message) from None


def quiet(verbose: bool) -> None:
    """Keep TF/Ray/Optuna noise out of the terminal (it still reaches the log files)."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the classic table, with our columns
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("RAY_DEDUP_LOGS", "1")
        import warnings

        warnings.filterwarnings("ignore")
    # Tune's own advice on an interrupted run (Tuner.restore(...)) would sit above ours
    logging.getLogger("ray.tune.tune").addFilter(
        lambda record: not any(s in record.getMessage() for s in ("Resume experiment with", "Trials did not complete")))


if __name__ == "__main__":
    sys.exit(run_study()[1])
