"""One worker of a 2-process MultiWorkerMirroredStrategy run (spawned by test_model.py): trains
the run of :func:`tests.mwms_worker.train` for each weighting strategy and saves what it learnt.

Usage: python -m tests.mwms_worker PREPARED_DIR OUT_DIR   (TF_CONFIG set by the parent)
"""
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from data.dataset import PreparedDataset  # noqa: E402
from model.config import ModelConfig  # noqa: E402
from model.train import TrainConfig, Trainer  # noqa: E402

STRATEGIES = {"static": {"alpha": 0.6, "beta": 0.3, "gamma": 0.1}, "uncertainty": {}, "dwa": {},
              # gradient methods (per-task gradients summed over replicas before combining) and FAMO
              "gradnorm": {}, "pcgrad": {}, "cagrad": {}, "imtl": {}, "nashmtl": {}, "alignedmtl": {},
              "dbmtl": {}, "famo": {}}


def train(dataset, weighting: str, strategy=None) -> Trainer:
    """3 epochs of 5 steps (batch 8) with a clip norm far below the gradient norm, so it binds.

    The learning rate is small on purpose: at 3e-3, Adam's nearly sign-like steps make training
    chaotic, and float32 rounding (replica sums vs one sum) alone grows to 1e-3 within 10 steps.
    The model reads the image only and trains OC and ML, so it has no embedding: an embedding's
    sparse gradient reaches Adam differently with several workers (README, Known issues)."""
    mc = ModelConfig.for_dataset(dataset, d_model=24, num_heads=3, ff_dim=32, dropout=0.0,
                                 tasks=("oc", "ml"), modalities=("image",))
    tc = TrainConfig(epochs=3, batch_size=8, learning_rate=1e-4, clip_norm=1e-3, patience=10,
                     weighting=weighting, weighting_options=STRATEGIES[weighting])
    trainer = Trainer(mc, tc, dataset, strategy=strategy)
    trainer.result = trainer.fit()
    return trainer


def main(prepared_dir: str, out_dir: str) -> None:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    ds = PreparedDataset.load(prepared_dir)
    out = Path(out_dir)
    for weighting in STRATEGIES:
        trainer = train(ds, weighting, strategy)
        np.savez(out / f"{weighting}.npz", *[v.numpy() for v in trainer.variables])
        (out / f"{weighting}.json").write_text(json.dumps(
            {"replicas": strategy.num_replicas_in_sync, "history": trainer.result.history}))


if __name__ == "__main__":
    main(*sys.argv[1:])
