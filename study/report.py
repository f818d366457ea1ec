"""Render an experiment's plots and Markdown summary from its Parquet files alone (no Ray).

    python -m study.report EXPERIMENT_DIR [--objectives val_rouge_l:max val_ml_f1:max ...]

Writes ``plots/*.png``, ``summary.md``, ``comparison.csv`` (a space with a ``baseline``) and
``methods.csv`` (a study of several weighting methods) into the experiment directory; with the
study's own objectives also ``configs.parquet`` and the ``pareto`` column of ``trials.parquet``.
Other objectives are shown, never recorded. See :mod:`study.analysis.report`.
"""
from __future__ import annotations

import argparse

from study.analysis.report import render


def build_parser() -> argparse.ArgumentParser:
    """The command's flags (the CLI reference is generated from it)."""
    parser = argparse.ArgumentParser(prog="python -m study.report", description=__doc__.split("\n")[0])
    parser.add_argument("experiment_dir")
    parser.add_argument("--objectives", nargs="+", default=None,
                        help="metric:max|min pairs (default: the study's objectives)")
    return parser


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    objectives = None
    if args.objectives:
        objectives = {}
        for item in args.objectives:
            metric, _, mode = item.partition(":")
            if mode not in ("max", "min"):
                raise SystemExit(f"--objectives {item!r}: expected METRIC:max or METRIC:min")
            objectives[metric] = mode
    try:
        rendered = render(args.experiment_dir, objectives)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(str(exc)) from None
    for name, path in rendered.items():
        print(f"{name:24s} {path}")


if __name__ == "__main__":
    main()
