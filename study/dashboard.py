"""Watch a study in optuna-dashboard, while its sweep runs or after.

    python -m study.dashboard results/<name> [--port 8080]

Serves the experiment's Optuna study (``optuna.db``: one Optuna trial per configuration, the
objectives' means over seeds, per-epoch validation losses, the loss weights as user attributes
a, b, c) on http://127.0.0.1:PORT/. It listens on this machine only; from a laptop, forward the
port over SSH (``ssh -L 8080:localhost:8080 head-node``, or ``ray attach cluster.yaml -p 8080``).
The same with optuna-dashboard's own command: ``optuna-dashboard sqlite:///results/<name>/optuna.db``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from study.results.layout import OPTUNA_DB
from study.results.optuna_db import optuna_storage


def storage_of(experiment_dir: str | Path):
    """The experiment's Optuna storage; one-line ``ValueError`` when there is none."""
    path = Path(experiment_dir)
    if not path.is_dir():
        raise ValueError(f"{path}: no such experiment directory")
    if not (path / OPTUNA_DB).is_file():
        raise ValueError(f"{path}: no {OPTUNA_DB} (studies run before the Optuna study was kept on disk "
                         f"have none; a running sweep writes it when its first configuration is drawn)")
    return optuna_storage(path)


def build_parser() -> argparse.ArgumentParser:
    """The command's flags (the CLI reference is generated from it)."""
    parser = argparse.ArgumentParser(prog="python -m study.dashboard", description=__doc__.split("\n")[0])
    parser.add_argument("experiment_dir")
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    return parser


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 1024 <= args.port <= 65535:
        parser.error(f"--port: must be an integer >= 1024 and <= 65535, got {args.port}")
    try:
        storage = storage_of(args.experiment_dir)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    from optuna_dashboard import run_server

    print(f"optuna-dashboard for {args.experiment_dir}: http://127.0.0.1:{args.port}/ (Ctrl-C to stop)", flush=True)
    run_server(storage, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    sys.exit(main())
