"""Take a trained configuration out of a study as a self-contained model bundle.

    python -m study.export EXPERIMENT_DIR --config-id ID --out BUNDLE_DIR
    python -m study.export EXPERIMENT_DIR --best OBJECTIVE --out BUNDLE_DIR
    python -m study.export EXPERIMENT_DIR --config-id ID --out BUNDLE_DIR --retrain R

``--best`` takes, among the configurations on the front of means, the one with the best mean of
OBJECTIVE (an objective of the study, e.g. ``val_rouge_l``). The bundle holds the model of every
finished seed of the configuration in Keras 3's native format, the fitted preprocessor, the image
encoder and its training statistics, and a model card; ``python -m study.predict`` uses it.
``--retrain R`` first trains the configuration again with R new seeds, on Ray like any study
(``study/run.py``, beside the original: ``NAME-retrain-ID``; run the same command again to resume
it), and exports those models.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.cli import OneLineParser  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    """The command's flags (the CLI reference is generated from it)."""
    parser = OneLineParser(prog="python -m study.export", description=__doc__.split("\n")[0])
    parser.add_argument("experiment_dir", type=Path, help="a study's experiment directory (results/NAME)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--config-id", help="the configuration to export (trials.parquet's config_id)")
    which.add_argument("--best", metavar="OBJECTIVE",
                       help="the configuration on the front of means with the best mean of this objective")
    parser.add_argument("--out", type=Path, required=True, help="the bundle folder to write (new or empty)")
    parser.add_argument("--retrain", type=int, metavar="R", default=None,
                        help="train the configuration again with R new seeds (a study of its own) and export those")
    parser.add_argument("--retrain-on", default="train", metavar="SPLITS",
                        help="with --retrain: train (default; validation picks each model's best epoch) or "
                             "train+validate (both, for the median best epoch of the configuration's seeds)")
    return parser


def quiet_tensorflow() -> None:
    """Load TensorFlow with its start-up lines kept out of the terminal (``TF_CPP_MIN_LOG_LEVEL``
    already set keeps its value)."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from data.features import native_stderr_to_log

    with native_stderr_to_log():
        import keras  # noqa: F401


def main(argv=None) -> Path:
    args = build_parser().parse_args(argv)
    from study.bundle.choose import ChoiceError
    from study.bundle.export import plan_export

    try:
        if args.retrain is None and args.retrain_on != "train":
            raise ChoiceError(f"--retrain-on {args.retrain_on}: only with --retrain R")
        plan = plan_export(args.experiment_dir, args.out, config_id=args.config_id, best=args.best,
                           retrain=args.retrain, retrain_on=args.retrain_on)
        if args.retrain is not None:
            plan = _retrained(plan, args.retrain, args.retrain_on)
    except (ChoiceError, FileNotFoundError, ValueError) as exc:
        raise SystemExit(str(exc)) from None
    how = (f"trained again from configuration {plan['retrained_from']['config_id']}" if args.retrain is not None
           else f"the best mean {args.best} on the front" if args.best else "asked for")
    print(f"exporting configuration {plan['config_id']} ({how}): {len(plan['rows'])} seed(s)", flush=True)
    quiet_tensorflow()
    from study.bundle.export import export_bundle
    from study.bundle.format import BundleError

    try:
        out = export_bundle(plan)
    except BundleError as exc:
        raise SystemExit(str(exc)) from None
    print(f"bundle: {out} (model card: {out / 'MODEL_CARD.md'})")
    print(f"predict with: .venv/bin/python -m study.predict {out} --cohort COHORT_DIR --out predictions.parquet")
    return out


def _retrained(plan: dict, repeats: int, fit_on: str) -> dict:
    """Train the configuration again (its own study, on Ray); the plan of exporting those models."""
    from study.bundle.export import plan_export
    from study.bundle.retrain import retrain, retrained_config
    from study.results.tables import load

    print(f"training configuration {plan['config_id']} again with {repeats} new seed(s) on {fit_on}", flush=True)
    target = retrain(plan, repeats, fit_on)
    again = plan_export(target, plan["out"], config_id=retrained_config(target, load(target)["trials"]))
    again["retrained_from"] = {"experiment": str(plan["experiment_dir"].resolve()), "config_id": plan["config_id"],
                               "fit_on": fit_on, "study": str(target.resolve())}
    return again


if __name__ == "__main__":
    main()
