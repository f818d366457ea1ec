"""The files of a model bundle (its layout in one place, as :mod:`study.results.layout` is for an
experiment directory)::

    BUNDLE/
        bundle.json              what the bundle holds (read first; its ``format`` is checked)
        MODEL_CARD.md, model_card.json
        preprocessor.json        the fitted vital scaling, categories and vocabularies
        encoder.weights.h5       the image encoder's weights (a keras.applications CNN)
        encoder_stats.npz        per-channel mean and std of the training split's raw features
        models/seed-<S>.keras    the trained model of seed S, in Keras 3's native format
"""
from __future__ import annotations

import json
from pathlib import Path

FORMAT = 1  # raised when a bundle written by this version cannot be read by an older one
MANIFEST = "bundle.json"
CARD_MD, CARD_JSON = "MODEL_CARD.md", "model_card.json"
PREPROCESSOR = "preprocessor.json"
ENCODER_WEIGHTS, ENCODER_STATS = "encoder.weights.h5", "encoder_stats.npz"
MODELS = "models"


def model_file(seed: int) -> str:
    return f"{MODELS}/seed-{seed}.keras"


class BundleError(ValueError):
    """A bundle directory is missing, incomplete or written by an incompatible version."""


def read_manifest(bundle_dir: str | Path) -> dict:
    """``bundle.json`` of ``bundle_dir``, after checking that this version can read it."""
    path = Path(bundle_dir) / MANIFEST
    if not path.exists():
        raise BundleError(f"{bundle_dir}: not a model bundle (no {MANIFEST}); write one with "
                          f"`python -m study.export EXPERIMENT_DIR --config-id ID --out BUNDLE_DIR`")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}: unreadable JSON ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{path}: format {manifest.get('format')!r}, this version reads format {FORMAT} "
                          f"(export the configuration again with this version)")
    absent = [f for f in (PREPROCESSOR, ENCODER_WEIGHTS, ENCODER_STATS, *(s["file"] for s in manifest["seeds"]))
              if not (Path(bundle_dir) / f).exists()]
    if absent:
        raise BundleError(f"{bundle_dir}: incomplete bundle, missing {absent}")
    return manifest
