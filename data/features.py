"""Image features from a pretrained CNN, extracted once per fingerprint and cached on disk.

The fingerprint covers the image bytes, the encoder name, the input size and the weights actually
loaded, so a sweep (and every later run) reuses one extraction, changing any of those re-extracts,
and features of a random-weight fallback are never taken for ImageNet features (an offline run
asking for ImageNet builds the encoder to find out what it gets, then reuses the fallback's cache).

Why standardise before storing: with random weights (the offline fallback) EfficientNet-B0's
activations are around 1e-5; in float16 they collapse to a few thousand distinct values and carry
no signal. Standardised per channel with *training-split* statistics they keep it (docs/design.md),
so features are stored as ``(x - mean_train) / std_train`` in float16, whatever the weights.

Extraction is resumable: raw float32 features are written batch by batch into a memory-mapped
file with a progress record, so an interruption or a bad image never loses the extracted part.
Every run of the encoder, in any process, appends a line to ``<cache_root>/extractions.jsonl``
(:func:`extraction_log`): how many images it encoded, when, where. A cache hit appends nothing,
which is how the benchmarks show that a sweep never runs the CNN again.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

log = logging.getLogger(__name__)
RANDOM_WEIGHTS_WARNING = ("image encoder has RANDOM weights: ImageNet weights were not available "
                          "(no network and no local weights file). Features still carry signal "
                          "after standardisation, but results are not comparable to the paper's.")


EXTRACTION_LOG = "extractions.jsonl"
RESOLVED = "resolved.json"  # weights asked for -> weights loaded, when they differed (offline fallback)


class ImageError(ValueError):
    """An image could not be read; the message names the file."""


@dataclass(frozen=True)
class EncoderSpec:
    """Which CNN turns an image into L x D vectors.

    ``weights``: ``"imagenet"`` (Keras downloads or reuses ~/.keras/models), a path to a local
    weights file, or ``None`` for random weights (seeded by ``seed``). ``fallback_to_random``: when ImageNet weights
    cannot be had, continue with random weights and a loud warning instead of failing.
    """

    name: str = "EfficientNetB0"
    image_size: int = 224
    weights: str | None = "imagenet"
    fallback_to_random: bool = True
    seed: int = 0  # initialises random weights, so a random encoder is the same in every run


def tensorflow_quiet() -> bool:
    """Whether TensorFlow was asked to keep its start-up lines to itself (``TF_CPP_MIN_LOG_LEVEL``
    above 0, which ``study/run.py`` sets unless ``--verbose``)."""
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") not in ("", "0")


@contextmanager
def native_stderr_to_log():
    """While TensorFlow loads, its C++ start-up lines (absl's "All log messages before
    absl::InitializeLog()", oneDNN's notice, the CUDA probe) go straight to file descriptor 2,
    before ``TF_CPP_MIN_LOG_LEVEL`` is read by anything that honours it. When TensorFlow is asked
    to be quiet, the descriptor points at a temporary file meanwhile, and its text goes to this
    module's log (the study's ``study.log``) instead of the terminal."""
    if not tensorflow_quiet():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace").strip()
            if text:
                log.info("TensorFlow's start-up output:\n%s", text)


def build_encoder(spec: EncoderSpec):
    """Return ``(model, preprocess_fn, weights_used, warning)`` for a keras.applications CNN."""
    with native_stderr_to_log():
        import keras  # imported here so the cohort code runs without TensorFlow loaded

    try:
        constructor = getattr(keras.applications, spec.name)
    except AttributeError:
        raise ValueError(f"encoder name {spec.name!r} is not a keras.applications model "
                         f"(e.g. 'EfficientNetB0', 'ResNet50', 'DenseNet121')") from None
    preprocess = importlib.import_module(constructor.__module__).preprocess_input
    shape = (spec.image_size, spec.image_size, 3)

    def make(weights):
        keras.utils.set_random_seed(spec.seed)
        return constructor(include_top=False, weights=weights, input_shape=shape)

    if spec.weights is None:
        return make(None), preprocess, "random", RANDOM_WEIGHTS_WARNING
    if spec.weights != "imagenet":
        path = Path(spec.weights)
        if not path.exists():
            raise FileNotFoundError(f"encoder weights file {path} does not exist")
        model = make(None)
        model.load_weights(str(path))
        return model, preprocess, f"file:{path.name}", None
    interactive = keras.config.is_interactive_logging_enabled()
    if tensorflow_quiet():  # Keras's "Downloading data from ..." to the log: offline it is retried in vain
        keras.config.disable_interactive_logging()
    try:
        return make("imagenet"), preprocess, "imagenet", None
    except Exception as exc:  # no network: urllib raises URLError / OSError / Exception
        if not spec.fallback_to_random:
            raise RuntimeError(f"could not load ImageNet weights for {spec.name}: {exc}") from exc
        # said once, by whoever runs the extraction (the driver prints FeatureCache's warning)
        log.info("%s (%s)", RANDOM_WEIGHTS_WARNING, exc)
        return make(None), preprocess, "random", RANDOM_WEIGHTS_WARNING
    finally:
        if interactive:
            keras.config.enable_interactive_logging()


def load_image(path: str | Path, size: int) -> np.ndarray:
    """Read a grayscale X-ray as float32 (size, size, 3) in 0-255, the CNN's expected range."""
    try:
        with Image.open(path) as im:
            im = im.convert("L").resize((size, size), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.float32)
    except FileNotFoundError:
        raise ImageError(f"{path}: image file not found") from None
    except Exception as exc:
        raise ImageError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from exc
    return np.repeat(arr[:, :, None], 3, axis=2)


