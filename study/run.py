"""Run a multi-objective study of loss weighting and hyperparameters with Ray Tune + Optuna.

    python study/run.py                              # default study, embedded synthetic cohort
    python study/run.py --search-space smoke         # a ~2 minute first try
    python study/run.py --name my-sweep --resume     # continue an interrupted sweep
    python study/run.py --address auto --workers-per-trial 2 --gpus-per-worker 1   # on a cluster

Flags override the YAML file given with --config (its keys are the flags' long names with
underscores, e.g. ``num_samples: 32``). Results land in STORAGE/NAME/ (see README).
"""
from __future__ import annotations

import argparse
import datetime as dt
import errno
import json
import logging
import os
import re
import socket
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml  # noqa: E402

log = logging.getLogger("study")
ADDRESS_TIMEOUT_S = 10


def build_parser(*, suppress_defaults: bool = False) -> argparse.ArgumentParser:
    """The flags. ``suppress_defaults``: leave flags not given out of the result (to tell what the
    user typed from the defaults)."""
    p = _Parser(prog="python study/run.py", description=__doc__.split("\n")[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", help="YAML file of defaults for these flags")
    p.add_argument("--search-space", default="weights", help="shipped space name (weights, paper, ablation, methods, full, smoke) or a YAML path")
    p.add_argument("--num-samples", type=int, default=None,
                   help="configurations to try (default: the space's num_samples; a grid runs each of its own)")
    p.add_argument("--repeats", type=int, default=None,
                   help="seeds per configuration; the sampler is told their mean (default: the space's repeats, or 1)")
    p.add_argument("--max-epochs", type=int, default=None, help="epochs per trial (overrides the space's 'epochs')")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set",
                   help="fix a setting for every trial, over the space's 'fixed' (repeatable; e.g. "
                        "--set learning_rate=1e-3); a searched or per-config setting cannot be fixed")
    p.add_argument("--storage", default="results", help="root directory of experiments")
    p.add_argument("--name", default=None, help="experiment name (default: <space>-<date>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the experiment STORAGE/NAME")
    p.add_argument("--address", default=None, help="Ray cluster to join ('auto' on a cluster); default: start Ray here")
    p.add_argument("--cluster-config", default=None,
                   help="the cluster's autoscaler YAML, to size concurrency by what the cluster can grow "
                        "to (default with --address: ~/ray_bootstrap_config.yaml, which `ray up` leaves on the head)")
    p.add_argument("--shared-storage", action="store_true",
                   help="the local --storage path is mounted at the same place on every node (NFS, EFS)")
    p.add_argument("--workers-per-trial", type=int, default=1, help="Ray Train workers per trial (data parallel)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs each worker reserves")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs each worker reserves")
    p.add_argument("--max-concurrent", type=int, default=None, help="concurrent trials (default: as many as resources allow)")
    p.add_argument("--max-failures", type=int, default=1, help="retries of a failed trial before it is recorded as failed")
    p.add_argument("--force-ray-train", action="store_true", help="use a Ray Train run even with one worker per trial")
    p.add_argument("--asha", action="store_true", help="stop poor trials early: multi-objective ASHA on every task's validation loss")
    p.add_argument("--data", choices=["synthetic", "mimic"], default="synthetic", help="data source")
    p.add_argument("--cache-dir", default=None,
                   help="where image features and encodings are cached (default: COHORT/cache; use it "
                        "when the cohort directory is read-only)")
    p.add_argument("--data-dir", default=None, help="cohort directory (mimic: built by `python -m data.mimic`; "
                                                    "synthetic: generated there if missing)")
    p.add_argument("--n-synthetic", type=int, default=1600,
                   help="studies in the synthetic cohort (1,600: a test split of 160, enough to tell "
                        "modalities and weightings apart over seeds)")
    p.add_argument("--image-size", type=int, default=224, help="image side for the encoder (and synthetic images)")
    p.add_argument("--encoder", default="EfficientNetB0", help="keras.applications CNN for image features")
    p.add_argument("--weights", default="imagenet", help="encoder weights: imagenet, none, or a local file")
    p.add_argument("--seed", type=int, default=0,
                   help="study seed: the sampler's, and with each configuration and repeat index, every trial's training seed")
    p.add_argument("--data-seed", type=int, default=0,
                   help="seed of the synthetic cohort (part of the data fingerprint; independent of --seed)")
    p.add_argument("--bertscore-model", default=None,
                   help="BERTScore model inside trials: a local directory or a cached Hugging Face name "
                        "(default: the shipped MiniLM-L6; nothing downloads)")
    p.add_argument("--bertscore-layers", type=int, default=None,
                   help="its layer (default 6 for the shipped model, bert-score's default otherwise)")
    p.add_argument("--bertscore-rescale", action="store_true",
                   help="rescale BERTScore with bert-score's baseline for the model")
    p.add_argument("--learned-scorers", nargs="+", default=None, choices=["chexbert", "radgraph"],
                   help="also score reports with CheXbert F1 / RadGraph F1 when their weights are on "
                        "this machine (skipped with one line otherwise; nothing downloads)")
    p.add_argument("--no-report", action="store_true", help="skip plots and summary.md at the end")
    p.add_argument("--verbose", action="store_true", help="show Ray, TensorFlow and Optuna logs in the terminal")
    if suppress_defaults:
        for action in p._actions:
            action.default = argparse.SUPPRESS
    return p


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not the whole usage block
        raise SystemExit(f"{self.prog}: {message} (see --help)")


# Ranges of the numeric flags: (integer?, lowest, highest); None = unbounded. Zero is a value.
FLAG_RANGES = {
    "num_samples": (True, 1, None), "repeats": (True, 1, None), "max_epochs": (True, 1, None),
    "workers_per_trial": (True, 1, None), "cpus_per_worker": (False, 0.01, None),
    "gpus_per_worker": (False, 0.0, None), "max_concurrent": (True, 1, None),
    "max_failures": (True, 0, 100), "seed": (True, 0, 2**32 - 1), "data_seed": (True, 0, 2**32 - 1),
    "n_synthetic": (True, 20, None), "image_size": (True, 32, 1024),
}
# Flags that cannot change a study's results: the only ones a --resume may give differently.
RESUME_MAY_CHANGE = {"resume", "name", "storage", "config", "verbose", "address", "max_concurrent",
                     "no_report", "cluster_config", "shared_storage", "cache_dir"}
NAME_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_flags(values: dict, source: str = "") -> None:
    """Types and ranges of flag values (from the command line or a --config file)."""
    for name, (integer, low, high) in FLAG_RANGES.items():
        value = values.get(name)
        if value is None:
            continue
        flag = f"{source}{name}" if source else f"--{name.replace('_', '-')}"
        kind = isinstance(value, int) if integer else isinstance(value, (int, float))
        allowed = (f"an integer >= {low}" if integer else f"a number >= {low}") + (f" and <= {high}" if high else "")
        if isinstance(value, bool) or not kind or value < low or (high is not None and value > high):
            raise SystemExit(f"{flag}: must be {allowed}, got {value!r}")
    name = values.get("name")
    if name is not None and (not isinstance(name, str) or not NAME_RULE.fullmatch(name)):
        raise SystemExit(f"{source or '--'}name: a plain name (letters, digits, '.', '_', '-'; no '/' "
                         f"or leading '.'), got {name!r}: the experiment goes to STORAGE/NAME")


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    given = vars(build_parser(suppress_defaults=True).parse_known_args(argv)[0])  # typed on the line
    first, _ = parser.parse_known_args(argv)
    if first.config:
        path = Path(first.config)
        if not path.is_file():
            raise SystemExit(f"--config {path}: file not found")
        from study.space import SearchSpaceError, load_yaml

        try:
            values = load_yaml(path.read_text(), f"--config {path}") or {}
        except SearchSpaceError as exc:
            raise SystemExit(str(exc)) from None
        if not isinstance(values, dict):
            raise SystemExit(f"--config {path}: expected a mapping of flag names to values")
        known = {a.dest for a in parser._actions} - {"help", "config"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SystemExit(f"--config {path}: unknown key(s) {unknown}; known: {sorted(known)}")
        check_flags(values, source=f"--config {path}: ")
        parser.set_defaults(**values)
        given = {**values, **given}
        first, _ = parser.parse_known_args(argv)
    check_flags(given)
    if first.resume and first.name:  # a resumed study keeps the settings it was started with
        from study.storage import Location

        location = Location(first.storage, first.name)
        if location.has_study():
            saved = location.read_study()["config"]
            for key, value in given.items():
                if key not in RESUME_MAY_CHANGE and key in saved and saved[key] != value:
                    raise SystemExit(f"--resume: --{key.replace('_', '-')} {value!r} differs from the study's "
                                     f"{saved[key]!r}; a resumed study keeps its settings (only "
                                     f"{', '.join(sorted('--' + k.replace('_', '-') for k in RESUME_MAY_CHANGE - {'resume', 'name', 'storage', 'config'}))} may change)")
            parser.set_defaults(**{k: v for k, v in saved.items() if k not in RESUME_MAY_CHANGE})
    args = parser.parse_args(argv)
    if args.resume and not args.name:
        raise SystemExit("--resume needs --name (the experiment to continue)")
    return args


def quiet(verbose: bool) -> None:
    """Keep TF/Ray/Optuna noise out of the terminal (it still reaches the log files)."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the classic table, with our columns
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("RAY_DEDUP_LOGS", "1")
        import warnings

        warnings.filterwarnings("ignore")
    # Tune's own advice on an interrupted run (Tuner.restore(...)) would sit above ours
    logging.getLogger("ray.tune.tune").addFilter(
        lambda record: not any(s in record.getMessage() for s in ("Resume experiment with", "Trials did not complete")))


def setup_logging(experiment_dir: Path, verbose: bool) -> None:
    experiment_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    file_handler = logging.FileHandler(experiment_dir / "study.log")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(file_handler)
    console = logging.StreamHandler()
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    root.addHandler(console)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)


def cohort_dir_of(args) -> Path:
    """The cohort directory the flags name (the synthetic one is generated there if missing)."""
    from study.storage import DEFAULT_LOCAL_ROOT, is_uri

    if args.data == "mimic":
        if not args.data_dir:
            raise SystemExit("--data mimic needs --data-dir: a cohort built by `python -m data.mimic`")
        return Path(args.data_dir)
    data_root = DEFAULT_LOCAL_ROOT / "data" if is_uri(args.storage) else Path(args.storage) / ".data"
    return Path(args.data_dir or data_root / f"synthetic-n{args.n_synthetic}-seed{args.data_seed}-{args.image_size}px")


def check_data(args) -> None:
    """Before anything starts: the cohort a study would read follows the schema (it names the
    column and the row otherwise), and --weights names something that exists."""
    from data.schema import COHORT_FILE, read_cohort

    cohort_dir = cohort_dir_of(args)
    if args.data == "mimic" and not (cohort_dir / COHORT_FILE).is_file():
        raise SystemExit(f"--data-dir {cohort_dir}: no {COHORT_FILE} there; build the cohort with "
                         f"`python -m data.mimic --out {cohort_dir} ...`")
    if (cohort_dir / COHORT_FILE).is_file():
        read_cohort(cohort_dir)  # raises CohortError naming the column and row
    if args.weights.lower() not in ("imagenet", "none", "random") and not Path(args.weights).is_file():
        raise SystemExit(f"--weights {args.weights}: expected imagenet, none, or an existing weights file")


def prepare_data(args):
    """Cohort directory (synthetic generated on first use) -> prepared dataset (cached)."""
    from data.dataset import prepare
    from data.features import EncoderSpec
    from data.synthetic import generate

    cohort_dir = cohort_dir_of(args)
    if args.data == "synthetic" and not (cohort_dir / "cohort.parquet").exists():
        print(f"generating the synthetic cohort ({args.n_synthetic} studies, data seed {args.data_seed}) "
              f"in {cohort_dir}")
        generate(cohort_dir, n=args.n_synthetic, seed=args.data_seed, image_size=args.image_size)
    weights = None if args.weights.lower() in ("none", "random") else args.weights
    print(f"preparing features and encodings for {cohort_dir} (cached after the first run)")
    return prepare(cohort_dir, cache_dir=args.cache_dir, encoder=EncoderSpec(args.encoder, args.image_size, weights))


def package_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("ray", "tensorflow", "keras", "optuna", "pandas", "pyarrow", "numpy", "bert-score",
                "rouge-score", "pycocoevalcap", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def write_study_json(experiment_dir: Path, args, space, space_text: str, dataset, plan) -> None:
    from study.store import write_json_atomic

    path = experiment_dir / "study.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    record = {
        "created": previous.get("created", dt.datetime.now().isoformat(timespec="seconds")),
        "resumed": previous.get("resumed", []) + ([dt.datetime.now().isoformat(timespec="seconds")]
                                                  if args.resume else []),
        "command": " ".join(sys.argv), "config": vars(args),
        "search_space": {"path": str(space.path), "text": space_text,
                         "objectives": space.objectives, "sampler": space.sampler_name,
                         "repeats": space.repeats, "baseline": space.baseline},
        "seeds": {"study": args.seed, "data": args.data_seed if args.data == "synthetic" else None},
        "versions": package_versions(),
        "data": {"source": args.data, "prepared_dir": str(dataset.directory), **dataset.meta},
        "resources": {"trial": plan.trial_resources, "worker": plan.worker_resources,
                      "max_concurrent": plan.max_concurrent, "sized_by": plan.sized_by},
        "runs": previous.get("runs", []),  # where each invocation's time went (see record_run)
    }
    write_json_atomic(path, record, indent=2)


def record_run(experiment_dir: Path, timings: dict, **facts) -> None:
    """Append this invocation's phase times (seconds) and other facts (the nodes that joined and
    ended while it ran) to study.json."""
    from study.store import write_json_atomic

    path = experiment_dir / "study.json"
    record = json.loads(path.read_text())
    record["runs"] = record.get("runs", []) + [{**{k: round(v, 3) for k, v in timings.items()}, **facts}]
    write_json_atomic(path, record, indent=2)


def summarize(location, space, args):
    """Consolidate the records, print the front of configuration means, render the report, push.
    Returns the trial table."""
    import pandas as pd

    from study.report import front_table
    from study.storage import RECORD_TABLES
    from study.store import CONFIGS, OPTUNA_DB, consolidate

    experiment_dir = location.local_dir
    location.pull_records()
    trials = consolidate(experiment_dir)
    counts = trials["status"].value_counts().to_dict() if len(trials) else {}
    configs = pd.read_parquet(experiment_dir / CONFIGS)
    print(f"\n{len(trials)} trial(s) of {len(configs)} configuration(s) recorded: {counts}")
    if counts.get("STOPPED"):
        print(f"{counts['STOPPED']} stopped early by MO-ASHA (final, not interrupted: recorded with the "
              f"losses they were stopped on, never on the front)")
    objectives = dict(zip(space.metrics, space.modes))
    if "pareto" in configs:
        with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
            print(f"\nPareto front of configuration means, mean [95 % CI] over seeds "
                  f"({', '.join(f'{m} {d}' for m, d in objectives.items())}):")
            print(front_table(configs, objectives).to_string(index=False))
    if not args.no_report and len(trials):
        from study.report import render

        try:
            render(experiment_dir)
            print(f"\nplots and summary: {experiment_dir / 'plots'}/, {experiment_dir / 'summary.md'}")
        except Exception as exc:  # the results are safe on disk; the report can be redone
            print(f"\ncould not render the report ({type(exc).__name__}: {exc}); "
                  f"retry with: python -m study.report {experiment_dir}")
    location.push(*RECORD_TABLES, OPTUNA_DB, "summary.md", "comparison.csv", "methods.csv", "plots", "study.log")
    where = location.experiment_uri if location.remote else experiment_dir
    print(f"\nresults: {where}/trials.parquet, configs.parquet, epochs.parquet, predictions.parquet, study.json")
    print(f"logs:    {where}/study.log (and trials/<id>/trial.log)")
    return trials


def unfinished_trials(trials, expected: int) -> int:
    """Trials the sweep owes: expected minus those with a final record. A trial stopped early by
    the scheduler (``STOPPED``) or failed for good (``ERROR``) is final, not interrupted."""
    return max(0, expected - len(trials))


def check_storage_reach(args, location, elsewhere: str | None) -> None:
    """Refuse a local --storage when trials may run on other machines (``elsewhere`` says why):
    they would write their records where the driver never looks."""
    if elsewhere and not location.remote and not args.shared_storage:
        raise SystemExit(
            f"--storage {args.storage}: a path on this machine, but trials may run on others ({elsewhere}), "
            f"which cannot see it. Pass --storage s3://BUCKET/PREFIX (or gs://, any pyarrow URI), or "
            f"--shared-storage if {args.storage} is mounted at the same path on every node (NFS, EFS)")


def resume_command(args) -> str:
    return f"python study/run.py --storage {args.storage} --name {args.name} --resume"


def parse_settings(items: list[str]) -> dict:
    """``["learning_rate=1e-3", "tasks=[text, oc]"]`` -> settings (values read as YAML)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE, e.g. --set learning_rate=1e-3")
        parsed = yaml.safe_load(value)
        if isinstance(parsed, str):  # YAML reads 1e-3 as text; a number is meant
            try:
                parsed = float(parsed)
            except ValueError:
                pass
        out[key.strip()] = parsed
    return out


def load_study_space(args, location):
    """The search space of this study: the file named by ``--search-space``, or on ``--resume`` the
    text recorded in study.json (so editing or deleting the file cannot change a running study)."""
    from search_spaces import resolve
    from study.space import load_space

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
        from ray._private.services import get_ray_address_from_environment

        try:
            found = get_ray_address_from_environment("auto", None)
        except ConnectionError:
            found = None
        if found in (None, "auto"):
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


def main(argv=None) -> Path:
    """Run a study (see the module docs); returns its directory. ``python study/run.py`` exits
    with :func:`run_study`'s status."""
    return run_study(argv)[0]


def run_study(argv=None) -> tuple[Path, int]:
    """``(experiment directory, exit status)``: 0 when every trial finished, 1 when the sweep was
    interrupted or owes trials, or any trial ended in ERROR."""
    args = parse_args(argv)
    quiet(args.verbose)
    from data.schema import CohortError
    from study.space import SearchSpaceError

    try:
        return _run(args)
    except (SearchSpaceError, CohortError) as exc:
        raise SystemExit(str(exc)) from None
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT):
            raise
        message = explain_os_error(exc, args)
        study = Path(args.storage) / args.name / "study.json" if args.name else None
        if study is not None and study.exists():
            message += f"; continue with: {resume_command(args)}"
        raise SystemExit(message) from None


