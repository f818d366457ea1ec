"""One driver per study: ``driver.lock`` in the experiment directory names the driver running it.

A driver takes the lock before any work (:meth:`DriverLock.acquire`) and drops it when it ends;
a second driver of the same study, resumed or not, is refused with one line naming the first
(host, pid, since when). A lock whose driver is gone does not block: on the same host the
process is looked up (its pid and start time, so a reused pid is not mistaken for it); a driver
on another host (a shared file system) refreshes the lock's ``heartbeat`` every
:data:`HEARTBEAT_SECONDS`, and a lock not refreshed for :data:`STALE_AFTER_SECONDS` is stale.

On object storage (``s3://``, ``gs://``) the lock is a copy of the same file beside the
experiment's objects, taken by writing it and reading it back after :data:`SETTLE_SECONDS`:
object stores have no create-if-absent here, so of two drivers started within that time the
one whose lock was written last runs and the other is refused.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
import time
from pathlib import Path

from .files import write_json_atomic
from .layout import DRIVER_LOCK

HEARTBEAT_SECONDS = 30.0
STALE_AFTER_SECONDS = 120.0
SETTLE_SECONDS = 2.0


class StudyLocked(RuntimeError):
    """Another driver is running the study."""


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux ``/proc``), None elsewhere."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(holder: dict, now: float) -> bool:
    """Whether the driver named by a lock still runs (see the module's docstring)."""
    if holder.get("host") != socket.gethostname():
        return now - float(holder.get("heartbeat", 0)) < STALE_AFTER_SECONDS
    pid = int(holder.get("pid", -1))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    started = _process_start(pid)
    return started is None or holder.get("pid_started") in (None, started)


def describe(holder: dict) -> str:
    return f"host {holder.get('host')}, pid {holder.get('pid')}, since {holder.get('since')}"


class DriverLock:
    """The lock of the experiment in ``experiment_dir`` (and at ``remote``'s ``driver.lock``,
    a :class:`study.results.remote.Remote`, when the storage is remote)."""

    def __init__(self, experiment_dir: Path, remote=None):
        self.path = Path(experiment_dir) / DRIVER_LOCK
        self.remote = remote
        self.me = {"host": socket.gethostname(), "pid": os.getpid(), "pid_started": _process_start(os.getpid()),
                   "since": dt.datetime.now().isoformat(timespec="seconds")}
        self._stop, self._guard = threading.Event(), threading.Lock()
        self.took_over: dict | None = None  # the stale lock this driver replaced, if any

    def _read(self) -> dict | None:
        """The lock's content: None when there is none, ``{}`` when it cannot be read."""
        path = self.path
        if self.remote is not None:
            path = self.path.with_name(f".remote-{DRIVER_LOCK}")
            path.unlink(missing_ok=True)
            self.remote.download(DRIVER_LOCK, path)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}

    def _held(self, holder: dict | None) -> bool:
        if holder is None:
            return False
        if not holder:  # unreadable: being written right now, or torn by a crash long ago
            try:
                return time.time() - self.path.stat().st_mtime < SETTLE_SECONDS
            except FileNotFoundError:
                return False
        return _alive(holder, time.time())

    def _write(self) -> None:
        write_json_atomic(self.path, {**self.me, "heartbeat": time.time()})
        if self.remote is not None:
            self.remote.upload(self.path, DRIVER_LOCK)

    def _mine(self, holder: dict | None) -> bool:
        return bool(holder) and (holder.get("host"), holder.get("pid")) == (self.me["host"], self.me["pid"])

    def acquire(self) -> None:
        """Take the lock, or raise :class:`StudyLocked` naming the driver that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        holder = self._read()
        if holder is None and self.remote is None:
            try:  # create-if-absent: of two drivers starting at once, exactly one creates it
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._read()
            else:
                with os.fdopen(fd, "w") as f:
                    json.dump({**self.me, "heartbeat": time.time()}, f)
                return self._start_heartbeat()
        if self._held(holder):
            raise StudyLocked(self._refusal(holder))
        self.took_over = holder or None
        self._write()
        time.sleep(SETTLE_SECONDS)  # another driver taking the same stale or remote lock: last write wins
        holder = self._read()
        if not self._mine(holder):
            raise StudyLocked(self._refusal(holder or {}))
        self._start_heartbeat()

    def _start_heartbeat(self) -> None:
        threading.Thread(target=self._beat, name="driver-lock-heartbeat", daemon=True).start()

    def _refusal(self, holder: dict) -> str:
        where = f"{self.remote.path(DRIVER_LOCK)}" if self.remote is not None else str(self.path)
        return (f"{self.path.parent.name}: another driver is running this study ({describe(holder)}; "
                f"lock {where}); wait for it to end, or stop that process, then --resume")

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with self._guard:
                if self._stop.is_set():
                    return
                try:
                    self._write()
                except OSError:  # a missed beat is retried; the lock goes stale only after several
                    pass

    def release(self) -> None:
        """Drop the lock if this driver still holds it."""
        self._stop.set()
        with self._guard:
            if self._mine(self._read()):
                self.path.unlink(missing_ok=True)
                if self.remote is not None:
                    self.remote.delete(DRIVER_LOCK)
