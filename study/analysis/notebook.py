"""What the notebook needs besides the analysis: where the experiment is, and whether a person's
frontend runs it (widgets) or a batch runner executes it (static plots)."""
from __future__ import annotations

import os
from pathlib import Path

BATCH_RUNNERS = ("nbconvert", "papermill", "nbclient", "pytest")  # execute a notebook without a person


def interactive() -> bool:
    """True when the kernel was started by a frontend a person uses (JupyterLab, Notebook,
    VS Code): widgets then work. False when a batch runner executes the notebook (``jupyter
    nbconvert --execute``, papermill, nbclient in the tests), or with ``MTL_NOTEBOOK_STATIC=1``:
    such a runner shows no widget, and under load nbconvert waited for ever on the reply of a
    widget cell (the kernel idle, the run stuck: reproduced with four busy processes on two
    cores), while the same notebook without the widget finished in 15 s."""
    if os.environ.get("MTL_NOTEBOOK_STATIC") == "1":
        return False
    import psutil

    try:
        parents = psutil.Process().parents()
        command = " ".join(part for p in parents[:3] for part in p.cmdline())
    except psutil.Error:
        return False
    return not any(runner in command for runner in BATCH_RUNNERS)


def resolve_experiment(path: str | None, *, results: Path) -> Path:
    """The experiment directory ``path`` names: absolute, or relative to where Jupyter (or
    nbconvert) was started, to the kernel's directory, or to the project; without ``path``, the
    most recent experiment under ``results``. One-line ``FileNotFoundError`` otherwise."""
    if path is None:
        found = sorted(Path(results).glob("*/trials.parquet"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise FileNotFoundError(f"no experiment under {results}; set EXPERIMENT_DIR to a study's directory")
        return found[-1].parent
    given = Path(path).expanduser()
    if given.is_absolute():
        candidates = [given]
    else:
        import psutil

        starts = []
        try:
            starts = [p.cwd() for p in psutil.Process().parents()[:3]]
        except psutil.Error:
            pass
        candidates = [Path(start) / given for start in [*starts, os.getcwd(), Path(results).parent]]
    for candidate in candidates:
        if (candidate / "trials.parquet").is_file():
            return candidate.resolve()
    raise FileNotFoundError(f"EXPERIMENT_DIR={path}: no trials.parquet there (looked in "
                            f"{', '.join(str(c) for c in dict.fromkeys(candidates))}); is it a study's directory?")
