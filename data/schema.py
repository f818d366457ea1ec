"""The cohort schema shared by every data source: one row per chest X-ray study."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

FINDINGS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
VITALS = ("o2sat", "heartrate", "resprate", "sbp", "dbp", "temperature")
CATEGORICALS = ("gender", "ethnicity")
SPLITS = ("train", "validate", "test")
ACUITY_LEVELS = 5


@dataclass(frozen=True)
class Column:
    """One column of the cohort table: its name, pandas dtype, what a value may be (checked by
    :func:`validate`) and what it means. The README's table is generated from these."""
    name: str
    dtype: str
    kind: str        # "id", "integer", "number", "text", "label", "choice": how values are checked
    allowed: str     # the rule, in words
    meaning: str
    required: bool = True  # False: may be missing
    low: int | None = None
    high: int | None = None


COLUMNS = (
    Column("sample_id", "string", "id", "non-empty text, unique", "study id (`s<study_id>` for MIMIC)"),
    Column("subject_id", "int64", "integer", "integer; a patient in one split only", "patient"),
    Column("split", "string", "choice", " / ".join(f"`{s}`" for s in SPLITS), "split of the study; every split non-empty"),
    Column("image_path", "string", "text", "non-empty text", "frontal image, absolute or relative to the cohort directory"),
    *(Column(v, "float64", "number", "number or missing", "triage vital (MIMIC-IV-ED units: %, /min, /min, "
             "mmHg, mmHg, °F)", required=False) for v in VITALS),
    *(Column(c, "string", "text", "text or missing", "from `edstays` (`race` there)", required=False)
      for c in CATEGORICALS),
    Column("chief_complaint", "string", "text", "text or missing", "triage complaint", required=False),
    Column("icd_title", "string", "text", "text or missing", "first-sequence ED diagnosis title", required=False),
    Column("report", "string", "text", "non-empty text", "FINDINGS section (IMPRESSION when findings are missing)"),
    Column("acuity", "Int64", "integer", f"integer 1-{ACUITY_LEVELS} in every row, or missing in every row",
           "ESI triage acuity (1 = most urgent); a cohort without it (IU X-ray) trains no OC task",
           required=False, low=1, high=ACUITY_LEVELS),
    *(Column(f, "int8", "label", "0 or 1", "CheXpert label") for f in FINDINGS),
)
COHORT_FILE = "cohort.parquet"
# The non-imaging inputs by the token the model makes of each (model.layers.UnifiedDataBlock). A
# cohort may lack a group in every row (IU X-ray has no vitals or ICD titles): the dataset records
# which it has (:func:`fields_present`) and the model builds only those blocks.
INPUT_GROUPS = {"vitals": VITALS, "categoricals": CATEGORICALS, "chief_complaint": ("chief_complaint",),
                "icd_title": ("icd_title",)}
# Targets a cohort may lack in every row, by the task that learns them (the study drops the task)
OPTIONAL_TARGETS = {"oc": "acuity"}


class CohortError(ValueError):
    """A cohort file does not follow the schema; the message names the file, column and row."""


def markdown_table() -> str:
    """The schema as the README's table (columns with the same rule and meaning share a row)."""
    rows, seen = ["| column | allowed values | meaning |", "|---|---|---|"], {}
    for c in COLUMNS:
        seen.setdefault((c.allowed, c.meaning), []).append(f"`{c.name}`")
    rows += [f"| {', '.join(names)} | {allowed} | {meaning} |" for (allowed, meaning), names in seen.items()]
    return "\n".join(rows)


def conform(df: pd.DataFrame) -> pd.DataFrame:
    """Return ``df`` with exactly the schema's columns, in order, with the schema's dtypes."""
    out = pd.DataFrame({c.name: df[c.name].astype(c.dtype) for c in COLUMNS})
    return out.reset_index(drop=True)


def _broken(column: Column, values: pd.Series) -> pd.Series:
    """True where a value breaks ``column``'s rule."""
    missing = values.isna()
    if column.kind in ("text", "id", "choice"):
        text = values.map(lambda v: isinstance(v, str))
        bad = ~(text | missing) | (values.map(lambda v: isinstance(v, str) and not v.strip()))
        if column.kind == "choice":
            bad |= text & ~values.isin(SPLITS)
    else:
        numeric = pd.to_numeric(values.where(~values.map(lambda v: isinstance(v, (str, bool)))), errors="coerce")
        bad = numeric.isna() & ~missing
        if column.kind in ("integer", "label"):
            bad |= numeric.notna() & (numeric % 1 != 0)
        low, high = (0, 1) if column.kind == "label" else (column.low, column.high)
        if low is not None:
            bad |= numeric < low
        if high is not None:
            bad |= numeric > high
    return bad | (missing if column.required else False)


