"""Where an experiment lives: a local directory, or a URI (``s3://``, ``gs://``, ``file://``) reached
through pyarrow's filesystem layer, with a local working copy.

On one machine the storage *is* the working directory and nothing is copied. With a URI, every
process works in a local directory and pushes what it wrote: trials push their checkpoint each
epoch and their results at the end (``result.json`` last, so a finished trial is never half
visible); the driver pulls the trial records, consolidates the Parquet files locally and pushes
them. A single-object upload is atomic on object stores, so readers see old or new files, never
a torn one. A trial restarted on another node pulls its directory first and resumes from the
pushed checkpoint.

The prepared dataset travels the same way: the driver uploads one self-contained bundle, and each
node downloads it once into a local cache (a file lock keeps concurrent trials on a node from
downloading it twice).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from .layout import RAY_STATE, STUDY, TRIALS_DIR

DEFAULT_LOCAL_ROOT = Path(os.environ.get("MTL_STUDY_CACHE", Path.home() / ".cache" / "mtl-study"))


def is_uri(location: str | None) -> bool:
    return bool(location) and "://" in str(location)


@dataclass
class Remote:
    """A directory on a pyarrow filesystem."""

    uri: str

    def __post_init__(self):
        self.fs, self.root = pafs.FileSystem.from_uri(self.uri)
        self.root = self.root.rstrip("/")

    def path(self, rel: str = "") -> str:
        return f"{self.root}/{rel}".rstrip("/") if rel else self.root

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.path(rel)).type != pafs.FileType.NotFound

    def upload(self, local: Path, rel: str, *, last: str | None = None) -> None:
        """Copy a local file or directory to ``rel`` (files overwrite, directories merge), one
        file at a time; the file named ``last`` goes after all others, so a reader that waits
        for it (a completion marker) never sees a half-uploaded directory."""
        if not local.is_dir():
            self.fs.create_dir(self.path(rel).rsplit("/", 1)[0], recursive=True)
            pafs.copy_files(str(local), self.path(rel), source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=self.fs)
            return
        files = sorted((p for p in local.rglob("*") if p.is_file()), key=lambda p: (p.name == last, str(p)))
        for path in files:
            self.upload(path, f"{rel}/{path.relative_to(local).as_posix()}")

    def download(self, rel: str, local: Path, *, skip_suffixes: tuple = ()) -> list[Path]:
        """Copy ``rel`` (file or directory tree) into ``local``; returns the files written. A file
        whose local copy has the remote's size and modification time is not fetched again, so
        repeated pulls of an experiment's records cost only what changed."""
        info = self.fs.get_file_info(self.path(rel))
        if info.type == pafs.FileType.NotFound:
            return []
        if info.type == pafs.FileType.File:
            items = [info]
        else:
            items = [i for i in self.fs.get_file_info(pafs.FileSelector(self.path(rel), recursive=True))
                     if i.type == pafs.FileType.File]
        written = []
        base = self.path(rel)
        for item in items:
            if item.path.endswith(skip_suffixes):
                continue
            dest = local / item.path[len(base):].lstrip("/") if item.path != base else local
            mtime = item.mtime.timestamp() if item.mtime else None
            if dest.exists() and mtime is not None and dest.stat().st_size == item.size \
                    and dest.stat().st_mtime == mtime:
                continue  # unchanged since the last pull
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.part")
            with self.fs.open_input_stream(item.path) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
            if mtime is not None:
                os.utime(tmp, (mtime, mtime))  # the remote's time: the next pull can compare
            tmp.replace(dest)
            written.append(dest)
        return written

    def delete(self, rel: str) -> None:
        if self.exists(rel):
            self.fs.delete_file(self.path(rel))

    def delete_dir(self, rel: str) -> None:
        if self.exists(rel):
            self.fs.delete_dir(self.path(rel))


