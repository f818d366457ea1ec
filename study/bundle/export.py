"""Write a model bundle (:mod:`study.bundle.format`) for one configuration of a finished study.

Everything is checked before anything is written (the study, the configuration, each seed's
``weights.npz``, the prepared dataset, the output folder), the bundle is assembled in a hidden
folder beside ``out`` and renamed into place at the end, so an interrupted export leaves nothing
half-written under the name asked for. The image encoder is rebuilt from what the study recorded
and checked against the study's cached features before it is saved: a bundle whose encoder would
not reproduce the training features is never written.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, replace
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

from data.dataset import PreparedDataset
from data.features import EncoderSpec, build_encoder, load_image, raw_features, standardise
from study.analysis.configs import config_key, config_table, study_objectives
from study.analysis.fronts import finished
from study.results.files import write_json_atomic
from study.results.layout import MODEL_CONFIG, STUDY, TRIALS_DIR, WEIGHTS
from study.results.tables import load
from study.spec.settings import build_configs

from .card import card_data, card_markdown
from .choose import ChoiceError, choose_config, typical_seed
from .format import (CARD_JSON, CARD_MD, ENCODER_STATS, ENCODER_WEIGHTS, FORMAT, MANIFEST, PREPROCESSOR,
                     BundleError, model_file)
from .retrain import check_retrain, retrain_space

ENCODER_CHECK_IMAGES = 4   # training images re-encoded to check the rebuilt encoder
ENCODER_TOLERANCE = 1e-2   # on standardised features stored in float16 (about 3 significant digits)


def plan_export(experiment_dir: str | Path, out: str | Path, *, config_id: str | None = None,
                best: str | None = None, retrain: int | None = None, retrain_on: str = "train") -> dict:
    """Every check of an export, before any work: what will be exported from where. With
    ``retrain`` (seeds to train again) the trials' own weights are not needed."""
    experiment_dir, out = Path(experiment_dir), Path(out)
    if retrain is not None:
        check_retrain(retrain, retrain_on)
    if not (experiment_dir / STUDY).exists():
        raise ChoiceError(f"EXPERIMENT_DIR {experiment_dir}: no {STUDY}; not a study experiment directory")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ChoiceError(f"--out {out}: already exists and is not an empty folder; choose a new folder "
                          f"(an export never overwrites)")
    study = json.loads((experiment_dir / STUDY).read_text())
    objectives = study_objectives(experiment_dir)
    trials = load(experiment_dir)["trials"]
    chosen = choose_config(trials, objectives, config_id=config_id, best=best)
    rows = finished(trials)[config_key(finished(trials)) == chosen]
    for trial_id in rows["trial_id"] if retrain is None else []:
        trial_dir = experiment_dir / TRIALS_DIR / trial_id
        if not (trial_dir / WEIGHTS).exists() or not (trial_dir / MODEL_CONFIG).exists():
            raise ChoiceError(f"trial {trial_id} of configuration {chosen}: no {WEIGHTS} in {trial_dir} "
                              f"(trials finished by versions before the weights were kept cannot be exported)")
    prepared = Path(study["data"]["prepared_dir"])
    if not (prepared / "meta.json").exists():
        raise ChoiceError(f"{experiment_dir / STUDY}: prepared dataset {prepared} not found on this machine; "
                          f"export where the study's data was prepared")
    plan = {"experiment_dir": experiment_dir, "out": out, "study": study, "objectives": objectives,
            "trials": trials, "config_id": chosen, "rows": rows, "prepared": prepared}
    if retrain is not None:
        retrain_space(plan, retrain, retrain_on)  # the settings it would train with are recorded
    return plan


