"""What a trial is asked to do: a plain record the Ray driver builds without importing
TensorFlow (:mod:`study.trial`, which runs it, imports TensorFlow; only trial processes need it).

A *configuration* is what the sampler proposed (its raw values); a *trial* trains it once with one
seed. Both identifiers and the seed are derived from content, never from Ray's random trial ids,
so the same study run twice gives every configuration and repeat the same seed.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .space import SearchSpace

REPEAT_KEY = "repeat"  # in Tune's config: which seed of its configuration a trial is (0 .. repeats - 1)


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


@dataclass
class StudyContext:
    """What every trial needs besides its sampled parameters (shipped once to the trial processes)."""

    space: SearchSpace
    dataset_dir: str
    experiment_dir: str
    seed: int
    workers_per_trial: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_failures: int = 1
    force_ray_train: bool = False
    remote_uri: str | None = None   # experiment URI when storage is remote (study.results.remote)

    @property
    def uses_ray_train(self) -> bool:
        return self.workers_per_trial > 1 or self.force_ray_train

    def request(self, trial_id: str, config: dict) -> TrialRequest:
        """What trial ``trial_id`` trains: Tune's ``config`` is the sampler's values plus the
        repeat index (:data:`REPEAT_KEY`) that the searcher adds."""
        sampled = {k: v for k, v in config.items() if k != REPEAT_KEY}
        repeat = int(config.get(REPEAT_KEY, 0))
        settings, params = self.space.materialize(sampled)
        return TrialRequest(trial_id, settings, params, self.dataset_dir,
                            str(Path(self.experiment_dir) / "trials" / trial_id),
                            self.space.metrics, trial_seed(self.seed, sampled, repeat), self.remote_uri,
                            config_id_of(sampled), repeat)
