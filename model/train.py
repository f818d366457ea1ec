"""The custom training loop (not ``model.fit``, which fails under MultiWorkerMirroredStrategy with
Keras 3): a compiled step run with ``strategy.run`` and reduced with ``strategy.reduce``.

It works unchanged under the default strategy (one process) and ``MultiWorkerMirroredStrategy``
(several). Each replica divides its per-example loss sums by the *global* batch size, so summing
across replicas gives the global-batch mean. Per epoch it records train and validation loss per
task, the learning rate and the task weights applied; it stops early on the validation loss with
patience, restores the best weights, and checkpoints every epoch so a restarted run continues with
identical state. A refit on ``train+validate`` (``TrainConfig.fit_on``) runs every epoch and keeps
the last weights: the validation split is then training data, with nothing left to choose by.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from .config import ModelConfig, TrainConfig
from .device import resolve, visible_gpus
from .losses import task_losses
from .network import build_model
from .schedules import WarmupSchedule
from .weighting import make_weighting

log = logging.getLogger(__name__)




@contextlib.contextmanager
def dtype_policy(name: str):
    """Build layers under a Keras dtype policy (global in Keras), then restore the previous one."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


class NonFiniteLossError(RuntimeError):
    """A task loss became NaN/inf; the run stops before any checkpoint with bad weights is written."""


@dataclass
class FitResult:
    history: list            # one dict per epoch (see Trainer.fit)
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    train_seconds: float