def export_bundle(plan: dict, *, announce=print) -> Path:
    """Write the bundle of :func:`plan_export`'s configuration; return its folder."""
    import keras

    from model.config import ModelConfig
    from model.network import build_model

    out, rows, objectives = plan["out"], plan["rows"], plan["objectives"]
    dataset = PreparedDataset.load(plan["prepared"])
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "models").mkdir(parents=True)
    try:
        seeds = []
        for _, row in rows.sort_values("seed").iterrows():
            trial_dir = plan["experiment_dir"] / TRIALS_DIR / row["trial_id"]
            recorded = json.loads((trial_dir / MODEL_CONFIG).read_text())
            model = build_model(ModelConfig(**recorded["model_config"]))
            with np.load(trial_dir / WEIGHTS) as weights:
                model.set_weights([weights[f"arr_{i}"] for i in range(len(weights.files))])
            seed = int(row["seed"])
            model.save(tmp / model_file(seed))
            result = json.loads((trial_dir / "result.json").read_text())
            seeds.append({"seed": seed, "trial_id": row["trial_id"], "file": model_file(seed),
                          "best_epoch": int(row["best_epoch"]), "settings": result["settings"],
                          "validation": {m: float(row[m]) for m in objectives if pd.notna(row.get(m))}})
            announce(f"model of seed {seed} (trial {row['trial_id']}): {model_file(seed)}")
        spec, weights_loaded, features_dir = _save_encoder(dataset, tmp)
        shutil.copy2(dataset.directory / "preprocessor.json", tmp / PREPROCESSOR)
        seed, distance = typical_seed(rows, objectives)
        default = {"seed": seed, "reason": "the only seed" if len(rows) == 1 else
                   f"its validation objectives lie closest to the configuration's means ({distance:.2f} standard deviations)"}
        _, _, eval_opts = build_configs(seeds[0]["settings"], dataset, seed)
        table = config_table(plan["trials"])
        config = table[table["config_id"] == plan["config_id"]].iloc[0]
        versions = {**plan["study"].get("versions", {}), "keras": keras.__version__,
                    "tensorflow": version("tensorflow")}
        manifest = {"format": FORMAT, "created": time.time(), "config_id": plan["config_id"],
                    "experiment": str(plan["experiment_dir"].resolve()), "objectives": objectives,
                    "tasks": list(ModelConfig(**recorded["model_config"]).tasks),
                    "beam_width": int(eval_opts["beam_width"]), "batch_size": 64,
                    "encoder": {"spec": asdict(spec), "weights_loaded": weights_loaded,
                                "features_fingerprint": features_dir.name, "feature_cache": str(features_dir)},
                    "dataset_fingerprint": dataset.meta["fingerprint"], "seeds": seeds, "default_seed": default,
                    "versions": versions, **({"retrained_from": plan["retrained_from"]} if plan.get("retrained_from") else {})}
        write_json_atomic(tmp / MANIFEST, manifest)
        card = card_data(config=config, seeds=seeds, default_seed=default, study=plan["study"], dataset_meta=dataset.meta,
                         objectives=objectives, versions=versions)
        if plan.get("retrained_from"):
            card["retrained_from"] = plan["retrained_from"]
        write_json_atomic(tmp / CARD_JSON, card)
        (tmp / CARD_MD).write_text(card_markdown(card))
        if out.exists():  # an empty folder made for it
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _save_encoder(dataset: PreparedDataset, tmp: Path) -> tuple[EncoderSpec, str, Path]:
    """Rebuild the study's image encoder, check it against the cached features, save it."""
    meta = dataset.meta
    spec = EncoderSpec(**meta["encoder"])
    loaded = meta["weights_used"]
    if loaded == "random":  # asked for ImageNet offline and fell back: the seeded random CNN
        spec = replace(spec, weights=None)
    elif loaded != "imagenet" and not Path(spec.weights).exists():
        raise BundleError(f"encoder weights file {spec.weights} (recorded by the study) not found")
    model, preprocess, weights_used, _ = build_encoder(replace(spec, fallback_to_random=False))
    features_dir = (dataset.directory / meta["feature_file"]).resolve().parent
    stats = np.load(features_dir / "stats.npz")
    rows = dataset.cohort.index[dataset.cohort["split"] == "train"][:ENCODER_CHECK_IMAGES]
    images = np.stack([load_image(dataset.cohort.loc[r, "image_path"], spec.image_size) for r in rows])
    again = standardise(raw_features(model, preprocess, images), stats["mean"], stats["std"]).astype(np.float32)
    cached = dataset.gather_features(dataset.cohort.loc[rows, "feature_row"].to_numpy())
    gap = float(np.abs(again - cached).max())
    if weights_used != loaded or gap > ENCODER_TOLERANCE:
        raise BundleError(f"the rebuilt image encoder ({spec.name}, {weights_used} weights) does not reproduce "
                          f"the study's cached features (largest difference {gap:.3g}); the bundle was not written")
    model.save_weights(tmp / ENCODER_WEIGHTS)
    np.savez(tmp / ENCODER_STATS, mean=stats["mean"], std=stats["std"])
    return spec, loaded, features_dir
