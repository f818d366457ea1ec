"""What a trial is asked to do: a plain record the Ray driver builds without importing
TensorFlow (``study.trial``, which runs it, imports TensorFlow; only trial processes need it)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass
class TrialRequest:
    trial_id: str
    settings: dict          # full settings (SearchSpace.materialize)
    params: dict            # what to log as param_<name>
    dataset_dir: str
    trial_dir: str
    objectives: list        # metric names reported to the searcher
    seed: int = 0
    remote_uri: str | None = None  # experiment URI when results live on a remote filesystem


def trial_seed(base: int, trial_id: str) -> int:
    """A per-trial seed that is stable across restarts of the same trial."""
    return base + int(hashlib.sha256(trial_id.encode()).hexdigest()[:6], 16)