def images_digest(image_paths) -> str:
    """Hash of the image names and contents."""
    h = hashlib.sha256()
    for p in image_paths:
        h.update(Path(p).name.encode())
        try:
            h.update(hashlib.sha1(Path(p).read_bytes()).digest())
        except OSError:
            h.update(b"<missing>")  # a missing file is reported (or skipped) during extraction
    return h.hexdigest()


def requested_weights(spec: EncoderSpec) -> str:
    """What ``spec`` asks for, named as :func:`build_encoder` names what it loaded."""
    return "random" if spec.weights is None else "imagenet" if spec.weights == "imagenet" else \
        f"file:{Path(spec.weights).name}"


def fingerprint(images: str, spec: EncoderSpec, weights_loaded: str) -> str:
    """Key of the features: the images (:func:`images_digest`), the encoder, its input size and
    the weights actually *loaded* (``imagenet``, ``random`` with its seed, or a file's bytes), so
    a random fallback is never stored under, or reused as, ImageNet features."""
    settings = {"name": spec.name, "image_size": spec.image_size, "weights": weights_loaded,
                "seed": spec.seed if weights_loaded == "random" else None}
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode() + images.encode())
    if weights_loaded.startswith("file:"):
        h.update(hashlib.sha256(Path(spec.weights).read_bytes()).digest())
    return h.hexdigest()[:20]


@dataclass
class FeatureCache:
    """A finished extraction: standardised float16 features for every readable image."""

    directory: Path
    meta: dict

    @property
    def features(self) -> np.ndarray:
        """(N, L, D) float16 memory map, rows in the order of the image list; skipped rows are 0."""
        return np.load(self.directory / "features.npy", mmap_mode="r")

    @property
    def skipped(self) -> list[int]:
        return self.meta["skipped"]


