"""2. Feature cache: a training epoch on cached image features vs running the CNN in every step.

    python -m benchmarks.feature_cache [--quick]

Both sides run the product's own compiled train step (``model.train.Trainer``) on the same model,
optimizer and batch size; the baseline puts the frozen EfficientNet-B0 in front of the report
model, so the only difference is where the image features come from. The baseline's images are
decoded into memory beforehand, which flatters it: an uncached pipeline would also read and
resize every PNG each epoch (timed separately and reported, not added).

Then it counts encoder runs in the cache's extraction log (:func:`data.features.extraction_log`)
during a second preparation and during a sweep (``study/run.py``, smoke space) on the same
cohort: after the first preparation both should be zero.
"""
from __future__ import annotations

import time

import numpy as np

from .common import Finding, Outcome, cli, run_python


def _with_encoder(encoder, preprocess, report_model, stats_path):
    """The report model with the CNN (frozen) and feature standardisation in front of it."""
    import keras
    from keras import ops

    stats = np.load(stats_path)
    mean, std = stats["mean"], stats["std"]

    class EncoderThenReport(keras.Model):
        def __init__(self):
            super().__init__()
            self.encoder, self.report = encoder, report_model
            self.encoder.trainable = False

        def call(self, inputs, training=False):
            maps = self.encoder(preprocess(inputs["images"]), training=False)       # (B, h, w, D)
            b, d = ops.shape(maps)[0], ops.shape(maps)[-1]
            features = (ops.reshape(maps, (b, -1, d)) - mean) / std                  # (B, L, D)
            return self.report({**inputs, "image_features": features}, training=training)

    return EncoderThenReport()


def epoch_seconds(ws) -> dict:
    import tensorflow as tf

    from data.features import build_encoder, load_image
    from model.config import ModelConfig
    from model.train import TrainConfig, Trainer

    dataset = ws.dataset()
    cfg = ModelConfig.for_dataset(dataset)  # the default (paper-size) model
    trainer = Trainer(cfg, TrainConfig(epochs=1, batch_size=32, learning_rate=1e-3), dataset)
    steps = trainer.steps_per_epoch

    def cached_epoch():
        for batch in trainer._distributed("train", 1, training=True):
            trainer._train_step(batch)

    cached_epoch()  # trace
    start = time.perf_counter()
    cached_epoch()
    cached = time.perf_counter() - start

    # baseline: the same Trainer, its model wrapped with the CNN, fed decoded images
    train = dataset.split("train")
    paths = dataset.cohort["image_path"].to_numpy()[dataset.indices("train")]
    start = time.perf_counter()
    images = np.stack([load_image(p, ws.size["image_size"]) for p in paths])
    decode = time.perf_counter() - start
    encoder, preprocess, _, _ = build_encoder(ws.encoder())
    stats = dataset.directory / dataset.meta["feature_file"]
    trainer.model = _with_encoder(encoder, preprocess, trainer.model, stats.parent / "stats.npz")
    trainer._train_step = trainer._make_train_step()
    b = trainer.batch_size
    keys = ("vitals", "categoricals", "chief_complaint", "icd_title", "report_ids")
    batches = [({"images": tf.constant(images[i:i + b]), **{k: tf.constant(train[k][i:i + b]) for k in keys}},
                {"report_ids": tf.constant(train["report_ids"][i:i + b]),
                 "ordinal": tf.constant(train["ordinal"][i:i + b]),
                 "findings": tf.constant(train["findings"][i:i + b])})
               for i in range(0, steps * b, b)]
    trainer._train_step(batches[0])  # trace
    start = time.perf_counter()
    for batch in batches:
        trainer._train_step(batch)
    in_step = time.perf_counter() - start
    return {"train_samples": steps * b, "steps": steps, "cached_s": cached, "cnn_in_step_s": in_step,
            "png_decode_s": decode, "speedup": in_step / cached}


def encoder_runs(ws) -> dict:
    """Images encoded by the first preparation, a second one, and a sweep on the same cohort."""
    from data.features import extraction_log

    before = len(extraction_log(ws.feature_cache))
    ws.dataset()
    first = extraction_log(ws.feature_cache)[before:]
    ws.dataset(fresh=True)
    second = extraction_log(ws.feature_cache)[before + len(first):]
    mark = before + len(first) + len(second)
    _, wall = run_python(["study/run.py", "--search-space", "smoke", "--num-samples", "2", "--max-epochs", "1",
                          "--storage", str(ws.root / "runs"), "--name", f"cache-{time.time():.0f}",
                          *ws.study_flags()], ws.root / "logs" / "feature_cache_sweep.log")
    sweep = extraction_log(ws.feature_cache)[mark:]
    return {"first_preparation_images": sum(e["images"] for e in first),
            "first_preparation_cached_earlier": not first,
            "second_preparation_images": sum(e["images"] for e in second),
            "sweep_images": sum(e["images"] for e in sweep), "sweep_trials": 2, "sweep_seconds": wall}


def run(ws) -> Outcome:
    start = time.perf_counter()
    runs = encoder_runs(ws)
    timing = epoch_seconds(ws)
    print(f"one epoch ({timing['train_samples']} samples): cached features {timing['cached_s']:.2f} s, "
          f"CNN in the step {timing['cnn_in_step_s']:.2f} s ({timing['speedup']:.1f}x); reading the "
          f"PNGs would add {timing['png_decode_s']:.2f} s per epoch to the baseline")
    print(f"encoder runs: first preparation {runs['first_preparation_images']} images"
          f"{' (cached by an earlier run)' if runs['first_preparation_cached_earlier'] else ''}, "
          f"second preparation {runs['second_preparation_images']}, sweep of "
          f"{runs['sweep_trials']} trials {runs['sweep_images']}")
    after_first = runs["second_preparation_images"] + runs["sweep_images"]
    findings = [
        Finding("2 Feature cache", "training epoch: cached features vs CNN in the step",
                timing["cached_s"], timing["cnn_in_step_s"], "s", timing["speedup"], (">=", 10)),
        Finding("2 Feature cache", "images encoded after the first preparation (2nd prep + sweep)",
                after_first, ws.size["n"], "img", after_first / ws.size["n"], ("<=", 0)),
    ]
    return Outcome("feature_cache", findings, {**timing, **runs}, time.perf_counter() - start)


def main(argv=None) -> Outcome:
    return cli("feature_cache", run, argv, __doc__)


if __name__ == "__main__":
    main()
