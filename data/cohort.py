"""Steps both sources share: the paper's balanced subset and splits by patient (section 4.1)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .schema import FINDINGS

DEFAULT_FRACTIONS = {"train": 0.7, "validate": 0.2, "test": 0.1}  # 7,000 / 2,000 / 1,000


def label_group(df: pd.DataFrame) -> pd.Series:
    """Each study's stratum: its rarest positive finding, or ``"normal"`` when none is positive.

    Rarest-first means a study with cardiomegaly and effusion counts towards the scarcer of the two,
    so every finding gets its quota before common ones absorb the multi-label studies.
    """
    prevalence = df[list(FINDINGS)].sum().sort_values()
    group = pd.Series("normal", index=df.index)
    for finding in reversed(prevalence.index):  # common first, so rarer ones overwrite
        group[df[finding] == 1] = finding
    return group


def balanced_subset(df: pd.DataFrame, n: int, *, seed: int = 0) -> pd.DataFrame:
    """Pick ``n`` studies with equal quotas per stratum (:func:`label_group`).

    A stratum with fewer studies than its quota gives all it has and the rest is shared among the
    others, so the result always has ``min(n, len(df))`` rows. Skewed cohorts (mostly normal, as in
    MIMIC) thereby keep every finding well represented.
    """
    n = min(n, len(df))
    rng = np.random.default_rng(seed)
    groups = {g: rng.permutation(idx.to_numpy()) for g, idx in
              df.groupby(label_group(df)).groups.items()}
    taken = {g: 0 for g in groups}
    remaining = n
    while remaining > 0:
        open_groups = [g for g in sorted(groups) if taken[g] < len(groups[g])]
        quota = max(1, remaining // len(open_groups))
        for g in open_groups:
            add = min(quota, len(groups[g]) - taken[g], remaining)
            taken[g] += add
            remaining -= add
            if remaining == 0:
                break
    chosen = np.concatenate([groups[g][:taken[g]] for g in sorted(groups)])
    return df.loc[np.sort(chosen)].reset_index(drop=True)


def split_by_patient(df: pd.DataFrame, fractions: dict[str, float] | None = None, *,
                     seed: int = 0) -> pd.Series:
    """Assign each study a split so that no subject crosses splits.

    Subjects are shuffled and dealt to the split furthest below its target share of *studies*,
    which keeps the split sizes within one subject's studies of the targets.
    """
    fractions = fractions or DEFAULT_FRACTIONS
    total = sum(fractions.values())
    if not np.isclose(total, 1.0):
        raise ValueError(f"split fractions must sum to 1, got {fractions} (sum {total})")
    counts = df.groupby("subject_id").size()
    order = np.random.default_rng(seed).permutation(counts.index.to_numpy())
    filled = {s: 0 for s in fractions}
    assignment = {}
    for subject in order:
        # deficit relative to target, measured after this subject would be added
        split = max(fractions, key=lambda s: fractions[s] * len(df) - filled[s])
        assignment[subject] = split
        filled[split] += counts[subject]
    return df["subject_id"].map(assignment).astype("string")
