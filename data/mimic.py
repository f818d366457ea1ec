"""Build the cohort from MIMIC-CXR-JPG, the MIMIC-CXR reports and MIMIC-IV-ED (paper section 4.1).

    python -m data.mimic --mimic-cxr DIR --mimic-ed DIR --out DIR [--reports DIR] [--n 10000]

Linkage (as aehrc/cxrmate-ed): a study belongs to the ED stay of the same subject with
``intime < study datetime < outtime``; a study inside two stays is ambiguous and dropped. One
frontal image per study (PA preferred, then AP). Report = FINDINGS, else IMPRESSION, else dropped.
Vitals, acuity and chief complaint from triage; gender and race from edstays; the ICD title of the
first-sequence diagnosis; the five labels from the CheXpert file under a configurable policy for
uncertain (-1) and blank (not mentioned). Then the paper's balanced subset with patient splits.
Every dropped study is counted by reason in ``build_report.json``. Files may be gzipped or plain.
"""
from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from .cli import OneLineParser
from .cohort import balanced_subset, split_by_patient
from .schema import FINDINGS, write_cohort

CXR_FILES = {
    "metadata": ("mimic-cxr-2.0.0-metadata.csv", ["dicom_id", "subject_id", "study_id",
                                                   "ViewPosition", "StudyDate", "StudyTime"]),
    "chexpert": ("mimic-cxr-2.0.0-chexpert.csv", ["subject_id", "study_id", *FINDINGS]),
}
ED_FILES = {
    "edstays": ("edstays.csv", ["subject_id", "stay_id", "intime", "outtime", "gender", "race"]),
    "triage": ("triage.csv", ["subject_id", "stay_id", "temperature", "heartrate", "resprate",
                              "o2sat", "sbp", "dbp", "acuity", "chiefcomplaint"]),
    "diagnosis": ("diagnosis.csv", ["subject_id", "stay_id", "seq_num", "icd_title"]),
}
LABEL_POLICIES = {"uncertain": ("positive", "negative", "drop"), "blank": ("negative", "drop")}


class MimicError(ValueError):
    """A MIMIC input is missing or malformed; the message names the file and what was expected."""


def read_table(directory: Path, stem: str, columns: list[str]) -> pd.DataFrame:
    """Read ``stem`` (``.csv.gz`` or ``.csv``) from ``directory`` (or its ``ed/`` subfolder)."""
    candidates = [directory / sub / (stem + ext) for sub in ("", "ed") for ext in (".gz", "")]
    path = next((p for p in candidates if p.exists()), None)
    if path is None:
        raise MimicError(f"{directory / (stem + '.gz')}: file not found (looked for {stem}.gz or "
                         f"{stem}, also under ed/)")
    try:
        df = pd.read_csv(path, low_memory=False)
    except Exception as exc:
        raise MimicError(f"{path}: unreadable CSV ({type(exc).__name__}: {exc})") from exc
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise MimicError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    return df


def study_datetime(date: pd.Series, time: pd.Series) -> pd.Series:
    """StudyDate (YYYYMMDD) + StudyTime (HHMMSS.fff, leading zeros often lost) -> Timestamp."""
    whole = time.astype(float).fillna(0).apply(lambda t: f"{int(t):06d}")
    frac = time.astype(float).fillna(0).apply(lambda t: f"{t - int(t):.6f}"[1:])
    return pd.to_datetime(date.astype(int).astype(str) + whole + frac, format="%Y%m%d%H%M%S.%f")


def extract_section(report: str) -> str | None:
    """FINDINGS section of a free-text report, else IMPRESSION, else None; whitespace collapsed."""
    for header in ("FINDINGS", "IMPRESSION"):
        m = re.search(rf"{header}\s*:(.*?)(?=\n\s*[A-Z][A-Z /&]+:|\Z)", report, flags=re.S)
        if m and m.group(1).strip():
            return re.sub(r"\s+", " ", m.group(1)).strip()
    return None


def pick_frontal(meta: pd.DataFrame) -> pd.DataFrame:
    """One image per study: PA preferred, then AP; ties broken by dicom_id for determinism."""
    frontal = meta[meta["ViewPosition"].isin(["PA", "AP"])].copy()
    frontal["rank"] = (frontal["ViewPosition"] != "PA").astype(int)
    return frontal.sort_values(["study_id", "rank", "dicom_id"]).drop_duplicates("study_id")


def apply_label_policy(labels: pd.DataFrame, uncertain: str, blank: str) -> tuple[pd.DataFrame, pd.Series]:
    """Map CheXpert values (1, 0, -1, blank) to 0/1; return labels and a mask of rows to drop."""
    out = labels[list(FINDINGS)].astype(float)
    drop = pd.Series(False, index=out.index)
    if uncertain == "drop":
        drop |= (out == -1).any(axis=1)
    out = out.replace(-1, 1.0 if uncertain == "positive" else 0.0)
    if blank == "drop":
        drop |= out.isna().any(axis=1)
    return out.fillna(0.0).astype(np.int8), drop


