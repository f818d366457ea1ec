"""The command line of ``python study/run.py``: every flag, its range, ``--config`` files and
``--resume``'s rule that a resumed study keeps its settings. Nothing here starts anything."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import yaml

from data.cli import OneLineParser, python_command
from study.results.remote import Location

from .space import SearchSpaceError
from .space_file import load_yaml

DESCRIPTION = "Run a multi-objective study of loss weighting and hyperparameters with Ray Tune + Optuna."


def build_parser(*, suppress_defaults: bool = False) -> argparse.ArgumentParser:
    """The flags. ``suppress_defaults``: leave flags not given out of the result (to tell what the
    user typed from the defaults)."""
    p = OneLineParser(prog="python study/run.py", description=DESCRIPTION,
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
    p.add_argument("--gpus-per-worker", type=float, default=0.0,
                   help="GPUs each worker reserves: whole GPUs, or 1/N of one to share it (see --trials-per-gpu)")
    p.add_argument("--trials-per-gpu", type=int, default=None, metavar="N",
                   help="pack N one-worker trials on each GPU: each reserves 1/N of it and TensorFlow "
                        "memory is limited to that share (the same as --gpus-per-worker 1/N)")
    p.add_argument("--max-concurrent", type=int, default=None, help="concurrent trials (default: as many as resources allow)")
    p.add_argument("--max-failures", type=int, default=1, help="retries of a failed trial before it is recorded as failed")
    p.add_argument("--force-ray-train", action="store_true", help="use a Ray Train run even with one worker per trial")
    p.add_argument("--asha", action="store_true", help="stop poor trials early: multi-objective ASHA on every task's validation loss")
    p.add_argument("--data", choices=["synthetic", "mimic", "iu"], default="synthetic",
                   help="data source: the embedded synthetic cohort, or a cohort built by `python -m data.mimic` "
                        "or `python -m data.iu_xray` (with --data-dir)")
    p.add_argument("--cache-dir", default=None,
                   help="where image features and encodings are cached (default: COHORT/cache; use it "
                        "when the cohort directory is read-only)")
    p.add_argument("--data-dir", default=None, help="cohort directory (mimic, iu: built by `python -m data.mimic` or "
                                                    "`python -m data.iu_xray`; synthetic: generated there if missing)")
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



# Ranges of the numeric flags: (integer?, lowest, highest); None = unbounded. Zero is a value.
FLAG_RANGES = {
    "num_samples": (True, 1, None), "repeats": (True, 1, None), "max_epochs": (True, 1, None),
    "workers_per_trial": (True, 1, None), "cpus_per_worker": (False, 0.01, None),
    "gpus_per_worker": (False, 0.0, None), "trials_per_gpu": (True, 1, None), "max_concurrent": (True, 1, None),
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


def resume_command(args) -> str:
    """The command that continues the study, as the user can paste it in the project's directory."""
    return f"{python_command()} study/run.py --storage {args.storage} --name {args.name} --resume"
