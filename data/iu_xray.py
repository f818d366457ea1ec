"""Build a cohort from the Indiana University chest X-ray collection (Open-i), in any of its layouts.

    python -m data.iu_xray --source DIR --out COHORT_DIR [--labels mesh|labeler]
                           [--split-file annotation.json] [--seed 0]

The study then takes ``--data iu --data-dir COHORT_DIR``. The layout (Open-i's folder, R2Gen's
``annotation.json`` + ``images/``, Kaggle's two CSVs + ``images_normalized/``) is recognised by
its files (:mod:`data.iu_layouts`). Per report: one frontal image (the rule in
``build_report.json``), the FINDINGS section (IMPRESSION when findings are empty) as the text to
generate, the INDICATION in the chief-complaint slot, and the five findings from the MeSH terms
(:data:`data.iu_reports.MESH_FINDINGS`) or, with ``--labels labeler``, from the labeler reading
FINDINGS and IMPRESSION. The collection states no vitals, acuity, sex, ethnicity or diagnosis: those
columns stay empty, so a study trains no OC task and the model reads the image and the indication.
One report is one patient (the DICOM metadata's patient id is the report number); splits follow
R2Gen's split file when given (or the R2Gen layout's own), else 70/10/20 by patient.
``build_report.json`` counts every report read and every one dropped, by reason.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from .cli import OneLineParser, python_command
from .cohort import split_by_patient
from .iu_layouts import detect_layout, read_layout, read_split_file
from .iu_reports import IUError, mesh_labels
from .schema import CATEGORICALS, FINDINGS, VITALS, CohortError, fields_present, write_cohort

LABEL_SOURCES = ("mesh", "labeler")
FRACTIONS = {"train": 0.7, "validate": 0.1, "test": 0.2}  # R2Gen's proportions for IU X-ray
BUILD_REPORT = "build_report.json"


def build(source: str | Path, out_dir: str | Path, *, labels: str = "mesh", split_file: str | Path | None = None,
          seed: int = 0) -> dict:
    """Read the collection at ``source``, write the cohort to ``out_dir``; return the build report."""
    if labels not in LABEL_SOURCES:
        raise ValueError(f"labels must be one of {LABEL_SOURCES}, got {labels!r}")
    source = Path(source)
    layout = detect_layout(source)
    table = read_layout(source, layout)
    if labels == "mesh" and table["mesh"].isna().all():
        raise IUError(f"--labels mesh: the {layout} layout at {source} carries no MeSH terms (R2Gen's annotation.json "
                      f"has none); use --labels labeler")
    read, dropped = len(table), Counter()
    for reason, column in (("no_findings_or_impression", "report"), ("no_image", "frontal")):
        dropped[reason] = int(table[column].isna().sum())
        table = table[table[column].notna()]
    if split_file is not None:
        given = read_split_file(Path(split_file))
        table = table.assign(split=table["uid"].map(given))
        split_rule = f"R2Gen's split file {split_file}"
    elif layout == "r2gen":
        split_rule = f"R2Gen's split ({source / 'annotation.json'})"
    else:
        split_rule = f"by patient, {FRACTIONS} of the studies, seed {seed}"
    if split_file is not None or layout == "r2gen":
        dropped["not_in_split_file"] = int(table["split"].isna().sum())
        table = table[table["split"].notna()]
    table = table.reset_index(drop=True)
    if table.empty:
        raise IUError(f"--source {source}: no report left to build a cohort from ({dict(dropped)} dropped)")
    found = _labels(table, labels)
    df = pd.DataFrame({
        "sample_id": "CXR" + table["uid"].astype(str), "subject_id": table["uid"], "split": table["split"],
        "image_path": table["frontal"], **{v: np.nan for v in VITALS}, **{c: None for c in CATEGORICALS},
        "chief_complaint": table["indication"], "icd_title": None, "report": table["report"],
        "acuity": pd.array([pd.NA] * len(table), dtype="Int64"), **found})
    if split_file is None and layout != "r2gen":
        df["split"] = split_by_patient(df, FRACTIONS, seed=seed)
    path = write_cohort(df, out_dir)
    read_by = "R2Gen's report text" if layout == "r2gen" else "FINDINGS and IMPRESSION"  # what --labels labeler read
    report = {"cohort": str(path), "source": str(source.resolve()), "layout": layout, "reports_read": read,
              "selected": len(df), "dropped": dict(dropped), "split_rule": split_rule,
              "split_sizes": df["split"].value_counts().to_dict(),
              "labels": "MeSH terms (data.iu_reports.MESH_FINDINGS)" if labels == "mesh" else
                        f"the labeler (data.labeler) on {read_by}",
              "positives": {f: int(df[f].sum()) for f in FINDINGS},
              "frontal_rule": table["view_rule"].value_counts().to_dict(),
              "fields": fields_present(df)}
    (Path(out_dir) / BUILD_REPORT).write_text(json.dumps(report, indent=2))
    return report


def _labels(table: pd.DataFrame, labels: str) -> dict[str, np.ndarray]:
    """0/1 per finding: from each report's MeSH terms, or the labeler's positive mentions."""
    if labels == "mesh":
        rows = [mesh_labels(terms) for terms in table["mesh"]]  # a report without terms has none
        return {f: np.array([r[f] for r in rows], dtype=np.int8) for f in FINDINGS}
    from .labeler import label_reports, positive_vectors

    vectors = np.array(positive_vectors(label_reports(list(table["labelled_text"]))), dtype=np.int8)
    return {f: vectors[:, i] for i, f in enumerate(FINDINGS)}


def build_parser() -> argparse.ArgumentParser:
    """The command's flags (the CLI reference is generated from it)."""
    parser = OneLineParser(prog="python -m data.iu_xray", description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True, help="the collection as downloaded: Open-i's folder "
                        "(ecgen-radiology/ and the PNGs), R2Gen's (annotation.json, images/) or Kaggle's "
                        "(indiana_reports.csv, indiana_projections.csv, images_normalized/)")
    parser.add_argument("--out", required=True, help="cohort directory to write")
    parser.add_argument("--labels", default="mesh", choices=LABEL_SOURCES,
                        help="the five findings from the MeSH terms (default) or from the labeler (R2Gen's layout "
                             "has no MeSH terms: labeler)")
    parser.add_argument("--split-file", default=None, help="R2Gen's annotation.json: its train/val/test split by "
                                                           "report (reports it lacks are dropped)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the 70/10/20 patient split without a split file")
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    if args.seed < 0:
        raise SystemExit(f"--seed {args.seed}: must be an integer >= 0")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise SystemExit(f"--out {args.out}: a file, not a folder; name a cohort directory to write")
    if args.split_file is not None and not Path(args.split_file).is_file():
        raise SystemExit(f"--split-file {args.split_file}: file not found")
    try:
        report = build(args.source, args.out, labels=args.labels, split_file=args.split_file, seed=args.seed)
    except (IUError, CohortError) as exc:
        raise SystemExit(str(exc)) from None
    print(json.dumps(report, indent=2))
    print(f"cohort written to {args.out}; run a study on it with: {python_command()} study/run.py "
          f"--data iu --data-dir {args.out}")


if __name__ == "__main__":
    main()
