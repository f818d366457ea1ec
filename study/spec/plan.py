"""Everything the driver decides before Ray starts, checked and frozen in a :class:`StudyPlan`.

:func:`build_plan` turns the parsed flags into the plan: the experiment's name and storage (can it
be written? is there already a study, or one to resume?), the search space with ``--set``,
``--max-epochs`` and ``--repeats`` applied and every corner checked, BERTScore and the learned
scorers, MO-ASHA's needs, the budget per choice, the number of configurations, the cluster's
shape (what the autoscaler can grow to), whether the storage reaches every node, and the cohort.
A bad input stops here with one line, before Ray starts or anything is written; the sweep layer
(:func:`study.sweep.driver.execute`) only carries the plan out.
"""
from __future__ import annotations

import argparse
import datetime as dt
import errno
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from data.schema import COHORT_FILE, OPTIONAL_TARGETS, fields_present, read_cohort
from search_spaces import resolve
from study.evaluation.bertscore import BertScoreConfig
from study.evaluation.scorers import METRIC, usable
from study.results.remote import DEFAULT_LOCAL_ROOT, Location, is_uri

from .flags import parse_settings, resume_command
from .request import StudyContext
from .resources import ClusterShape, find_shape, grows_elsewhere
from .space import SearchSpace
from .space_file import load_space


@dataclass(frozen=True)
class StudyPlan:
    """A checked study, ready to run: what :func:`build_plan` decided."""

    args: argparse.Namespace     # the flags, with the experiment's name filled in
    location: Location           # where the experiment lives (local or a URI)
    space: SearchSpace           # with --set, --max-epochs, --repeats and the scorers applied
    space_text: str              # the space's YAML as run (a resume reads it back)
    num_configs: int             # configurations to train, each with space.repeats seeds
    shape: ClusterShape | None   # what the autoscaler can grow to (None: no autoscaler known)
    cohort_dir: Path
    tasks_removed: str | None = None  # the line naming what the cohort cannot train (SearchSpace.drop_tasks)

    @property
    def experiment_dir(self) -> Path:
        return self.location.local_dir

    @property
    def expected(self) -> int:
        """Trials the sweep owes: every configuration times its seeds."""
        return self.num_configs * self.space.repeats

    def context(self, dataset_location: str) -> StudyContext:
        """What every trial needs, once the prepared dataset's location is known."""
        a = self.args
        return StudyContext(self.space, dataset_location, str(self.experiment_dir), a.seed, a.workers_per_trial,
                            a.cpus_per_worker, a.gpus_per_worker, a.max_failures, a.force_ray_train,
                            self.location.experiment_uri if self.location.remote else None)


def build_plan(args: argparse.Namespace) -> StudyPlan:
    """Check the flags against the storage, the space, the scorers, the cluster and the cohort;
    raise ``SystemExit`` with one line on the first problem (see the module docs)."""
    check_gpu_share(args)
    check_address(args.address)
    if args.name is None:
        args.name = f"{Path(args.search_space).stem}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    location = Location(args.storage, args.name)
    if not location.remote:
        check_writable(Path(args.storage), "--storage")
    if args.cache_dir:
        check_writable(Path(args.cache_dir), "--cache-dir")
    if location.has_study() and not args.resume:
        raise SystemExit(f"{location.experiment_uri} already holds a study. Continue it with: "
                         f"{resume_command(args)}, or choose another --name")
    if args.resume and not location.has_study():
        raise SystemExit(f"--resume: no study in {location.experiment_uri} to continue")
    space, space_text = load_study_space(args, location)
    try:
        space.fix(parse_settings(args.set))
    except ValueError as exc:
        raise SystemExit(f"--set: {exc}") from None
    if args.max_epochs is not None:
        space.fixed["epochs"] = args.max_epochs
    _apply_scorers(args, space)
    space.repeats = args.repeats if args.repeats is not None else space.repeats
    args.repeats = space.repeats
    space.cohort_fields = fields = check_data(args)
    missing = {task: column for task, column in OPTIONAL_TARGETS.items() if not fields.get(column, True)}
    tasks_removed = space.drop_tasks(missing, f"the cohort {cohort_dir_of(args)}")  # SearchSpaceError: all need them
    if tasks_removed:
        print(tasks_removed)
    problems = space.check()
    if problems:
        raise SystemExit("\n".join(problems))
    if args.asha and int(space.fixed.get("epochs", 10)) < 2:
        raise SystemExit(f"--asha: stops trials between epochs, so it needs epochs >= 2; "
                         f"{space.path.name} trains {space.fixed.get('epochs')}")
    num_configs = _num_configs(args, space)
    try:
        shape = find_shape(args.cluster_config, address=args.address)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    check_storage_reach(args, location, grows_elsewhere(shape))
    return StudyPlan(args, location, space, space_text, num_configs, shape, cohort_dir_of(args), tasks_removed)


