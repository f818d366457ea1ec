"""The cohort schema shared by every data source: one row per chest X-ray study."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

FINDINGS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
VITALS = ("o2sat", "heartrate", "resprate", "sbp", "dbp", "temperature")
CATEGORICALS = ("gender", "ethnicity")
TEXT_FIELDS = ("chief_complaint", "icd_title")
SPLITS = ("train", "validate", "test")
ACUITY_LEVELS = 5

COLUMNS = (
    ("sample_id", "string"),
    ("subject_id", "int64"),
    ("split", "string"),
    ("image_path", "string"),
    *((v, "float64") for v in VITALS),
    ("gender", "string"),
    ("ethnicity", "string"),
    ("chief_complaint", "string"),
    ("icd_title", "string"),
    ("report", "string"),
    ("acuity", "Int64"),  # nullable: the builder drops missing acuity, the schema still says so
    *((f, "int8") for f in FINDINGS),
)
COHORT_FILE = "cohort.parquet"


class CohortError(ValueError):
    """A cohort file does not follow the schema; the message names the file and the column."""


def conform(df: pd.DataFrame) -> pd.DataFrame:
    """Return ``df`` with exactly the schema's columns, in order, with the schema's dtypes."""
    out = pd.DataFrame({name: df[name].astype(dtype) for name, dtype in COLUMNS})
    return out.reset_index(drop=True)


def validate(df: pd.DataFrame, source: str | Path) -> pd.DataFrame:
    """Check a cohort table against the schema; raise :class:`CohortError` naming what is wrong."""
    missing = [name for name, _ in COLUMNS if name not in df.columns]
    if missing:
        raise CohortError(f"{source}: missing column(s) {missing}; expected the cohort schema "
                          f"{[name for name, _ in COLUMNS]}")
    if df["sample_id"].duplicated().any():
        dup = df.loc[df["sample_id"].duplicated(), "sample_id"].iloc[0]
        raise CohortError(f"{source}: column 'sample_id' must be unique, {dup!r} repeats")
    bad_split = sorted(set(df["split"]) - set(SPLITS))
    if bad_split:
        raise CohortError(f"{source}: column 'split' must be one of {SPLITS}, got {bad_split}")
    acuity = df["acuity"].dropna()
    if len(acuity) and not acuity.between(1, ACUITY_LEVELS).all():
        raise CohortError(f"{source}: column 'acuity' must be 1..{ACUITY_LEVELS}, "
                          f"got {sorted(set(acuity) - set(range(1, ACUITY_LEVELS + 1)))}")
    for f in FINDINGS:
        if not df[f].isin([0, 1]).all():
            raise CohortError(f"{source}: finding column {f!r} must be 0/1")
    crossing = df.groupby("subject_id")["split"].nunique()
    if (crossing > 1).any():
        raise CohortError(f"{source}: subject {crossing.idxmax()} appears in more than one split")
    return conform(df)


def write_cohort(df: pd.DataFrame, out_dir: str | Path) -> Path:
    """Validate and write ``cohort.parquet`` atomically (write-then-rename)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / COHORT_FILE
    df = validate(df, path)
    tmp = path.with_suffix(".parquet.tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def read_cohort(cohort_dir: str | Path) -> pd.DataFrame:
    """Read and validate a cohort directory's table; image paths are made absolute."""
    path = Path(cohort_dir) / COHORT_FILE
    if not path.exists():
        raise CohortError(f"{path}: no cohort file; build one with `python -m data.synthetic` "
                          f"or `python -m data.mimic`")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise CohortError(f"{path}: unreadable Parquet ({exc})") from exc
    df = validate(df, path)
    root = Path(cohort_dir).resolve()
    df["image_path"] = [str(p) if Path(p).is_absolute() else str(root / p) for p in df["image_path"]]
    return df
