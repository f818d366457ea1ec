"""Encoding of the non-imaging inputs and targets, fitted on the training split only.

A fitted :class:`Preprocessor` is saved next to the prepared dataset (``preprocessor.json``) so
every trial, and any later evaluation, encodes exactly the same way.

Vitals cleaning (:data:`VITAL_BOUNDS`): a value outside its physiological range is treated as a
recording error and becomes missing (counted in :attr:`Preprocessor.cleaning_counts`). Each vital
is then min-max scaled to 0-1 with the training minimum and maximum; a missing value is imputed with
the training median (scaled) and flagged in a separate 0/1 indicator, so the model sees both.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .schema import ACUITY_LEVELS, CATEGORICALS, FINDINGS, VITALS
from .text import Tokenizer, normalize_field, report_words

# Physiologically plausible ranges at ED triage (units as in MIMIC-IV-ED triage).
VITAL_BOUNDS = {
    "o2sat": (50.0, 100.0),        # %   (SpO2 below 50 % is almost always a probe error)
    "heartrate": (20.0, 250.0),    # beats/min
    "resprate": (4.0, 60.0),       # breaths/min
    "sbp": (50.0, 260.0),          # mmHg
    "dbp": (20.0, 180.0),          # mmHg
    "temperature": (86.0, 110.0),  # degrees Fahrenheit (30-43 C); MIMIC-IV-ED records Fahrenheit
}
UNKNOWN = "unknown"


def encode_ordinal(acuity) -> np.ndarray:
    """Cumulative encoding: level k (1..5) -> k-1 leading ones in a vector of length 4."""
    acuity = np.asarray(acuity, dtype=np.int64)
    if np.any((acuity < 1) | (acuity > ACUITY_LEVELS)):
        raise ValueError(f"acuity must be in 1..{ACUITY_LEVELS}, got {sorted(set(acuity.ravel()))}")
    return (np.arange(ACUITY_LEVELS - 1)[None, :] < (acuity[:, None] - 1)).astype(np.float32)


def decode_ordinal(probs, threshold: float = 0.5) -> np.ndarray:
    """Inverse of :func:`encode_ordinal` for probabilities: 1 + number of thresholds passed.

    Counting every position above the threshold (not only the leading run) is the usual decoding
    for cumulative-link outputs; for an exact cumulative vector both agree.
    """
    return 1 + (np.asarray(probs) > threshold).sum(axis=-1).astype(np.int64)


def clean_vitals(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Replace values outside :data:`VITAL_BOUNDS` by NaN; return the table and counts per vital."""
    out = df[list(VITALS)].apply(pd.to_numeric, errors="coerce").astype(float)
    counts = {}
    for vital, (lo, hi) in VITAL_BOUNDS.items():
        bad = out[vital].notna() & ~out[vital].between(lo, hi)
        counts[vital] = int(bad.sum())
        out.loc[bad, vital] = np.nan
    return out, counts


@dataclass
class PreprocessConfig:
    report_vocab: int = 1000
    report_length: int = 60         # tokens including <start> and <end>
    field_vocab: int = 500          # chief complaint and ICD title vocabularies, each
    field_length: int = 12