def _show(value) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "a missing value"
    value = value.item() if hasattr(value, "item") else value  # numpy scalar -> Python
    return f"{value!r} ({type(value).__name__})"


def validate(df: pd.DataFrame, source: str | Path) -> pd.DataFrame:
    """Check a cohort table against the schema; raise :class:`CohortError` naming the file, the
    column, the first offending row (and its ``sample_id``) and how many rows break the rule."""
    missing = [c.name for c in COLUMNS if c.name not in df.columns]
    if missing:
        raise CohortError(f"{source}: missing column(s) {missing}; expected the cohort schema "
                          f"{[c.name for c in COLUMNS]}")
    if not len(df):
        raise CohortError(f"{source}: no rows")
    df = df.reset_index(drop=True)
    _check_columns(df, COLUMNS, source)
    empty = [s for s in SPLITS if not (df["split"] == s).any()]
    if empty:
        raise CohortError(f"{source}: column 'split': no row in {empty}; every split needs studies")
    given = int(df["acuity"].notna().sum())
    if 0 < given < len(df):
        row = int(df["acuity"].isna().to_numpy().nonzero()[0][0])
        raise CohortError(f"{source}: column 'acuity', row {row} (sample_id {df['sample_id'].iloc[row]!r}): missing in "
                          f"{len(df) - given} of {len(df)} rows; give acuity for every study or for none (a cohort "
                          f"without acuity trains no OC task)")
    crossing = df.groupby("subject_id")["split"].nunique()
    if (crossing > 1).any():
        raise CohortError(f"{source}: column 'subject_id': subject {crossing.idxmax()} appears in more "
                          f"than one split")
    return conform(df)


def _check_columns(df: pd.DataFrame, columns, source) -> None:
    """Raise :class:`CohortError` at the first value that breaks its column's rule, or a repeated
    ``sample_id``."""
    for column in columns:
        bad = _broken(column, df[column.name])
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            more = int(bad.sum()) - 1
            raise CohortError(f"{source}: column {column.name!r}, row {row} (sample_id "
                              f"{df['sample_id'].iloc[row]!r}): {_show(df[column.name].iloc[row])} breaks the "
                              f"rule: {column.allowed}" + (f" ({more} more row(s) break it)" if more else ""))
    if df["sample_id"].duplicated().any():
        row = int(df["sample_id"].duplicated().to_numpy().nonzero()[0][0])
        raise CohortError(f"{source}: column 'sample_id', row {row}: {df['sample_id'].iloc[row]!r} repeats; "
                          f"sample ids must be unique")


def fields_present(df: pd.DataFrame) -> dict[str, bool]:
    """For each input group of :data:`INPUT_GROUPS` and each optional target: whether any study of
    the cohort has a value (a group missing in every row is absent from the cohort)."""
    groups = {**INPUT_GROUPS, **{column: (column,) for column in OPTIONAL_TARGETS.values()}}
    return {name: bool(df[list(columns)].notna().any().any()) for name, columns in groups.items()}


# What a trained model reads of a study (no split, report, acuity or labels: those are targets)
INPUT_COLUMNS = tuple(c for c in COLUMNS if c.name in ("sample_id", "image_path", *VITALS, *CATEGORICALS,
                                                       "chief_complaint", "icd_title"))


def validate_inputs(df: pd.DataFrame, source: str | Path) -> pd.DataFrame:
    """Check a table of studies to predict on: ``sample_id`` and ``image_path`` required, every
    other input column optional (absent means missing for every row), each checked by its rule.
    Returns the input columns in schema order with the schema's dtypes."""
    missing = [c.name for c in INPUT_COLUMNS if c.required and c.name not in df.columns]
    if missing:
        raise CohortError(f"{source}: missing column(s) {missing}; a table to predict on needs "
                          f"{[c.name for c in INPUT_COLUMNS if c.required]} and may have "
                          f"{[c.name for c in INPUT_COLUMNS if not c.required]}")
    if not len(df):
        raise CohortError(f"{source}: no rows")
    df = df.reset_index(drop=True)
    df = df.assign(**{c.name: pd.Series([None] * len(df), dtype="object")
                      for c in INPUT_COLUMNS if c.name not in df.columns})
    _check_columns(df, INPUT_COLUMNS, source)
    return pd.DataFrame({c.name: df[c.name].astype(c.dtype) for c in INPUT_COLUMNS})


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