class Trainer:
    """Owns model, optimizer and weighting for one training run under one strategy.

    Precision and XLA compilation follow ``train_cfg.precision`` and ``train_cfg.jit_compile``,
    ``auto`` resolved for the devices this process sees (:mod:`model.device`; ``self.policy``).
    """

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig, dataset, *,
                 strategy: tf.distribute.Strategy | None = None,
                 checkpoint_dir: str | Path | None = None, save_checkpoints: bool = True):
        """``checkpoint_dir``: where checkpoints are read from (and written to, if
        ``save_checkpoints``). Under several workers only the chief writes; all read."""
        self.model_cfg, self.cfg, self.dataset = model_cfg, train_cfg, dataset
        self.strategy = strategy or tf.distribute.get_strategy()
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.save_checkpoints = save_checkpoints
        n_train = len(dataset.indices(train_cfg.fit_on))
        self.batch_size = min(train_cfg.batch_size, n_train)
        self.steps_per_epoch = n_train // self.batch_size
        self.policy = resolve(train_cfg.precision, train_cfg.jit_compile, visible_gpus(),
                              replicas=self.strategy.num_replicas_in_sync)
        self.jit_compile = self.policy.jit_compile
        with self.strategy.scope():
            with dtype_policy(self.policy.precision):
                self.model = build_model(model_cfg, seed=train_cfg.seed)
            self.weighting = make_weighting(train_cfg.weighting, model_cfg.tasks,
                                            **train_cfg.weighting_options)
            self.schedule = WarmupSchedule(train_cfg.learning_rate,
                                           self.steps_per_epoch * train_cfg.epochs,
                                           train_cfg.warmup_fraction, train_cfg.schedule)
            self.optimizer = keras.optimizers.Adam(self.schedule)
            self.variables = list(self.model.trainable_variables) + list(self.weighting.trainable_variables)
            self.optimizer.build(self.variables)
            if self.weighting.per_task_gradients:
                self.groups = self.model.task_variables()
                self.weighting.prepare(sum(int(tf.size(v)) for v in self.groups["shared"]))
        self._train_step = self._make_train_step()
        self._eval_step = self._make_eval_step()

    # ---- data ---------------------------------------------------------------------------------
    def _distributed(self, split: str, epoch: int, training: bool):
        ds = self.dataset.tf_dataset(split, self.batch_size, shuffle=training,
                                     seed=self.cfg.seed + epoch, drop_remainder=training)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return self.strategy.experimental_distribute_dataset(ds.with_options(options))

    # ---- compiled steps -----------------------------------------------------------------------
    def _make_train_step(self):
        """One step with single-process semantics whatever the number of replicas K: each replica
        computes its part of the global-batch loss; the gradients are summed over replicas
        *before* clipping, so ``clip_norm`` bounds the global-batch gradient as in one process."""
        global_batch = float(self.batch_size)
        clip = self.cfg.clip_norm
        replicas = self.strategy.num_replicas_in_sync

        def step(inputs, targets):
            context = tf.distribute.get_replica_context()
            with tf.GradientTape(persistent=self.weighting.per_task_gradients) as tape:
                outputs = self.model(inputs, training=True)
                losses = {t: tf.reduce_sum(v) / global_batch for t, v in task_losses(outputs, targets).items()}
                if self.weighting.per_task_gradients:
                    global_losses = context.all_reduce("SUM", {t: tf.stop_gradient(v) for t, v in losses.items()})
                    objectives = self.weighting.objectives(losses, global_losses)
                else:
                    total = self.weighting.combine(losses, replica_share=1.0 / replicas)
            if self.weighting.per_task_gradients:
                grads = self._combined_gradients(tape, objectives, global_losses, context)
                del tape
            else:
                grads = context.all_reduce("SUM", tape.gradient(total, self.variables))  # global gradient
            if clip:
                grads, _ = tf.clip_by_global_norm(grads, clip)
            # The optimizer sums gradients over replicas once more, so the first replica hands it
            # the global gradient and the others zeros. (Not 1/K each: Adam squares an embedding's
            # sparse gradient per entry, so K halves would not add up to the whole.)
            first = tf.cast(tf.equal(context.replica_id_in_sync_group, 0), tf.float32)
            self.optimizer.apply_gradients(zip([_scale(g, first) for g in grads], self.variables))
            return losses

        return self._replicated(step)

    def _combined_gradients(self, tape, objectives: dict, global_losses: dict, context) -> list:
        """Global gradients of every variable for a gradient-based method: each task's gradient of
        the shared encoder, summed over replicas, goes to the strategy, which returns one shared
        gradient; each head keeps its own task's gradient."""
        tasks, shared = self.weighting.tasks, self.groups["shared"]
        per_task = []
        for t in tasks:  # (P,) each: dense, so every method can take inner products
            g = tape.gradient(objectives[t], shared, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            per_task.append(tf.concat([tf.reshape(tf.convert_to_tensor(x), [-1]) for x in g], axis=0))
        task_grads = context.all_reduce("SUM", tf.stack(per_task))                 # (T, P) global
        combined = self.weighting.combine_gradients(task_grads, global_losses)     # (P,)
        sizes = [int(tf.size(v)) for v in shared]
        by_variable = {id(v): tf.reshape(part, v.shape) for v, part in zip(shared, tf.split(combined, sizes))}
        for t in tasks:
            heads = self.groups[t]
            for v, g in zip(heads, context.all_reduce("SUM", tape.gradient(objectives[t], heads))):
                by_variable[id(v)] = g
        return [by_variable.get(id(v), tf.zeros_like(v)) for v in self.variables]

    def _make_eval_step(self):
        def step(inputs, targets):
            losses = task_losses(self.model(inputs, training=False), targets)
            sums = {t: tf.reduce_sum(v) for t, v in losses.items()}
            sums["_count"] = tf.cast(tf.shape(targets["findings"])[0], tf.float32)
            return sums

        return self._replicated(step)

    def _replicated(self, step):
        """Compile ``step`` to run on every replica, its outputs summed across replicas."""

        @tf.function(jit_compile=self.jit_compile)
        def run(batch):
            per_replica = self.strategy.run(step, args=batch)
            return {t: self.strategy.reduce("SUM", v, axis=None) for t, v in per_replica.items()}

        return run

    def split_losses(self, split: str = "validate") -> dict:
        """Mean loss per active task over a split."""
        total, count = {}, 0.0
        for batch in self._distributed(split, 0, training=False):
            sums = self._eval_step(batch)
            count += float(sums.pop("_count"))
            for t, v in sums.items():
                total[t] = total.get(t, 0.0) + float(v)
        return {t: v / max(count, 1.0) for t, v in total.items()}

    # ---- the loop -----------------------------------------------------------------------------
    def fit(self, on_epoch_end: Callable[[dict, "Trainer"], None] | None = None) -> FitResult:
        """Train until ``epochs`` or early stop; resume from ``checkpoint_dir`` when it has one.

        Each history row: ``epoch``, ``train_loss_<task>``, ``val_loss_<task>``, ``val_monitor``,
        ``lr``, ``weight_<task>`` (the weights applied during that epoch), ``seconds``.
        """
        state = self.restore() or {"epoch": 0, "history": [], "best": math.inf, "best_epoch": 0,
                                   "wait": 0, "train_seconds": 0.0, "stopped_early": False}
        best_weights = self._load_best() if state["epoch"] else None
        while state["epoch"] < self.cfg.epochs and not state["stopped_early"]:
            epoch = state["epoch"] + 1
            start = time.perf_counter()
            applied = self.weighting.weights()
            sums, steps = {}, 0
            for batch in self._distributed(self.cfg.fit_on, epoch, training=True):
                losses = {t: float(v) for t, v in self._train_step(batch).items()}
                steps += 1
                bad = [t for t, v in losses.items() if not math.isfinite(v)]
                if bad:
                    raise NonFiniteLossError(
                        f"non-finite {bad[0]} loss ({losses[bad[0]]}) at epoch {epoch}, step {steps}; "
                        f"stopped before writing weights (last good checkpoint: epoch {state['epoch']})")
                for t, v in losses.items():
                    sums[t] = sums.get(t, 0.0) + v
            train = {t: v / max(steps, 1) for t, v in sums.items()}
            val = self.split_losses("validate")
            monitor = sum(w * val[t] for t, w in self.weighting.monitor_weights().items())
            self.weighting.end_epoch(train)
            row = {"epoch": epoch, **{f"train_loss_{t}": v for t, v in train.items()},
                   **{f"val_loss_{t}": v for t, v in val.items()}, "val_monitor": monitor,
                   "lr": float(self.schedule(self.optimizer.iterations - 1)),
                   **{f"weight_{t}": w for t, w in applied.items()},
                   "seconds": time.perf_counter() - start}
            state["history"].append(row)
            state["train_seconds"] += row["seconds"]
            state["epoch"] = epoch
            refit = self.cfg.fit_on != "train"  # validation is trained on: nothing to choose by
            if refit or monitor < state["best"]:
                state.update(best=monitor, best_epoch=epoch, wait=0)
                best_weights = self.model.get_weights()
            else:
                state["wait"] += 1
                state["stopped_early"] = state["wait"] >= self.cfg.patience
            self.save(state, best_weights)
            log.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in row.items() if k != "epoch"})
            if on_epoch_end:
                on_epoch_end(row, self)
        if best_weights is not None:
            self.model.set_weights(best_weights)
        return FitResult(state["history"], state["best_epoch"], state["epoch"],
                         state["stopped_early"], state["train_seconds"])

    # ---- checkpoints --------------------------------------------------------------------------
    def save(self, state: dict, best_weights) -> None:
        """Write ``epoch-<n>/`` then atomically point ``checkpoint.json`` at it; drop older ones."""
        if self.checkpoint_dir is None or not self.save_checkpoints:
            return
        root = self.checkpoint_dir
        target = root / f"epoch-{state['epoch']:04d}"
        tmp = root / f".tmp-{target.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        # model.variables, not get_weights(): it includes the dropout layers' seed-generator state,
        # so a resumed run draws the same dropout masks as an uninterrupted one
        np.savez(tmp / "model.npz", *[v.numpy() for v in self.model.variables])
        np.savez(tmp / "optimizer.npz", *[v.numpy() for v in self.optimizer.variables])
        if best_weights is not None:
            np.savez(tmp / "best.npz", *best_weights)
        (tmp / "state.json").write_text(json.dumps(
            {**state, "weighting": self.weighting.get_state(), "train_config": asdict(self.cfg),
             "model_config": self.model_cfg.to_dict()}))
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        pointer = root / "checkpoint.json"
        pointer.with_suffix(".tmp").write_text(json.dumps({"latest": target.name}))
        pointer.with_suffix(".tmp").replace(pointer)
        for old in root.glob("epoch-*"):
            if old != target:
                shutil.rmtree(old, ignore_errors=True)

    def latest_checkpoint(self) -> Path | None:
        pointer = self.checkpoint_dir / "checkpoint.json" if self.checkpoint_dir else None
        if not pointer or not pointer.exists():
            return None
        return self.checkpoint_dir / json.loads(pointer.read_text())["latest"]

    def restore(self) -> dict | None:
        """Load model, optimizer and weighting state from the latest checkpoint, if any."""
        path = self.latest_checkpoint()
        if path is None:
            return None
        missing = [n for n in ("state.json", "model.npz", "optimizer.npz") if not (path / n).exists()]
        if missing:
            raise FileNotFoundError(f"checkpoint {path} lacks {missing}: it was not written completely")
        state = json.loads((path / "state.json").read_text())
        for name, variables in (("model.npz", self.model.variables), ("optimizer.npz", self.optimizer.variables)):
            values = _load_list(path / name)
            if len(values) != len(variables):  # zip would silently leave the rest untouched
                raise ValueError(f"checkpoint {path / name} holds {len(values)} variables, this run has "
                                 f"{len(variables)}: it was written by another model or version")
            for var, value in zip(variables, values):
                var.assign(value)
        self.weighting.set_state(state.pop("weighting"))
        state.pop("train_config"), state.pop("model_config")
        log.info("resumed from %s (epoch %d)", path, state["epoch"])
        return state

    def _load_best(self):
        path = self.latest_checkpoint()
        return _load_list(path / "best.npz") if path and (path / "best.npz").exists() else None


def _scale(gradient, factor):
    """``factor * gradient``, keeping an embedding's sparse gradient sparse (its entries, one per
    token occurrence, stay as they are: the optimizer treats them exactly as without replicas)."""
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values * factor, gradient.indices, gradient.dense_shape)
    return gradient * factor


def _load_list(path: Path) -> list:
    with np.load(path) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]
