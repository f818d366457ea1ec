"""Raw images through a bundle's own image encoder, as the study's features were made.

The same steps as :func:`data.features.extract_features` (:func:`~data.features.load_image`,
:func:`~data.features.raw_features`, :func:`~data.features.standardise`), with the bundle's encoder
weights and the *training* statistics saved in the bundle (never statistics of the new images).
Features are cached under ``cache_dir`` by a key of the images and the bundle's encoder, so a
second prediction on the same images runs no CNN.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from data.features import EncoderSpec, build_encoder, images_digest, load_image, raw_features, standardise

from .format import ENCODER_STATS, ENCODER_WEIGHTS


def encoder_key(bundle_dir: Path, image_paths) -> str:
    """Cache key: the images (names and bytes) and the bundle's encoder weights and statistics."""
    h = hashlib.sha256(images_digest(image_paths).encode())
    for name in (ENCODER_WEIGHTS, ENCODER_STATS):
        h.update(hashlib.sha256((bundle_dir / name).read_bytes()).digest())
    return h.hexdigest()[:20]


def encode_images(bundle_dir: Path, manifest: dict, image_paths, *, cache_dir: Path, batch_size: int = 32,
                  progress: bool = True) -> np.ndarray:
    """(N, L, D) float32 features of ``image_paths`` (float16-rounded, as the study stored them).
    Raises :class:`data.features.ImageError` naming the first image that cannot be read."""
    image_paths = [str(p) for p in image_paths]
    directory = Path(cache_dir) / encoder_key(bundle_dir, image_paths)
    if (directory / "meta.json").exists():
        return np.load(directory / "features.npy").astype(np.float32)
    spec = EncoderSpec(**{**manifest["encoder"]["spec"], "weights": str(bundle_dir / ENCODER_WEIGHTS)})
    model, preprocess, _, _ = build_encoder(spec)
    stats = np.load(bundle_dir / ENCODER_STATS)
    _, h, w, d = model.output_shape
    out = np.empty((len(image_paths), h * w, d), np.float16)
    with tqdm(total=len(image_paths), desc=f"{spec.name} features", unit="img", disable=not progress) as bar:
        for start in range(0, len(image_paths), batch_size):
            batch = np.stack([load_image(p, spec.image_size) for p in image_paths[start:start + batch_size]])
            raw = raw_features(model, preprocess, batch)                                 # (B, L, D)
            out[start:start + len(batch)] = standardise(raw, stats["mean"], stats["std"])
            bar.update(len(batch))
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / "features.tmp.npy"
    np.save(tmp, out)
    tmp.replace(directory / "features.npy")
    (directory / "meta.json").write_text(json.dumps({"n": len(image_paths), "encoder": spec.name,
                                                      "images": image_paths[:3] + (["..."] if len(image_paths) > 3 else [])}))
    return out.astype(np.float32)
