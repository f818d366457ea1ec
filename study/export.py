"""Take a trained configuration out of a study as a self-contained model bundle.

    python -m study.export EXPERIMENT_DIR --config-id ID --out BUNDLE_DIR
    python -m study.export EXPERIMENT_DIR --best OBJECTIVE --out BUNDLE_DIR

``--best`` takes, among the configurations on the front of means, the one with the best mean of
OBJECTIVE (an objective of the study, e.g. ``val_rouge_l``). The bundle holds the model of every
finished seed of the configuration in Keras 3's native format, the fitted preprocessor, the image
encoder and its training statistics, and a model card; ``python -m study.predict`` uses it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from study.spec.flags import OneLineParser  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    """The command's flags (the CLI reference is generated from it)."""
    parser = OneLineParser(prog="python -m study.export", description=__doc__.split("\n")[0])
    parser.add_argument("experiment_dir", type=Path, help="a study's experiment directory (results/NAME)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--config-id", help="the configuration to export (trials.parquet's config_id)")
    which.add_argument("--best", metavar="OBJECTIVE",
                       help="the configuration on the front of means with the best mean of this objective")
    parser.add_argument("--out", type=Path, required=True, help="the bundle folder to write (new or empty)")
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
        plan = plan_export(args.experiment_dir, args.out, config_id=args.config_id, best=args.best)
    except (ChoiceError, FileNotFoundError, ValueError) as exc:
        raise SystemExit(str(exc)) from None
    how = f"the best mean {args.best} on the front" if args.best else "asked for"
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


if __name__ == "__main__":
    main()
