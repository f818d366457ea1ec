"""One worker of a 2-process MultiWorkerMirroredStrategy run (spawned by test_model.py).

Usage: python -m tests.mwms_worker PREPARED_DIR OUT_JSON   (TF_CONFIG set by the parent)
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from data.dataset import PreparedDataset  # noqa: E402
from model.config import ModelConfig  # noqa: E402
from model.train import TrainConfig, Trainer  # noqa: E402


def main(prepared_dir: str, out: str) -> None:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    ds = PreparedDataset.load(prepared_dir)
    mc = ModelConfig.for_dataset(ds, d_model=24, num_heads=3, ff_dim=32, dropout=0.0)
    trainer = Trainer(mc, TrainConfig(epochs=2, batch_size=8, learning_rate=3e-3), ds, strategy=strategy)
    result = trainer.fit()
    json.dump({"replicas": strategy.num_replicas_in_sync, "history": result.history,
               "weights_sum": float(sum(w.sum() for w in trainer.model.get_weights()))}, open(out, "w"))


if __name__ == "__main__":
    main(*sys.argv[1:])