def _run(args) -> tuple[Path, int]:
    from study.storage import Location, bundle_dataset

    check_address(args.address)
    if args.name is None:
        args.name = f"{Path(args.search_space).stem}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    location = Location(args.storage, args.name)
    experiment_dir = location.local_dir
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
    from study.metrics import BertScoreConfig

    bertscore = BertScoreConfig.for_model(args.bertscore_model, args.bertscore_layers, args.bertscore_rescale)
    try:
        bertscore.check()
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    from study.scorers import METRIC, usable

    learned = usable(args.learned_scorers)
    space.fixed.update(bertscore_model=bertscore.model, bertscore_layers=bertscore.num_layers,
                       bertscore_rescale=bertscore.rescale, learned_scorers=list(learned))
    for objective in space.metrics:
        missing = [n for n, m in METRIC.items() if objective == f"val_{m}" and n not in learned]
        if missing:
            raise SystemExit(f"objective {objective} needs --learned-scorers {missing[0]} with its weights on this machine")
    space.repeats = args.repeats if args.repeats is not None else space.repeats
    args.repeats = space.repeats
    problems = space.check()
    if problems:
        raise SystemExit("\n".join(problems))
    if args.asha and int(space.fixed.get("epochs", 10)) < 2:
        raise SystemExit(f"--asha: stops trials between epochs, so it needs epochs >= 2; "
                         f"{space.path.name} trains {space.fixed.get('epochs')}")
    if space.budget and args.num_samples is not None and args.num_samples > space.num_samples:
        raise SystemExit(f"--num-samples: at most {space.num_samples} (the sum of {space.path}'s budget per "
                         f"{space.budget[0]}; fewer stops after that many turns), got {args.num_samples}")
    num_configs = args.num_samples if args.num_samples is not None else space.num_samples
    if space.grid_size() and num_configs != space.grid_size():
        if args.num_samples is not None:
            print(f"the grid has {space.grid_size()} configurations; --num-samples {args.num_samples} "
                  f"is ignored (each runs {space.repeats} time(s))")
        num_configs = space.grid_size()
    from study import cluster

    try:
        shape = cluster.find_shape(args.cluster_config, on_head=bool(args.address))
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    check_storage_reach(args, location, cluster.off_this_machine(shape, here=None))
    check_data(args)
    setup_logging(experiment_dir, args.verbose)
    clock = time.perf_counter()
    timings = {}
    dataset = prepare_data(args)
    timings["prepare_seconds"] = time.perf_counter() - clock
    if dataset.meta.get("warning"):
        print(f"WARNING: {dataset.meta['warning']}")

    import ray

    from study import tune as study_tune

    env = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"), "PYTHONWARNINGS": "ignore"}
    try:  # without --address: a Ray of our own, never one that `ray start` left running here
        ray.init(address=args.address or "local", log_to_driver=args.verbose, include_dashboard=False,
                 logging_level=logging.INFO if args.verbose else logging.WARNING,
                 runtime_env={"env_vars": env})
    except (ConnectionError, RuntimeError) as exc:
        raise SystemExit(f"--address {args.address}: {str(exc).strip().splitlines()[0]}") from None
    timings["ray_start_seconds"] = time.perf_counter() - clock - timings["prepare_seconds"]
    dataset_location = str(dataset.directory)
    if location.remote:  # nodes fetch one self-contained copy from the shared storage
        rel = f"dataset/{dataset.meta['fingerprint']}"
        if not location.remote.exists(f"{rel}/meta.json"):
            bundle = bundle_dataset(dataset.directory, experiment_dir / rel)
            location.remote.upload(bundle, rel, last="meta.json")  # meta.json marks it complete
        dataset_location = f"{location.experiment_uri}/{rel}"
    context = study_tune.StudyContext(space, dataset_location, str(experiment_dir), args.seed,
                                      args.workers_per_trial, args.cpus_per_worker,
                                      args.gpus_per_worker, args.max_failures, args.force_ray_train,
                                      location.experiment_uri if location.remote else None)
    shape = shape or (cluster.reported_shape() if args.address else None)
    try:
        check_storage_reach(args, location, cluster.off_this_machine(shape, ray.util.get_node_ip_address()))
        plan = study_tune.plan_resources(context, study_tune.cluster_resources(), args.max_concurrent, shape)
    except (SystemExit, ValueError) as exc:
        ray.shutdown()
        raise SystemExit(str(exc)) from None
    if args.resume:
        location.read_study()  # keep created/resumed history from the shared copy
    write_study_json(experiment_dir, args, space, space_text, dataset, plan)
    location.push("study.json")
    expected = num_configs * space.repeats
    print(f"study {args.name}: {num_configs} configuration(s) of {space.path.name} x {space.repeats} seed(s) "
          f"= {expected} trial(s), up to {plan.max_concurrent} at once, {args.workers_per_trial} worker(s) each; "
          f"results in {experiment_dir}")
    start = time.perf_counter()
    stopped_by_user = False
    trials = None
    watch = cluster.NodeWatch(shape)
    try:
        if args.resume and study_tune.tune.Tuner.can_restore(location.experiment_uri):
            tuner = study_tune.restore_tuner(context, plan, location.experiment_uri)
        else:
            tuner = study_tune.build_tuner(context, plan, num_configs=num_configs, repeats=space.repeats,
                                           name=args.name, storage=location.tune_storage, asha=args.asha,
                                           verbose=args.verbose)
        with watch:
            tuner.fit()
    except KeyboardInterrupt:
        stopped_by_user = True
    finally:
        timings["sweep_seconds"] = time.perf_counter() - start
        trials = summarize(location, space, args)
        ray.shutdown()
        timings["report_seconds"] = time.perf_counter() - start - timings["sweep_seconds"]
        record_run(experiment_dir, {"started": time.time() - (time.perf_counter() - clock), **timings},
                   **watch.record())
        location.push("study.json")
    print(f"wall time: {time.perf_counter() - start:.0f} s")
    owed = unfinished_trials(trials, expected) if trials is not None else expected
    failed = int((trials["status"] == "ERROR").sum()) if trials is not None and len(trials) else 0
    if failed:
        print(f"\n{failed} trial(s) failed: their errors are in {experiment_dir / 'trials.parquet'} "
              f"(column error) and trials/<id>/trial.log")
    if stopped_by_user or owed:
        print(f"\nthe sweep did not finish ({owed} of {expected} trial(s) owed); continue it with\n  "
              f"{resume_command(args)}")
    return experiment_dir, 1 if (stopped_by_user or owed or failed) else 0


if __name__ == "__main__":
    sys.exit(run_study()[1])