def check_gpu_share(args) -> None:
    """``--trials-per-gpu N`` becomes ``--gpus-per-worker 1/N``; a share of a GPU must divide it
    and is for one-worker trials only (several workers' collective ops need a GPU each)."""
    if args.trials_per_gpu is not None:
        if args.gpus_per_worker:
            raise SystemExit(f"--trials-per-gpu {args.trials_per_gpu} and --gpus-per-worker {args.gpus_per_worker:g}: "
                             f"give one of them (N trials per GPU is --gpus-per-worker 1/N)")
        args.gpus_per_worker = 1.0 / args.trials_per_gpu
    share = args.gpus_per_worker
    if 0 < share < 1:
        n = round(1 / share)
        if abs(n * share - 1) > 1e-6:
            raise SystemExit(f"--gpus-per-worker {share:g}: a share of a GPU must divide it (1/N: 0.5, 0.25, ...), "
                             f"so that trials fill GPUs without leftovers; or pass --trials-per-gpu N")
        if args.workers_per_trial > 1:
            raise SystemExit(f"--gpus-per-worker {share:g} with --workers-per-trial {args.workers_per_trial}: "
                             f"several workers per trial need a whole GPU each (their all-reduce runs on it); "
                             f"share GPUs between one-worker trials instead")
    elif share > 1 and share != int(share):
        raise SystemExit(f"--gpus-per-worker {share:g}: above 1, a whole number of GPUs")


def _apply_scorers(args, space: SearchSpace) -> None:
    """BERTScore's model and the learned scorers become fixed settings of every trial; an
    objective that needs a scorer without its weights here is refused."""
    bertscore = BertScoreConfig.for_model(args.bertscore_model, args.bertscore_layers, args.bertscore_rescale)
    try:
        bertscore.check()
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    learned = usable(args.learned_scorers)
    space.fixed.update(bertscore_model=bertscore.model, bertscore_layers=bertscore.num_layers,
                       bertscore_rescale=bertscore.rescale, learned_scorers=list(learned))
    for objective in space.metrics:
        missing = [n for n, m in METRIC.items() if objective == f"val_{m}" and n not in learned]
        if missing:
            raise SystemExit(f"objective {objective} needs --learned-scorers {missing[0]} with its weights on this machine")


def _num_configs(args, space: SearchSpace) -> int:
    """Configurations to train: ``--num-samples``, else the space's; a grid runs each of its own."""
    if space.budget and args.num_samples is not None and args.num_samples > space.num_samples:
        raise SystemExit(f"--num-samples: at most {space.num_samples} (the sum of {space.path}'s budget per "
                         f"{space.budget[0]}; fewer stops after that many turns), got {args.num_samples}")
    num_configs = args.num_samples if args.num_samples is not None else space.num_samples
    if space.grid_size() and num_configs != space.grid_size():
        if args.num_samples is not None:
            print(f"the grid has {space.grid_size()} configurations; --num-samples {args.num_samples} "
                  f"is ignored (each runs {space.repeats} time(s))")
        num_configs = space.grid_size()
    return num_configs


def _auto_address() -> str | None:
    """Where ``--address auto`` points, as Ray resolves it: ``RAY_ADDRESS``, else the address that
    the last ``ray start`` on this machine wrote to ``<temp>/ray/ray_current_cluster``."""
    env = os.environ.get("RAY_ADDRESS")
    if env and env != "auto":
        return env
    current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    text = current.read_text().strip() if current.is_file() else ""
    return text or None


ADDRESS_TIMEOUT_S = 10


def cohort_dir_of(args) -> Path:
    """The cohort directory the flags name (the synthetic one is generated there if missing)."""
    if args.data in BUILDERS:
        if not args.data_dir:
            raise SystemExit(f"--data {args.data} needs --data-dir: a cohort built by `python -m {BUILDERS[args.data]}`")
        return Path(args.data_dir)
    data_root = DEFAULT_LOCAL_ROOT / "data" if is_uri(args.storage) else Path(args.storage) / ".data"
    return Path(args.data_dir or data_root / f"synthetic-n{args.n_synthetic}-seed{args.data_seed}-{args.image_size}px")


