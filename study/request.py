"""What a trial is asked to do: a plain record the Ray driver builds without importing
TensorFlow (``study.trial``, which runs it, imports TensorFlow; only trial processes need it).

A *configuration* is what the sampler proposed (its raw values); a *trial* trains it once with one
seed. Both identifiers and the seed are derived from content, never from Ray's random trial ids,
so the same study run twice gives every configuration and repeat the same seed.
"""
from __future__ import annotations

import hashlib
import json
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
    config_id: str = ""     # the configuration this trial repeats (config_id_of)
    repeat: int = 0         # 0 .. repeats - 1


def _digest(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def config_id_of(sampled: dict) -> str:
    """A short stable id of a configuration: the hash of the sampler's values."""
    return _digest(sampled)[:10]


def trial_seed(study_seed: int, sampled: dict, repeat: int) -> int:
    """The training seed of repeat ``repeat`` of a configuration: a function of the study seed, the
    configuration and the repeat index only (so it does not depend on trial ids, run order or
    concurrency). Fits in 31 bits (TensorFlow and NumPy both accept it)."""
    return int(_digest({"study_seed": study_seed, "config": sampled, "repeat": repeat})[:8], 16) & 0x7FFFFFFF
