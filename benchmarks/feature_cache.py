"""2. Feature cache: a training epoch on cached image features vs running the CNN in every step.

    python -m benchmarks.feature_cache [--quick]

Both sides run the product's own compiled train step (``model.train.Trainer``) on the same model,
optimizer and batch size; the baseline puts the frozen EfficientNet-B0 in front of the report
model, so the only difference is where the image features come from. The baseline's images are
decoded into memory beforehand, which flatters it: an uncached pipeline would also read and
resize every PNG each epoch (timed separately and reported, not added). Both paths' FLOPs are
counted with TensorFlow's profiler: (encoder + step) / step is the ratio to expect if both ran
at the same FLOP rate, which is what bounds this benchmark.

Then it counts encoder runs in the cache's extraction log (:func:`data.features.extraction_log`)
during a second preparation and during a sweep (``study/run.py``, smoke space) on the same
cohort: after the first preparation both should be zero.
"""
from __future__ import annotations

import time

import numpy as np

from .common import Finding, Outcome, cli, graph_flops, run_python


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


def epoch_seconds(ws, repeats: int = 2) -> dict:
    """Best-of-``repeats`` epoch time of both paths, and the FLOP ceiling of their ratio."""
    import tensorflow as tf

    from data.features import build_encoder, load_image
    from model.config import ModelConfig
    from model.train import TrainConfig, Trainer

    dataset = ws.dataset()
    cfg = ModelConfig.for_dataset(dataset)  # the default (paper-size) model
    trainer = Trainer(cfg, TrainConfig(epochs=1, batch_size=32, learning_rate=1e-3), dataset)
    b, steps = trainer.batch_size, trainer.steps_per_epoch

    def best_epoch(batches_of_epoch) -> float:
        trainer._train_step(next(iter(batches_of_epoch())))  # trace outside the timing
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for batch in batches_of_epoch():
                trainer._train_step(batch)
            times.append(time.perf_counter() - start)
        return min(times)

    def cached_batches():  # the product's own input pipeline
        return trainer._distributed("train", 1, training=True)

    cached = best_epoch(cached_batches)
    step_flops = graph_flops(trainer._train_step, next(iter(cached_batches()))) / b

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
    keys = ("vitals", "categoricals", "chief_complaint", "icd_title", "report_ids")
    batches = [({"images": tf.constant(images[i:i + b]), **{k: tf.constant(train[k][i:i + b]) for k in keys}},
                {"report_ids": tf.constant(train["report_ids"][i:i + b]),
                 "ordinal": tf.constant(train["ordinal"][i:i + b]),
                 "findings": tf.constant(train["findings"][i:i + b])})
               for i in range(0, steps * b, b)]
    in_step = best_epoch(lambda: batches)
    size = ws.size["image_size"]
    encoder_flops = graph_flops(tf.function(lambda x: encoder(x, training=False)),
                                tf.TensorSpec((1, size, size, 3), tf.float32))
    return {"train_samples": steps * b, "steps": steps, "cached_s": cached, "cnn_in_step_s": in_step,
            "png_decode_s": decode, "speedup": in_step / cached,
            "encoder_gflop_per_image": encoder_flops / 1e9, "step_gflop_per_sample": step_flops / 1e9,
            # the ratio if both paths ran at the same FLOP rate
            "flop_bound": (encoder_flops + step_flops) / step_flops}


def encoded_images(ws, action) -> tuple[int, object]:
    """``(images the encoder encoded in any process while action() ran, what action returned)``."""
    from data.features import extraction_log

    mark = len(extraction_log(ws.feature_cache))
    value = action()
    return sum(e["images"] for e in extraction_log(ws.feature_cache)[mark:]), value


def sweep(ws) -> float:
    """A two-trial smoke sweep with ``study/run.py`` on the workspace's cohort; its wall time."""
    return run_python(["study/run.py", "--search-space", "smoke", "--num-samples", "2", "--max-epochs", "1",
                       "--storage", str(ws.root / "runs"), "--name", f"cache-{time.time():.0f}",
                       *ws.study_flags()], ws.root / "logs" / "feature_cache_sweep.log")[1]


def run(ws) -> Outcome:
    first, _ = encoded_images(ws, ws.dataset)
    timing = epoch_seconds(ws)  # timed before the sweep below starts Ray on this machine
    second, _ = encoded_images(ws, lambda: ws.dataset(fresh=True))
    in_sweep, sweep_seconds = encoded_images(ws, lambda: sweep(ws))
    runs = {"first_preparation_images": first, "second_preparation_images": second,
            "sweep_images": in_sweep, "sweep_trials": 2, "sweep_seconds": sweep_seconds}
    print(f"one epoch ({timing['train_samples']} samples): cached features {timing['cached_s']:.2f} s, "
          f"CNN in the step {timing['cnn_in_step_s']:.2f} s ({timing['speedup']:.1f}x); reading the "
          f"PNGs would add {timing['png_decode_s']:.2f} s per epoch to the baseline")
    print(f"FLOPs: encoder {timing['encoder_gflop_per_image']:.3f} GFLOP per image, whole train step "
          f"{timing['step_gflop_per_sample']:.3f} GFLOP per sample: at equal FLOP rates the ratio would be "
          f"{timing['flop_bound']:.1f}x")
    print(f"encoder runs: first preparation {runs['first_preparation_images']} images"
          f"{' (cached by an earlier run)' if not runs['first_preparation_images'] else ''}, "
          f"second preparation {runs['second_preparation_images']}, sweep of "
          f"{runs['sweep_trials']} trials {runs['sweep_images']}")
    after_first = runs["second_preparation_images"] + runs["sweep_images"]
    findings = [
        Finding("2 Feature cache", "training epoch: cached features vs CNN in the step",
                timing["cached_s"], timing["cnn_in_step_s"], "s", timing["speedup"], (">=", 10)),
        Finding("2 Feature cache", "that ratio as FLOPs alone predict it: (encoder + step) / step",
                timing["step_gflop_per_sample"], timing["encoder_gflop_per_image"] + timing["step_gflop_per_sample"],
                "GFLOP", timing["flop_bound"]),
        Finding("2 Feature cache", "images encoded after the first preparation (2nd prep + sweep)",
                after_first, ws.size["n"], "img", after_first / ws.size["n"], ("<=", 0)),
    ]
    return Outcome("feature_cache", findings, {**timing, **runs})


def main(argv=None) -> Outcome:
    return cli("feature_cache", run, argv, __doc__)


if __name__ == "__main__":
    main()