BUILDERS = {"mimic": "data.mimic", "iu": "data.iu_xray"}  # --data sources built by a command of their own


def check_data(args) -> dict[str, bool]:
    """Before anything starts: the cohort a study would read follows the schema (it names the
    column and the row otherwise), and --weights names something that exists. Returns what the
    cohort has (:func:`data.schema.fields_present`; empty for a synthetic cohort not yet
    generated, which has everything)."""
    cohort_dir = cohort_dir_of(args)
    if args.data in BUILDERS and not (cohort_dir / COHORT_FILE).is_file():
        raise SystemExit(f"--data-dir {cohort_dir}: no {COHORT_FILE} there; build the cohort with "
                         f"`python -m {BUILDERS[args.data]} --out {cohort_dir} ...`")
    if args.weights.lower() not in ("imagenet", "none", "random") and not Path(args.weights).is_file():
        raise SystemExit(f"--weights {args.weights}: expected imagenet, none, or an existing weights file")
    if (cohort_dir / COHORT_FILE).is_file():
        return fields_present(read_cohort(cohort_dir))  # read_cohort raises CohortError naming the column and row
    return {}


def check_storage_reach(args, location: Location, elsewhere: str | None) -> None:
    """Refuse a local --storage when trials may run on other machines (``elsewhere`` says why):
    they would write their records where the driver never looks."""
    if elsewhere and not location.remote and not args.shared_storage:
        raise SystemExit(
            f"--storage {args.storage}: a path on this machine, but trials may run on others ({elsewhere}), "
            f"which cannot see it. Pass --storage s3://BUCKET/PREFIX (or gs://, any pyarrow URI), or "
            f"--shared-storage if {args.storage} is mounted at the same path on every node (NFS, EFS)")


def load_study_space(args, location):
    """The search space of this study: the file named by ``--search-space``, or on ``--resume`` the
    text recorded in study.json (so editing or deleting the file cannot change a running study)."""
    if args.resume and location.has_study():
        record = location.read_study()["search_space"]
        return load_space(record["path"], text=record["text"]), record["text"]
    try:
        path = resolve(args.search_space)
    except FileNotFoundError as exc:
        raise SystemExit(f"--search-space {args.search_space}: {exc}") from None
    text = Path(path).read_text()
    return load_space(path, text=text), text


def check_address(address: str | None) -> None:
    """Give up at once on a cluster address nothing answers at (Ray itself retries for minutes)."""
    if address in (None, "local") or address.startswith("ray://"):
        return
    if address == "auto":  # what Ray would pick: RAY_ADDRESS, else the last `ray start` here
        found = _auto_address()
        if found is None:
            raise SystemExit("--address auto: no Ray cluster found (none started here with `ray start` "
                             "or `ray up`, and RAY_ADDRESS is not set); start one, or drop --address "
                             "to run on this machine")
        check_address(found)
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"--address {address}: expected HOST:PORT (the head's GCS address, e.g. "
                         f"10.0.0.5:6379), 'auto' on a cluster node, or no --address to start Ray here")
    try:
        socket.create_connection((host, int(port)), timeout=ADDRESS_TIMEOUT_S).close()
    except OSError as exc:
        raise SystemExit(f"--address {address}: no Ray cluster answers there within {ADDRESS_TIMEOUT_S} s "
                         f"({exc.strerror or exc}); start one (ray up cluster.yaml, or python -m "
                         f"study.cluster up) or correct the address") from None


def check_writable(path: Path, flag: str) -> None:
    """``path`` (or the directory that would hold it) can be written by this user."""
    existing = next(p for p in [path, *path.parents] if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise SystemExit(f"{flag} {path}: cannot write there ({existing} is "
                         f"{'not a directory' if not existing.is_dir() else 'read-only for you'}); "
                         f"pass a directory you can write")


def explain_os_error(exc: OSError, args) -> str:
    """One line for a file-system error during a study: the path, the cause, what to do."""
    path = exc.filename or "?"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        advice = "free some space (or pass --storage / --cache-dir on another disk)"
    elif args.cache_dir is None and "/cache/" in str(path):
        advice = "pass --cache-dir DIR, a directory you can write, for the feature cache"
    else:
        advice = "check the permissions, or pass --storage DIR you can write"
    return f"{path}: {exc.strerror or exc}; {advice}. Results already written are kept"
