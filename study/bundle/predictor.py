"""Load a model bundle and predict on studies: from a cohort directory or from images plus a table
of clinical fields. Reads only the bundle (and the images): no study, no Ray, no training code.

The output has one row per study, always the same columns whatever tasks the configuration
trained (a task it did not train leaves its columns empty): ``sample_id``, ``generated``,
``acuity_pred`` (1-5), ``prob_acuity_gt_<k>`` (P(acuity > k), k = 1..4: the ordinal head's
cumulative probabilities), and per finding its 0/1 decision (column named as in the cohort schema)
and ``prob_<finding>``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from data.features import EncoderSpec, ImageError, fingerprint, images_digest
from data.preprocess import Preprocessor, decode_ordinal
from data.schema import ACUITY_LEVELS, FINDINGS, VITALS, CohortError, read_cohort, validate_inputs
from study.trial.predict import predict_arrays

from .format import PREPROCESSOR, BundleError, read_manifest
from .images import encode_images

THRESHOLD = 0.5  # a finding's decision, as the study's metrics decide it


class Bundle:
    """A bundle folder: its manifest, preprocessor and (loaded on demand) one model per seed."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory).resolve()
        self.manifest = read_manifest(self.directory)
        self.preprocessor = Preprocessor.from_dict(json.loads((self.directory / PREPROCESSOR).read_text()))
        self.seeds = [s["seed"] for s in self.manifest["seeds"]]

    def model(self, seed: int):
        import keras

        import model.network  # noqa: F401  registers the model's classes with Keras

        entry = next(s for s in self.manifest["seeds"] if s["seed"] == seed)
        try:
            return keras.saving.load_model(self.directory / entry["file"], compile=False)
        except Exception as exc:
            raise BundleError(f"{self.directory / entry['file']}: cannot be loaded by Keras {keras.__version__} "
                              f"(written with {self.manifest['versions'].get('keras')}): "
                              f"{str(exc).splitlines()[0]}") from None


def cohort_studies(bundle: Bundle, cohort_dir: str | Path, split: str) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The studies of one split of a cohort directory, and their features when the study's own
    feature cache holds them (the same images through the same encoder); ``None`` otherwise."""
    cohort = read_cohort(cohort_dir)
    rows = np.flatnonzero(cohort["split"].to_numpy() == split)
    spec = bundle.manifest["encoder"]
    key = fingerprint(images_digest(cohort["image_path"]), EncoderSpec(**spec["spec"]), spec["weights_loaded"])
    if key != spec["features_fingerprint"]:  # other images than the study's: encode them
        return cohort.iloc[rows].reset_index(drop=True), None
    for root in (Path(spec["feature_cache"]).parent, Path(cohort_dir) / "cache" / "features"):
        cached = root / key / "features.npy"
        if (root / key / "meta.json").exists():
            features = np.load(cached, mmap_mode="r")
            return cohort.iloc[rows].reset_index(drop=True), np.asarray(features[rows], np.float32)
    return cohort.iloc[rows].reset_index(drop=True), None


def table_studies(images_dir: str | Path, clinical: str | Path) -> pd.DataFrame:
    """The studies of a clinical CSV, image paths resolved against ``images_dir`` and checked."""
    try:
        table = pd.read_csv(clinical)
    except FileNotFoundError:
        raise CohortError(f"--clinical {clinical}: file not found") from None
    except Exception as exc:  # pandas raises several types for a broken CSV
        raise CohortError(f"--clinical {clinical}: unreadable CSV ({str(exc).splitlines()[0]})") from None
    for column in VITALS:  # a CSV column with one bad value is read as text: keep the numbers numbers
        if column in table and not pd.api.types.is_numeric_dtype(table[column]):
            table[column] = table[column].astype(object).map(_number_or_text)
    table = validate_inputs(table, clinical)
    root = Path(images_dir).resolve()
    table["image_path"] = [str(p) if Path(p).is_absolute() else str(root / p) for p in table["image_path"]]
    absent = [i for i, p in enumerate(table["image_path"]) if not Path(p).is_file()]
    if absent:
        i = absent[0]
        raise CohortError(f"{clinical}: column 'image_path', row {i} (sample_id {table['sample_id'][i]!r}): "
                          f"image {table['image_path'][i]} not found" +
                          (f" ({len(absent) - 1} more missing)" if len(absent) > 1 else ""))
    return table


def _number_or_text(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def features_for(bundle: Bundle, studies: pd.DataFrame, *, source, cache_dir: Path,
                 progress: bool = True) -> np.ndarray:
    """Features of ``studies`` from their raw images, through the bundle's encoder; an image that
    cannot be read is named with its row of ``source``."""
    try:
        return encode_images(bundle.directory, bundle.manifest, studies["image_path"], cache_dir=cache_dir,
                             progress=progress)
    except ImageError as exc:
        path = str(exc).split(": ", 1)[0]
        i = int(np.flatnonzero(studies["image_path"].to_numpy() == path)[0])
        raise CohortError(f"{source}: column 'image_path', row {i} (sample_id {studies['sample_id'][i]!r}): "
                          f"{exc}") from None


def predict(bundle: Bundle, seed: int, studies: pd.DataFrame, features: np.ndarray, *,
            progress: bool = True) -> pd.DataFrame:
    """One row per study (the columns of the module docstring), from the model of ``seed``."""
    model = bundle.model(seed)
    arrays = {**bundle.preprocessor.inputs(studies), "image_features": features}
    tokenizer = bundle.preprocessor.tokenizers["report"]
    size, n = bundle.manifest["batch_size"], len(studies)
    parts = []
    for start in tqdm(range(0, n, size), desc="predicting", unit="batch", disable=not progress):
        # one batch at a time, the batches a trial evaluates in: the same numbers as its records
        chunk = {k: v[start:start + size] for k, v in arrays.items()}
        parts.append(predict_arrays(model, chunk, tokenizer, bundle.manifest["beam_width"], size))
    tasks = model.cfg.tasks
    out = pd.DataFrame({"sample_id": studies["sample_id"].astype(str).to_numpy()})
    out["generated"] = [g for p in parts for g in p["generated"]] if "text" in tasks else None
    oc = np.concatenate([p["oc"] for p in parts]) if "oc" in tasks else None
    out["acuity_pred"] = pd.array(decode_ordinal(oc), "Int64") if oc is not None else pd.NA
    for k in range(1, ACUITY_LEVELS):
        out[f"prob_acuity_gt_{k}"] = oc[:, k - 1].astype(float) if oc is not None else np.nan
    ml = np.concatenate([p["ml"] for p in parts]) if "ml" in tasks else None
    for j, finding in enumerate(FINDINGS):
        out[finding] = pd.array((ml[:, j] > THRESHOLD).astype(int), "Int64") if ml is not None else pd.NA
        out[f"prob_{finding}"] = ml[:, j].astype(float) if ml is not None else np.nan
    return out