def build(mimic_cxr: str | Path, mimic_ed: str | Path, out_dir: str | Path, *,
          reports_dir: str | Path | None = None, n: int = 10_000, seed: int = 0,
          uncertain: str = "negative", blank: str = "negative") -> dict:
    """Build and write the cohort; return the build report (counts of kept and dropped studies)."""
    for name, value in (("uncertain", uncertain), ("blank", blank)):
        if value not in LABEL_POLICIES[name]:
            raise ValueError(f"{name} label policy must be one of {LABEL_POLICIES[name]}, got {value!r}")
    cxr, ed = Path(mimic_cxr), Path(mimic_ed)
    reports_dir = Path(reports_dir) if reports_dir else cxr
    t = {k: read_table(cxr, f, c) for k, (f, c) in CXR_FILES.items()}
    t.update({k: read_table(ed, f, c) for k, (f, c) in ED_FILES.items()})
    dropped: Counter = Counter()

    meta = t["metadata"]
    studies = pick_frontal(meta)
    dropped["no_frontal_image"] = meta["study_id"].nunique() - len(studies)
    studies = studies.assign(study_time=study_datetime(studies["StudyDate"], studies["StudyTime"]))

    stays = t["edstays"].assign(intime=lambda d: pd.to_datetime(d["intime"]),
                                outtime=lambda d: pd.to_datetime(d["outtime"]))
    pairs = studies.merge(stays, on="subject_id")
    pairs = pairs[(pairs["intime"] < pairs["study_time"]) & (pairs["study_time"] < pairs["outtime"])]
    matches = pairs.groupby("study_id").size()
    dropped["no_ed_stay"] = len(studies) - len(matches)
    dropped["ambiguous_ed_stay"] = int((matches > 1).sum())
    df = pairs[pairs["study_id"].isin(matches[matches == 1].index)]

    triage = t["triage"].drop(columns=["subject_id"]).rename(columns={"chiefcomplaint": "chief_complaint"})
    df = df.merge(triage, on="stay_id", how="left")
    no_acuity = df["acuity"].isna() | ~df["acuity"].isin([1, 2, 3, 4, 5])
    dropped["missing_acuity"] = int(no_acuity.sum())
    df = df[~no_acuity]

    dx = t["diagnosis"].sort_values(["stay_id", "seq_num"]).drop_duplicates("stay_id")
    df = df.merge(dx[["stay_id", "icd_title"]], on="stay_id", how="left")

    labels = df[["subject_id", "study_id"]].merge(t["chexpert"], on=["subject_id", "study_id"],
                                                  how="left", indicator=True)
    no_labels = (labels.pop("_merge") == "left_only").to_numpy()  # study absent from the file
    dropped["no_chexpert_labels"] = int(no_labels.sum())
    df, labels = df[~no_labels].reset_index(drop=True), labels[~no_labels].reset_index(drop=True)
    labels, drop = apply_label_policy(labels, uncertain, blank)
    dropped["label_policy"] = int(drop.sum())
    df = pd.concat([df.drop(columns=[c for c in FINDINGS if c in df]), labels], axis=1)[~drop.to_numpy()]

    sid = df["subject_id"].astype(str)
    rel = "files/p" + sid.str[:2] + "/p" + sid + "/s" + df["study_id"].astype(str)
    texts = []
    for path in rel:
        p = reports_dir / (path + ".txt")
        texts.append(extract_section(p.read_text(errors="replace")) if p.exists() else "<missing>")
    df = df.assign(report=texts, image_path=[str((cxr / r / f"{d}.jpg").resolve())
                                            for r, d in zip(rel, df["dicom_id"])])
    dropped["missing_report_file"] = int((df["report"] == "<missing>").sum())
    dropped["no_findings_or_impression"] = int(df["report"].isna().sum())
    df = df[df["report"].notna() & (df["report"] != "<missing>")]

    df = df.assign(sample_id="s" + df["study_id"].astype(str), ethnicity=df["race"],
                   acuity=df["acuity"].astype(int))
    eligible = len(df)
    df = balanced_subset(df.reset_index(drop=True), n, seed=seed)
    df["split"] = split_by_patient(df, seed=seed)
    path = write_cohort(df, out_dir)
    report = {"cohort": str(path), "studies_in_metadata": int(meta["study_id"].nunique()),
              "eligible": eligible, "selected": len(df),
              "split_sizes": df["split"].value_counts().to_dict(),
              "dropped": {k: int(v) for k, v in dropped.items()},
              "label_policy": {"uncertain": uncertain, "blank": blank}}
    (Path(out_dir) / "build_report.json").write_text(json.dumps(report, indent=2))
    return report


def build_parser() -> argparse.ArgumentParser:
    """The command's flags (the CLI reference is generated from it)."""
    parser = OneLineParser(prog="python -m data.mimic", description=__doc__.split("\n")[0])
    parser.add_argument("--mimic-cxr", required=True, help="MIMIC-CXR-JPG root (metadata, chexpert CSVs, files/)")
    parser.add_argument("--mimic-ed", required=True, help="MIMIC-IV-ED root (edstays, triage, diagnosis; ed/ subfolder ok)")
    parser.add_argument("--reports", default=None, help="MIMIC-CXR reports root holding files/pXX/... .txt "
                                                        "(default: the --mimic-cxr directory)")
    parser.add_argument("--out", required=True, help="cohort directory to write")
    parser.add_argument("--n", type=int, default=10_000, help="balanced subset size (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the subset and the splits")
    parser.add_argument("--uncertain", default="negative", choices=LABEL_POLICIES["uncertain"],
                        help="CheXpert -1 (uncertain) becomes this (default negative)")
    parser.add_argument("--blank", default="negative", choices=LABEL_POLICIES["blank"],
                        help="CheXpert blank (not mentioned) becomes this (default negative)")
    return parser


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    for flag, folder in (("--mimic-cxr", args.mimic_cxr), ("--mimic-ed", args.mimic_ed), ("--reports", args.reports)):
        if folder is not None and not Path(folder).is_dir():
            raise SystemExit(f"{flag} {folder}: folder not found")
    if args.n < 10:
        raise SystemExit(f"--n {args.n}: must be an integer >= 10 (enough studies for three splits)")
    try:
        report = build(args.mimic_cxr, args.mimic_ed, args.out, reports_dir=args.reports, n=args.n,
                       seed=args.seed, uncertain=args.uncertain, blank=args.blank)
    except MimicError as exc:
        raise SystemExit(str(exc)) from None
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