def rules_digest() -> str:
    """A version of the preprocessing rules: the hash of the code that holds them (vital bounds,
    abbreviations, tokenisation, encodings). The prepared-dataset key includes it, so editing a
    rule re-encodes the data instead of reusing stale encodings (re-encoding takes seconds)."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for module in ("preprocess.py", "text.py"):
        h.update((here / module).read_bytes())
    return h.hexdigest()[:16]


@dataclass
class Preprocessor:
    """Fitted encoders for vitals, categoricals, the two text fields and the report."""

    config: PreprocessConfig
    vital_min: dict = field(default_factory=dict)
    vital_max: dict = field(default_factory=dict)
    vital_median: dict = field(default_factory=dict)
    categories: dict = field(default_factory=dict)
    tokenizers: dict = field(default_factory=dict)
    cleaning_counts: dict = field(default_factory=dict)

    @classmethod
    def fit(cls, train: pd.DataFrame, config: PreprocessConfig | None = None) -> "Preprocessor":
        config = config or PreprocessConfig()
        vitals, counts = clean_vitals(train)
        pre = cls(config=config, cleaning_counts={"train": counts})
        for v in VITALS:
            col = vitals[v].dropna()
            lo, hi = (float(col.min()), float(col.max())) if len(col) else VITAL_BOUNDS[v]
            pre.vital_min[v], pre.vital_max[v] = lo, hi
            pre.vital_median[v] = float(col.median()) if len(col) else (lo + hi) / 2
        for c in CATEGORICALS:
            pre.categories[c] = sorted(set(train[c].fillna(UNKNOWN).astype(str)) - {UNKNOWN}) + [UNKNOWN]
        for name in ("chief_complaint", "icd_title"):
            pre.tokenizers[name] = Tokenizer.fit(
                (normalize_field(t).split() for t in train[name]), max_vocab=config.field_vocab,
                max_length=config.field_length, add_start_end=False)
        pre.tokenizers["report"] = Tokenizer.fit(
            (report_words(r) for r in train["report"]), max_vocab=config.report_vocab,
            max_length=config.report_length, add_start_end=True, min_count=2)
        return pre

    # ---- transforms -------------------------------------------------------------------------
    def vitals(self, df: pd.DataFrame, split: str = "") -> np.ndarray:
        """(N, 12): six scaled vitals then six missing indicators."""
        vitals, counts = clean_vitals(df)
        if split:
            self.cleaning_counts[split] = counts
        scaled, missing = [], []
        for v in VITALS:
            span = max(self.vital_max[v] - self.vital_min[v], 1e-6)
            col = ((vitals[v] - self.vital_min[v]) / span).clip(0.0, 1.0)
            missing.append(col.isna().to_numpy())
            scaled.append(col.fillna((self.vital_median[v] - self.vital_min[v]) / span).to_numpy())
        return np.concatenate([np.stack(scaled, 1), np.stack(missing, 1)], 1).astype(np.float32)

    def categoricals(self, df: pd.DataFrame) -> np.ndarray:
        """(N, sum of category counts): one-hot gender and ethnicity; unseen values -> unknown."""
        blocks = []
        for c in CATEGORICALS:
            cats = self.categories[c]
            values = df[c].fillna(UNKNOWN).astype(str)
            idx = values.map({k: i for i, k in enumerate(cats)}).fillna(len(cats) - 1).astype(int)
            blocks.append(np.eye(len(cats), dtype=np.float32)[idx.to_numpy()])
        return np.concatenate(blocks, 1)

    def text_field(self, df: pd.DataFrame, name: str) -> np.ndarray:
        tok = self.tokenizers[name]
        return np.array([tok.encode(normalize_field(t).split()) for t in df[name]], dtype=np.int32)

    def reports(self, df: pd.DataFrame) -> np.ndarray:
        tok = self.tokenizers["report"]
        return np.array([tok.encode(report_words(r)) for r in df["report"]], dtype=np.int32)

    def inputs(self, df: pd.DataFrame, split: str = "") -> dict[str, np.ndarray]:
        """The non-imaging model inputs (what a trained model reads of a new study)."""
        return {
            "vitals": self.vitals(df, split),
            "categoricals": self.categoricals(df),
            "chief_complaint": self.text_field(df, "chief_complaint"),
            "icd_title": self.text_field(df, "icd_title"),
        }

    def transform(self, df: pd.DataFrame, split: str = "") -> dict[str, np.ndarray]:
        """All model inputs and targets for one split except the image features."""
        return {
            **self.inputs(df, split),
            "report_ids": self.reports(df),
            # a cohort without acuity (none given; the schema allows none or all) trains no OC task
            "ordinal": (encode_ordinal(df["acuity"].to_numpy()) if df["acuity"].notna().any()
                        else np.zeros((len(df), ACUITY_LEVELS - 1), np.float32)),
            "findings": df[list(FINDINGS)].to_numpy(np.float32),
        }

    # ---- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "config": vars(self.config), "vital_min": self.vital_min, "vital_max": self.vital_max,
            "vital_median": self.vital_median, "categories": self.categories,
            "tokenizers": {k: t.to_dict() for k, t in self.tokenizers.items()},
            "cleaning_counts": self.cleaning_counts, "vital_bounds": VITAL_BOUNDS,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessor":
        return cls(config=PreprocessConfig(**d["config"]), vital_min=d["vital_min"],
                   vital_max=d["vital_max"], vital_median=d["vital_median"],
                   categories=d["categories"], cleaning_counts=d["cleaning_counts"],
                   tokenizers={k: Tokenizer.from_dict(t) for k, t in d["tokenizers"].items()})