def pull_records(remote: Remote, local_dir: Path) -> None:
    """Fetch every trial's records (not its checkpoint weights) for consolidation."""
    remote.download(TRIALS_DIR, local_dir / TRIALS_DIR, skip_suffixes=(".npz",))


def push_files(remote: Remote, local_dir: Path, *rels: str) -> None:
    for rel in rels:
        if (local_dir / rel).exists():
            remote.upload(local_dir / rel, rel)


@dataclass
class Location:
    """An experiment's storage and its local working directory."""

    storage: str            # a local path or a URI
    name: str
    local_root: Path | None = None  # default: <cache>/experiments

    @property
    def remote(self) -> Remote | None:
        return Remote(f"{self.storage.rstrip('/')}/{self.name}") if is_uri(self.storage) else None

    @property
    def local_dir(self) -> Path:
        if is_uri(self.storage):  # keyed by the storage too: equal names elsewhere never mix
            root = Path(self.local_root or DEFAULT_LOCAL_ROOT / "experiments")
            return root / hashlib.sha256(self.storage.encode()).hexdigest()[:10] / self.name
        return Path(self.storage).resolve() / self.name

    @property
    def storage_root(self) -> str:
        """The storage as an absolute path or a URI (Ray Tune handles URIs itself)."""
        return self.storage.rstrip("/") if is_uri(self.storage) else str(Path(self.storage).resolve())

    @property
    def experiment_uri(self) -> str:
        return f"{self.storage_root}/{self.name}"

    @property
    def ray_state_uri(self) -> str:
        """Where Ray keeps its own state of the sweep: one subfolder of the experiment, so the
        user's results sit at the top without Tune's and Train's files among them."""
        return f"{self.experiment_uri}/{RAY_STATE}"

    def push(self, *rels: str) -> None:
        if self.remote:
            push_files(self.remote, self.local_dir, *rels)

    def pull_records(self) -> None:
        if self.remote:
            pull_records(self.remote, self.local_dir)

    def has_study(self) -> bool:
        remote = self.remote
        return remote.exists(STUDY) if remote else (self.local_dir / STUDY).exists()

    def read_study(self) -> dict:
        remote = self.remote
        if remote:
            remote.download(STUDY, self.local_dir / STUDY)
        return json.loads((self.local_dir / STUDY).read_text())


BUNDLE_FILES = ("encoded.npz", "cohort.parquet", "preprocessor.json", "features.npy", "meta.json")


def bundle_dataset(prepared_dir: Path, out_dir: Path) -> Path:
    """A self-contained copy of a prepared dataset (its features file moved inside)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = json.loads((prepared_dir / "meta.json").read_text())
    for name in BUNDLE_FILES[:3]:
        shutil.copy2(prepared_dir / name, out_dir / name)
    shutil.copy2((prepared_dir / meta["feature_file"]).resolve(), out_dir / "features.npy")
    (out_dir / "meta.json").write_text(json.dumps({**meta, "feature_file": "features.npy"}, indent=2))
    return out_dir


def local_dataset(dataset_location: str) -> str:
    """A local path for a prepared dataset given as a path or as a URI of a bundle
    (downloaded once per node into the local cache, keyed by the dataset fingerprint)."""
    if not is_uri(dataset_location):
        return dataset_location
    from filelock import FileLock

    key = dataset_location.rstrip("/").rsplit("/", 1)[-1]  # the dataset fingerprint
    target = DEFAULT_LOCAL_ROOT / "datasets" / key
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / "meta.json").exists():
            tmp = target.with_name(f".{key}.download")
            shutil.rmtree(tmp, ignore_errors=True)
            Remote(dataset_location).download("", tmp)
            missing = [name for name in BUNDLE_FILES if not (tmp / name).exists()]
            if missing:
                raise FileNotFoundError(f"{dataset_location}: incomplete dataset bundle, missing {missing}; "
                                        f"delete it there and rerun the study to upload it again")
            tmp.rename(target)
    return str(target)