def extract_features(image_paths, train_mask, spec: EncoderSpec, cache_root: str | Path, *,
                     on_bad_image: str = "raise", batch_size: int = 32,
                     progress: bool = True) -> FeatureCache:
    """Extract (or reuse) features for ``image_paths``; standardise with rows where ``train_mask``.

    ``on_bad_image``: ``"raise"`` stops with an :class:`ImageError` naming the file (what was
    extracted so far is kept and the next call resumes), ``"skip"`` records the row as skipped.
    """
    if on_bad_image not in ("raise", "skip"):
        raise ValueError(f"on_bad_image must be 'raise' or 'skip', got {on_bad_image!r}")
    image_paths = [str(p) for p in image_paths]
    train_mask = np.asarray(train_mask, dtype=bool)
    images = images_digest(image_paths)
    directory = Path(cache_root) / fingerprint(images, spec, requested_weights(spec))
    if (directory / "meta.json").exists():
        log.info("feature cache hit: %s", directory)
        return FeatureCache(directory, json.loads((directory / "meta.json").read_text()))
    resolved = _resolutions(cache_root).get(directory.name)
    if resolved and not _imagenet_weights_on_disk(spec):  # offline as last time: no encoder, no download try
        known = Path(cache_root) / resolved["fingerprint"]
        if (known / "meta.json").exists():
            log.info("feature cache hit (%s weights, as recorded): %s", resolved["weights_used"], known)
            return FeatureCache(known, {**json.loads((known / "meta.json").read_text()), "warning": resolved["warning"]})

    model, preprocess, weights_used, warning = build_encoder(spec)
    if weights_used != requested_weights(spec):  # ImageNet unavailable: keyed by the fallback
        asked = directory.name
        directory = Path(cache_root) / fingerprint(images, spec, weights_used)
        _record_resolution(cache_root, asked, {"fingerprint": directory.name, "weights_used": weights_used,
                                               "warning": warning})
        if (directory / "meta.json").exists():
            log.info("feature cache hit (%s weights): %s", weights_used, directory)
            return FeatureCache(directory, {**json.loads((directory / "meta.json").read_text()),
                                            "warning": warning})
    directory.mkdir(parents=True, exist_ok=True)
    log_entry = {"fingerprint": directory.name, "encoder": spec.name, "images": 0,
                 "started": time.time(), "host": socket.gethostname(), "pid": os.getpid()}
    h, w, d = model.output_shape[1:]
    raw_path, progress_path = directory / "raw.f32.npy", directory / "progress.json"
    state = json.loads(progress_path.read_text()) if progress_path.exists() else {"done": 0, "skipped": []}
    raw = np.lib.format.open_memmap(raw_path, mode="r+" if raw_path.exists() and state["done"] else "w+",
                                    dtype=np.float32, shape=(len(image_paths), h * w, d))
    bar = tqdm(total=len(image_paths), initial=state["done"], desc=f"{spec.name} features",
               unit="img", disable=not progress)
    try:
        while state["done"] < len(image_paths):
            start = state["done"]
            rows = range(start, min(start + batch_size, len(image_paths)))
            images, ok = [], []
            for i in rows:
                try:
                    images.append(load_image(image_paths[i], spec.image_size))
                    ok.append(i)
                except ImageError:
                    if on_bad_image == "raise":
                        raise
                    state["skipped"].append(i)
            if images:
                raw[ok] = raw_features(model, preprocess, np.stack(images))       # (B, L, D)
                log_entry["images"] += len(ok)
            raw.flush()
            state["done"] = rows.stop
            progress_path.write_text(json.dumps(state))  # after the flush: never claims unwritten rows
            bar.update(len(rows))
    finally:
        bar.close()
        with open(Path(cache_root) / EXTRACTION_LOG, "a") as f:  # one line per encoder run
            f.write(json.dumps({**log_entry, "seconds": time.time() - log_entry["started"]}) + "\n")

    usable = train_mask.copy()
    usable[state["skipped"]] = False
    if not usable.any():
        raise ValueError("no readable training image to compute the feature statistics from")
    mean, std = _channel_stats(raw, np.flatnonzero(usable))
    final = np.lib.format.open_memmap(directory / "features.tmp.npy", mode="w+", dtype=np.float16,
                                      shape=raw.shape)
    for s in range(0, len(raw), 256):
        final[s:s + 256] = standardise(raw[s:s + 256], mean, std)
    final[state["skipped"]] = 0
    final.flush()
    del final
    (directory / "features.tmp.npy").replace(directory / "features.npy")
    np.savez(directory / "stats.npz", mean=mean, std=std)
    meta = {"encoder": asdict(spec), "weights_used": weights_used, "warning": warning,
            "n": len(image_paths), "tokens": h * w, "dim": d, "skipped": sorted(state["skipped"]),
            "skipped_files": [image_paths[i] for i in sorted(state["skipped"])]}
    (directory / "meta.json").write_text(json.dumps(meta, indent=2))  # written last: marks done
    del raw
    raw_path.unlink()
    progress_path.unlink()
    return FeatureCache(directory, meta)


def _resolutions(cache_root: str | Path) -> dict:
    """What earlier runs loaded when they could not load what they asked for (fingerprint of the
    request -> fingerprint, weights and warning of what was loaded)."""
    path = Path(cache_root) / RESOLVED
    return json.loads(path.read_text()) if path.exists() else {}


def _record_resolution(cache_root: str | Path, asked: str, loaded: dict) -> None:
    path = Path(cache_root) / RESOLVED
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({**_resolutions(cache_root), asked: loaded}, indent=1))
    tmp.replace(path)


def _imagenet_weights_on_disk(spec: EncoderSpec) -> bool:
    """Whether Keras now holds ImageNet weights for ``spec``'s encoder in its cache
    (``$KERAS_HOME/models``, by default ``~/.keras/models``): then a recorded fallback to random
    weights is no longer the answer, and the encoder is built again."""
    models = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
    return spec.weights == "imagenet" and any(models.glob(f"{spec.name.lower()}*"))


def extraction_log(cache_root: str | Path) -> list[dict]:
    """Every encoder run recorded under ``cache_root`` (oldest first); empty if none."""
    path = Path(cache_root) / EXTRACTION_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def raw_features(model, preprocess, images: np.ndarray) -> np.ndarray:
    """(B, L, D) float32 CNN features of a batch of loaded images (:func:`load_image`), through
    the encoder's own preprocessing: what is standardised and cached."""
    _, h, w, d = model.output_shape
    return np.asarray(model.predict_on_batch(preprocess(images)), np.float32).reshape(len(images), h * w, d)


def standardise(raw: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Features as stored: per-channel standardised with the *training* statistics, float16."""
    return ((raw - mean) / std).astype(np.float16)


def _channel_stats(raw: np.ndarray, rows: np.ndarray, chunk: int = 256):
    """Per-channel mean and std over the given rows and all L positions, in float64 chunks."""
    total, sq, count = 0.0, 0.0, 0
    for s in range(0, len(rows), chunk):
        x = np.asarray(raw[rows[s:s + chunk]], dtype=np.float64).reshape(-1, raw.shape[-1])
        total, sq, count = total + x.sum(0), sq + (x ** 2).sum(0), count + len(x)
    mean = total / count
    std = np.sqrt(np.maximum(sq / count - mean ** 2, 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-12).astype(np.float32)
