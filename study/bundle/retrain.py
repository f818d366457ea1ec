"""Train one configuration of a study again with more seeds, as a study of its own.

``python -m study.export ... --retrain R`` writes a one-configuration grid space holding every
setting the configuration trained with, and runs it through ``study/run.py`` with R seeds on the
same data and resources as the original study: on Ray like any trial, resumable, exactly once.
The bundle is then exported from that study. Nothing here imports Ray: the sweep runs in its own
process, the command a user would type.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from study.analysis.fronts import finished
from study.analysis.configs import config_key
from study.results.layout import RESULT, STUDY, TRIALS_DIR

from model.config import FIT_ON

from .choose import ChoiceError

RUN = Path(__file__).resolve().parents[1] / "run.py"
# the original study's flags that a retrain keeps: where the data is and how trials are placed
KEPT_FLAGS = ("data", "n_synthetic", "image_size", "encoder", "weights", "data_seed", "bertscore_model",
              "bertscore_layers", "learned_scorers", "workers_per_trial", "cpus_per_worker",
              "gpus_per_worker", "max_failures", "address")
SWITCHES = ("bertscore_rescale", "shared_storage", "force_ray_train", "no_report")


def retrain_name(experiment_dir: Path, config_id: str, fit_on: str = "train") -> str:
    return f"{experiment_dir.name}-retrain-{config_id}" + ("" if fit_on == "train" else "-on-train-validate")


def check_retrain(repeats: int, fit_on: str) -> None:
    """The two flags of a retraining, checked before anything is read."""
    if repeats < 1:
        raise ChoiceError(f"--retrain {repeats}: must be at least 1 (the number of seeds to train)")
    if fit_on not in FIT_ON:
        raise ChoiceError(f"--retrain-on {fit_on}: must be one of {', '.join(FIT_ON)}")


def retrain_space(plan: dict, repeats: int, fit_on: str = "train") -> str:
    """The YAML of a grid of one: the configuration's settings, fixed, ``repeats`` seeds, and the
    original study's objectives (so the bundle's card reads as the study's). ``fit_on``
    ``train+validate``: trained on both splits for the median of the seeds' best epochs."""
    check_retrain(repeats, fit_on)
    rows = plan["rows"]
    if rows.empty:
        raise ChoiceError(f"configuration {plan['config_id']}: no finished trial records its settings")
    recorded = plan["experiment_dir"] / TRIALS_DIR / rows["trial_id"].iloc[0] / RESULT
    if not recorded.exists():
        raise ChoiceError(f"configuration {plan['config_id']}: {recorded} not found; its settings are recorded there")
    settings = json.loads(recorded.read_text())["settings"]
    how = "on the training split"
    if fit_on != "train":
        epochs = max(1, int(round(float(rows["best_epoch"].median()))))
        settings = {**settings, "fit_on": fit_on, "epochs": epochs}
        how = f"on training plus validation data for {epochs} epochs (the median best epoch of its seeds)"
    space = {
        "description": f"configuration {plan['config_id']} of study {plan['experiment_dir'].name}, trained "
                       f"again with {repeats} seed(s) {how} (python -m study.export --retrain)",
        "sampler": "grid", "num_samples": 1, "repeats": repeats,
        "objectives": [{"metric": m, "mode": d} for m, d in plan["objectives"].items()],
        "fixed": settings,
        "configs": [{"name": f"retrain-{plan['config_id']}"}],
    }
    return yaml.safe_dump(space, sort_keys=False)


def retrain_command(plan: dict, space_file: Path, *, name: str, seed: int, resume: bool) -> list[str]:
    """``study/run.py`` flags: the new space, beside the original study, on its data (the cohort
    and cache it prepared, by absolute path) and with its resources."""
    original = plan["study"]["config"]
    data = plan["study"]["data"]
    command = [sys.executable, str(RUN), "--search-space", str(space_file), "--name", name,
               "--storage", str(plan["experiment_dir"].resolve().parent), "--seed", str(seed),
               "--data-dir", str(data["cohort_dir"]), "--cache-dir", str(Path(data["prepared_dir"]).parents[1])]
    for key in KEPT_FLAGS:
        value = original.get(key)
        if value is not None:
            command += [f"--{key.replace('_', '-')}", *map(str, value if isinstance(value, list) else [value])]
    command += [f"--{key.replace('_', '-')}" for key in SWITCHES if original.get(key)]
    return command + (["--resume"] if resume else [])


def retrain(plan: dict, repeats: int, fit_on: str = "train") -> Path:
    """Run the retraining study (resuming it when an earlier export was interrupted); return its
    experiment directory. Its study seed is the original's + 1, so its models are new ones, not
    the originals trained again."""
    text = retrain_space(plan, repeats, fit_on)
    name = retrain_name(plan["experiment_dir"], plan["config_id"], fit_on)
    target = plan["experiment_dir"].resolve().parent / name
    resume = (target / STUDY).exists()
    if resume and json.loads((target / STUDY).read_text())["search_space"]["text"] != text:
        raise ChoiceError(f"--retrain {repeats}: {target} holds a retraining of configuration {plan['config_id']} "
                          f"with other settings or seeds; move it away to train again")
    space_file = target.parent / f".{name}.yaml"
    space_file.write_text(text)
    study_seed = int(plan["study"]["config"].get("seed") or 0) + 1
    try:
        done = subprocess.run(retrain_command(plan, space_file, name=name, seed=study_seed, resume=resume))
    finally:
        space_file.unlink(missing_ok=True)
    if done.returncode:
        raise ChoiceError(f"--retrain: the retraining study {target} stopped (exit {done.returncode}); "
                          f"run the same export command again to resume it")
    return target


def retrained_config(experiment_dir: Path, trials) -> str:
    """The one configuration of a retraining study."""
    ids = sorted(set(config_key(finished(trials))))
    if len(ids) != 1:
        raise ChoiceError(f"{experiment_dir}: expected one retrained configuration, found {len(ids)}")
    return ids[0]
