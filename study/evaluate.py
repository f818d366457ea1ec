"""Score any system's reports with the study's own metric implementations.

    python -m study.evaluate REFERENCES HYPOTHESES [--bertscore-model M] [--bertscore-layers N]
                             [--rescale] [--no-bertscore] [--per-sample OUT.csv]

Each file is plain text with one report per line, or a CSV/Parquet file with a ``reference``
(REFERENCES) or ``generated`` (HYPOTHESES) column. Prints the text metrics as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from study.evaluation.bertscore import BertScoreConfig
from study.evaluation.metrics import compute_metrics


def read_reports(path: str, column: str) -> list[str]:
    """Reports from a text file (one per line) or a CSV/Parquet column; one-line errors."""
    p = Path(path)
    if not p.is_file():
        raise SystemExit(f"{p}: file not found")
    try:
        if p.suffix in (".csv", ".parquet"):
            df = pd.read_csv(p) if p.suffix == ".csv" else pd.read_parquet(p)
            if column not in df.columns:
                raise SystemExit(f"{p}: expected a {column!r} column, found {list(df.columns)}")
            reports = df[column].fillna("").astype(str).tolist()
        else:
            reports = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise SystemExit(f"{p}: not UTF-8 text (byte {exc.start} is {exc.object[exc.start:exc.start + 1]!r}); "
                         f"save it as UTF-8") from None
    except (ValueError, OSError) as exc:  # pandas/pyarrow: empty or damaged CSV/Parquet
        raise SystemExit(f"{p}: cannot read it as {p.suffix[1:].upper()} ({str(exc).splitlines()[0]})") from None
    if not reports:
        raise SystemExit(f"{p}: no reports (the file is empty)")
    return reports


def build_parser() -> argparse.ArgumentParser:
    """The command's flags (the CLI reference is generated from it)."""
    parser = argparse.ArgumentParser(prog="python -m study.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("references", help="reference reports (.txt one per line, or .csv/.parquet with 'reference')")
    parser.add_argument("hypotheses", help="generated reports (.txt one per line, or .csv/.parquet with 'generated')")
    parser.add_argument("--bertscore-model", default=None,
                        help="model name or local directory (default: the shipped MiniLM-L6)")
    parser.add_argument("--bertscore-layers", type=int, default=None,
                        help="layer to use (default 6 for the shipped model, bert-score's default otherwise)")
    parser.add_argument("--rescale", action="store_true", help="rescale with bert-score's baseline")
    parser.add_argument("--no-bertscore", action="store_true", help="skip BERTScore")
    parser.add_argument("--per-sample", default=None, help="also write per-sample scores to this CSV")
    parser.add_argument("--learned-scorers", nargs="+", default=None, choices=["chexbert", "radgraph"],
                        help="also CheXbert F1 / RadGraph F1 when their weights are on this machine "
                             "(skipped with one line otherwise; nothing downloads)")
    return parser


def main(argv=None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = None if args.no_bertscore else BertScoreConfig.for_model(args.bertscore_model, args.bertscore_layers,
                                                                      args.rescale)
    if config is not None:
        try:
            config.check()
        except ValueError as exc:
            raise SystemExit(str(exc).replace("--bertscore-rescale", "--rescale")) from None
    refs, hyps = read_reports(args.references, "reference"), read_reports(args.hypotheses, "generated")
    if len(refs) != len(hyps):
        raise SystemExit(f"{args.references} has {len(refs)} reports but {args.hypotheses} has {len(hyps)}")
    from study.evaluation.scorers import usable

    learned = usable(args.learned_scorers, announce=lambda line: print(line, file=sys.stderr))
    metrics, per_sample = compute_metrics(references=refs, generated=hyps, bertscore=config, learned=learned)
    if args.per_sample:
        per_sample.to_csv(args.per_sample, index=False)
    json.dump(metrics, sys.stdout, indent=2)
    print()
    return metrics


if __name__ == "__main__":
    main()
