"""A trial directory mirrored on remote storage (see :mod:`study.results.remote`)."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.fs as pafs

from study.results.layout import CHECKPOINT, TRIALS_DIR
from study.results.remote import Remote
from study.spec.request import TrialRequest


class TrialSync:
    """Mirror of a trial directory on remote storage (see :mod:`study.results.remote`)."""

    def __init__(self, request: TrialRequest, trial_dir: Path):
        self.remote = Remote(request.remote_uri)
        self.rel = f"{TRIALS_DIR}/{request.trial_id}"
        self.trial_dir = trial_dir

    def pull(self) -> None:
        self.remote.download(self.rel, self.trial_dir)

    def push(self, *names: str) -> None:
        """Upload files in order (so ``result.json`` given last becomes visible last)."""
        for name in names:
            if (self.trial_dir / name).exists():
                self.remote.upload(self.trial_dir / name, f"{self.rel}/{name}")

    def remove(self, name: str) -> None:
        if self.remote.exists(f"{self.rel}/{name}"):
            self.remote.fs.delete_file(self.remote.path(f"{self.rel}/{name}"))

    def remove_checkpoint(self) -> None:
        """Drop the remote copy of the resume checkpoint (the trial has finished)."""
        self.remote.delete_dir(f"{self.rel}/{CHECKPOINT}")

    def push_checkpoint(self) -> None:
        """Upload the newest checkpoint, then its pointer, then drop older remote checkpoints."""
        local = self.trial_dir / CHECKPOINT
        latest = json.loads((local / "checkpoint.json").read_text())["latest"]
        self.remote.upload(local / latest, f"{self.rel}/checkpoint/{latest}")
        self.remote.upload(local / "checkpoint.json", f"{self.rel}/checkpoint/checkpoint.json")
        listing = self.remote.fs.get_file_info(pafs.FileSelector(self.remote.path(f"{self.rel}/checkpoint")))
        for info in listing:
            name = info.path.rsplit("/", 1)[-1]
            if info.type == pafs.FileType.Directory and name.startswith("epoch-") and name != latest:
                self.remote.fs.delete_dir(info.path)
