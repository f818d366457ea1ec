"""Predict with a model bundle: reports, acuity and findings for new studies.

    python -m study.predict BUNDLE_DIR --cohort COHORT_DIR [--split test] --out FILE.parquet [--seed S]
    python -m study.predict BUNDLE_DIR --images DIR --clinical FILE.csv --out FILE.parquet [--seed S]

``--cohort`` reads a cohort directory (the schema of ``data.schema``); ``--images`` with
``--clinical`` reads a CSV with ``sample_id``, ``image_path`` (relative to DIR or absolute) and
any of the clinical columns (six vitals, ``gender``, ``ethnicity``, ``chief_complaint``,
``icd_title``; an absent column counts as missing). Without ``--seed`` the model of the bundle's
default seed is used (the one closest to its configuration's means). Needs neither Ray nor the
study the bundle came from.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.schema import SPLITS  # noqa: E402
from data.cli import OneLineParser  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    """The command's flags (the CLI reference is generated from it)."""
    parser = OneLineParser(prog="python -m study.predict", description=__doc__.split("\n")[0])
    parser.add_argument("bundle", type=Path, help="a bundle folder written by python -m study.export")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--cohort", type=Path, help="a cohort directory (cohort.parquet and its images)")
    source.add_argument("--images", type=Path, help="a folder of images (with --clinical)")
    parser.add_argument("--split", choices=SPLITS, default="test", help="with --cohort: the split to predict")
    parser.add_argument("--clinical", type=Path, help="with --images: CSV of sample_id, image_path and clinical fields")
    parser.add_argument("--out", type=Path, required=True, help="the Parquet file to write (must not exist)")
    parser.add_argument("--seed", type=int, default=None, help="use the model trained with this seed")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where features of raw images are cached (default: BUNDLE_DIR/cache)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _check_flags(args) -> None:
    if args.images is not None and args.clinical is None:
        raise SystemExit("--images needs --clinical FILE.csv (the studies' sample_id, image_path and clinical fields)")
    if args.clinical is not None and args.images is None:
        raise SystemExit("--clinical is read with --images DIR; with --cohort the clinical fields come from the cohort")
    if args.images is not None and not args.images.is_dir():
        raise SystemExit(f"--images {args.images}: not a folder")
    if args.out.suffix != ".parquet":
        raise SystemExit(f"--out {args.out}: must end in .parquet")
    if args.out.exists():
        raise SystemExit(f"--out {args.out}: already exists; choose another name (predictions never overwrite)")
    if not args.out.parent.is_dir():
        raise SystemExit(f"--out {args.out}: folder {args.out.parent} does not exist")


def main(argv=None):
    args = build_parser().parse_args(argv)
    _check_flags(args)
    from data.schema import CohortError
    from study.bundle.choose import ChoiceError, check_seed
    from study.bundle.format import BundleError
    from study.bundle.predictor import Bundle, cohort_studies, features_for, predict, table_studies
    from study.export import quiet_tensorflow
    from study.results.files import write_parquet_atomic

    try:
        bundle = Bundle(args.bundle)
        seed = check_seed(args.seed, bundle.seeds, bundle.manifest["default_seed"]["seed"])
        if args.cohort is not None:
            studies, features = cohort_studies(bundle, args.cohort, args.split)
            where = f"{args.cohort} ({args.split} split)"
        else:
            studies, features = table_studies(args.images, args.clinical), None
            where = str(args.clinical)
    except (BundleError, ChoiceError, CohortError) as exc:
        raise SystemExit(str(exc)) from None
    why = "asked for" if args.seed is not None else bundle.manifest["default_seed"]["reason"]
    print(f"configuration {bundle.manifest['config_id']}, model of seed {seed} ({why}); "
          f"{len(studies)} studies from {where}", flush=True)
    quiet_tensorflow()
    try:
        if features is None:
            features = features_for(bundle, studies, source=where, progress=not args.no_progress,
                                    cache_dir=args.cache_dir or bundle.directory / "cache")
        else:
            print("image features: the study's own feature cache (same images, same encoder)")
        table = predict(bundle, seed, studies, features, progress=not args.no_progress)
    except (BundleError, CohortError) as exc:
        raise SystemExit(str(exc)) from None
    write_parquet_atomic(args.out, table)
    print(f"predictions: {args.out} ({len(table)} rows)")
    return table


if __name__ == "__main__":
    main()
