"""Model: shapes per task subset, causal mask, weighting, schedules, training, checkpoints,
decoding, serialisation."""
import itertools
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from model.config import TASKS, ModelConfig
from model.decoding import END_ID, beam_search, greedy_decode, naive_greedy_decode
from model.layers import (DecoderLayer, FeedForward, MultiHeadAttention, SequenceHead,
                          UnifiedDataBlock, VisualBlock)
from model.network import ReportModel, build_model, dummy_inputs
from model.schedules import WarmupSchedule
from model.train import NonFiniteLossError, TrainConfig, Trainer
from model.weighting import make_weighting

SMALL = dict(d_model=24, num_heads=3, ff_dim=32, dropout=0.0)


def small_config(**kw):
    return ModelConfig(image_tokens=4, image_dim=16, n_categoricals=6, field_vocab=30,
                       report_vocab=40, report_length=12, **{**SMALL, **kw})


def random_inputs(cfg, batch=3, seed=0):
    rng = np.random.default_rng(seed)
    x = dummy_inputs(cfg, batch)
    x["image_features"] = rng.normal(size=x["image_features"].shape).astype("float32")
    x["vitals"] = rng.random(x["vitals"].shape).astype("float32")
    x["chief_complaint"] = rng.integers(1, 30, (batch, 4)).astype("int32")
    x["report_ids"] = np.concatenate([np.full((batch, 1), 2), rng.integers(4, 40, (batch, 11))], 1).astype("int32")
    return x


SUBSETS = [s for r in (1, 2, 3) for s in itertools.combinations(TASKS, r)]


@pytest.mark.parametrize("tasks", SUBSETS)
def test_output_shapes_for_every_task_subset(tasks):
    cfg = small_config(tasks=tasks)
    out = build_model(cfg, seed=0)(random_inputs(cfg))
    expected = {"text": ("text_logits", (3, 11, 40)), "oc": ("oc", (3, 4)), "ml": ("ml", (3, 5))}
    assert set(out) == {expected[t][0] for t in tasks}
    for t in tasks:
        assert tuple(out[expected[t][0]].shape) == expected[t][1]
    if "oc" in tasks:
        assert np.all((out["oc"].numpy() > 0) & (out["oc"].numpy() < 1))


@pytest.mark.parametrize("switches, ignored, used", [
    ({"modalities": ("image",)}, ["vitals", "categoricals", "chief_complaint", "icd_title"], ["image_features"]),
    ({"modalities": ("clinical",)}, ["image_features"], ["vitals", "icd_title"]),
    # a cohort with an indication only (IU X-ray): one data token, the other inputs never read
    ({"clinical_inputs": ("chief_complaint",)}, ["vitals", "categoricals", "icd_title"], ["image_features", "chief_complaint"]),
])
def test_switched_off_modality_is_not_read(switches, ignored, used):
    """Ablation: outputs must not move when a switched-off input changes, and must move when a
    used input changes; cached greedy decoding still equals the naive loop."""
    from model.decoding import greedy_decode, naive_greedy_decode

    cfg = small_config(**switches)
    model = build_model(cfg, seed=0)
    x = random_inputs(cfg)
    base = {k: v.numpy() for k, v in model(x).items()}
    rng = np.random.default_rng(5)
    for key in ignored + used:
        changed = dict(x)
        changed[key] = (x[key] + rng.normal(0, 1, x[key].shape).astype("float32") if x[key].dtype == np.float32
                        else (x[key] + 1) % 20)
        out = model(changed)
        same = all(np.allclose(out[k].numpy(), base[k]) for k in base)
        assert same == (key in ignored), key
    np.testing.assert_array_equal(greedy_decode(model, x, max_len=8), naive_greedy_decode(model, x, max_len=8))
    with pytest.raises(ValueError, match="modalities must be a non-empty subset"):
        small_config(modalities=("image", "audio"))


def test_the_data_block_has_one_token_per_input_the_cohort_has():
    indication_only = ModelConfig.for_cohort({"vitals": False, "categoricals": False, "icd_title": False},
                                             **{**SMALL, "image_tokens": 4, "image_dim": 16})
    assert indication_only.clinical_inputs == ("chief_complaint",) and indication_only.modalities == ("image", "clinical")
    model = build_model(indication_only, seed=0)
    assert tuple(model.data_block(random_inputs(indication_only)).shape) == (3, 1, 24)  # (B, F, d)
    names = [v.path for v in model.data_block.trainable_variables]  # an embedding, a dense kernel and bias, types
    assert len(names) == 4 and all("chief_complaint" in n or n.endswith("/type") for n in names), names
    nothing = ModelConfig.for_cohort({g: False for g in ("vitals", "categoricals", "chief_complaint", "icd_title")})
    assert nothing.modalities == ("image",)  # no non-imaging input: the image only
    with pytest.raises(ValueError, match="modalities: 'clinical' needs a non-imaging input"):
        ModelConfig.for_cohort({g: False for g in ("vitals", "categoricals", "chief_complaint", "icd_title")},
                               modalities=("image", "clinical"))


def test_config_errors_state_the_rule():
    with pytest.raises(ValueError, match="divisible by num_heads, got d_model=25, num_heads=3"):
        small_config(d_model=25)
    with pytest.raises(ValueError, match="tasks must be a non-empty subset"):
        small_config(tasks=("text", "vqa"))


def test_causal_mask_hides_the_future():
    cfg = small_config()
    model = build_model(cfg, seed=0)
    x = random_inputs(cfg)
    before = model(x)["text_logits"].numpy()
    x["report_ids"][:, 8] = 5  # change a later token
    after = model(x)["text_logits"].numpy()
    np.testing.assert_allclose(before[:, :8], after[:, :8], atol=1e-5)
    assert not np.allclose(before[:, 8:], after[:, 8:])


# ---- weighting and schedules --------------------------------------------------------------------
LOSSES = {"text": tf.constant(2.0), "oc": tf.constant(1.0), "ml": tf.constant(0.5)}


def test_static_weighting_arithmetic():
    w = make_weighting("static", TASKS, alpha=0.6, beta=0.3, gamma=0.1)
    assert float(w.combine(LOSSES)) == pytest.approx(0.6 * 2 + 0.3 * 1 + 0.1 * 0.5)
    assert w.weights() == pytest.approx({"text": 0.6, "oc": 0.3, "ml": 0.1})
    with pytest.raises(ValueError, match="weighting must be one of"):
        make_weighting("mgda", TASKS)


def test_uncertainty_weighting_arithmetic():
    w = make_weighting("uncertainty", TASKS)
    w.log_var["text"].assign(math.log(2.0))
    expected = 2.0 / (2 * 2.0) + math.log(2.0) / 2 + 1.0 / 2 + 0.5 / 2
    assert float(w.combine(LOSSES)) == pytest.approx(expected, rel=1e-6)
    # with K replicas each adds 1/K of the regulariser: the sum over replicas is the loss above
    halves = {t: v / 2 for t, v in LOSSES.items()}  # each of two replicas holds half of the loss
    assert 2 * float(w.combine(halves, replica_share=0.5)) == pytest.approx(expected, rel=1e-6)
    w.end_epoch({})
    assert w.weights()["text"] == pytest.approx(0.25) and w.weights()["oc"] == pytest.approx(0.5)
    assert len(w.trainable_variables) == 3


def test_dwa_weighting_arithmetic():
    w = make_weighting("dwa", ("text", "oc"), temperature=2.0)
    w.end_epoch({"text": 2.0, "oc": 1.0})
    assert w.weights() == {"text": 1.0, "oc": 1.0}  # first epochs: equal
    w.end_epoch({"text": 1.0, "oc": 1.0})           # ratios 0.5 and 1.0
    e = np.exp(np.array([0.5, 1.0]) / 2.0)
    assert w.weights()["text"] == pytest.approx(2 * e[0] / e.sum())
    restored = make_weighting("dwa", ("text", "oc"))
    restored.set_state(json.loads(json.dumps(w.get_state())))
    assert restored.weights() == pytest.approx(w.weights()) and restored.history == w.history


@pytest.mark.parametrize("decay, step, expected", [
    ("constant", 0, 0.1), ("constant", 9, 1.0), ("constant", 60, 1.0),
    ("linear", 9, 1.0), ("linear", 54, 0.5), ("linear", 99, 0.0),
    ("cosine", 54, 0.5), ("cosine", 99, 0.0),
    ("inverse_sqrt", 39, 0.5),
])
def test_schedule_values(decay, step, expected):
    sched = WarmupSchedule(1.0, total_steps=100, warmup_fraction=0.1, decay=decay)
    assert float(sched(step)) == pytest.approx(expected, abs=1e-6)
    assert WarmupSchedule(**sched.get_config()).get_config() == sched.get_config()


def test_schedule_rejects_unknown_decay():
    with pytest.raises(ValueError, match="decay must be one of"):
        WarmupSchedule(1.0, 10, decay="step")


# ---- serialisation ------------------------------------------------------------------------------
def test_a_layer_rebuilt_from_its_config_computes_the_same():
    """Each block rebuilt from ``get_config`` alone and given the original's weights gives the
    original's outputs: the config holds everything the block's computation depends on."""
    cfg = small_config()
    d = cfg.to_dict()
    inputs = random_inputs(cfg)
    x = np.random.default_rng(0).normal(size=(2, 3, cfg.d_model)).astype("float32")
    image = inputs["image_features"][:2]
    calls = [(MultiHeadAttention(d), lambda layer: layer(x, x)), (FeedForward(d), lambda layer: layer(x)),
             (UnifiedDataBlock(d), lambda layer: layer({k: v[:2] for k, v in inputs.items()})),
             (VisualBlock(d), lambda layer: layer(image, x[:, :2])), (SequenceHead(d, 4), lambda layer: layer(x)),
             (DecoderLayer(d), lambda layer: layer(x, x, np.ones((1, 1, 3, 3), "float32")))]
    for layer, call in calls:
        expected = call(layer)
        clone = type(layer).from_config(layer.get_config())
        call(clone)  # build
        clone.set_weights(layer.get_weights())
        np.testing.assert_allclose(np.asarray(call(clone)), np.asarray(expected), atol=1e-6, err_msg=type(layer).__name__)


def test_saved_model_reloads_with_identical_outputs(tmp_path):
    cfg = small_config()
    model = build_model(cfg, seed=1)
    x = random_inputs(cfg)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded, ReportModel)
    for k, v in model(x).items():
        np.testing.assert_allclose(v.numpy(), loaded(x)[k].numpy(), atol=1e-6)


# ---- decoding -----------------------------------------------------------------------------------
def test_cached_greedy_equals_naive_and_beam_one():
    cfg = small_config(decoder_layers=2)
    model = build_model(cfg, seed=2)
    x = random_inputs(cfg, batch=4)
    cached = greedy_decode(model, x)
    np.testing.assert_array_equal(cached, naive_greedy_decode(model, x))
    np.testing.assert_array_equal(cached, beam_search(model, x, beam_width=1))
    wide = beam_search(model, x, beam_width=4)
    assert wide.shape == cached.shape


def test_rows_stop_at_their_own_end_token():
    cfg = small_config()
    model = build_model(cfg, seed=3)
    x = random_inputs(cfg, batch=6)
    logits = model.decode(tf.fill((6, 1), 2), model.encode(x))[:, 0].numpy()
    margin = np.delete(logits, END_ID, axis=1).max(1) - logits[:, END_ID]
    bias = model.to_vocab.bias
    bias.assign(bias.numpy() + np.eye(cfg.report_vocab)[END_ID] * np.median(margin))
    out = greedy_decode(model, x)
    ended_first = out[:, 0] == END_ID
    assert 0 < ended_first.sum() < 6  # some rows end at once, others go on
    assert np.all(out[ended_first, 1:] == 0)  # finished rows stay padded
    for row in out:  # after any <end>, only padding
        ends = np.flatnonzero(row == END_ID)
        if len(ends):
            assert np.all(row[ends[0] + 1:] == 0)


# ---- training -----------------------------------------------------------------------------------
def tiny_trainer(dataset, tmp_path=None, **kw):
    mc = ModelConfig.for_dataset(dataset, **{**SMALL, **kw.pop("model", {})})
    tc = TrainConfig(**{"epochs": 2, "batch_size": 8, "learning_rate": 3e-3, "warmup_fraction": 0.1,
                        **kw})
    return Trainer(mc, tc, dataset, checkpoint_dir=tmp_path)


def test_checkpoint_round_trip_resumes_identically(tiny_dataset, tmp_path):
    """With dropout 0.1: the checkpoint holds the dropout seed generators too, so the resumed
    third epoch draws the masks the uninterrupted run drew (get_weights() leaves them out)."""
    kw = dict(epochs=3, weighting="dwa", model={"dropout": 0.1})
    full = tiny_trainer(tiny_dataset, **kw).fit()

    def crash_after_epoch_2(row, trainer):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # the same run, interrupted after its second epoch
        tiny_trainer(tiny_dataset, tmp_path, **kw).fit(crash_after_epoch_2)
    resumed = tiny_trainer(tiny_dataset, tmp_path, **kw)
    result = resumed.fit()
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    for key in ("train_loss_text", "val_loss_ml", "weight_oc", "lr"):
        assert result.history[2][key] == pytest.approx(full.history[2][key], rel=1e-5), key


def test_a_checkpoint_of_another_shape_or_half_written_is_refused(tiny_dataset, tmp_path):
    """A checkpoint written with get_weights() (no seed generators) used to be loaded partly and
    silently by zip(); now the variable count is checked, and so are the files the pointer needs."""
    trainer = tiny_trainer(tiny_dataset, tmp_path, epochs=1, model={"dropout": 0.1})
    trainer.fit()
    latest = trainer.latest_checkpoint()
    np.savez(latest / "model.npz", *trainer.model.get_weights())  # the old format
    with pytest.raises(ValueError, match=r"model.npz holds \d+ variables, this run has \d+"):
        tiny_trainer(tiny_dataset, tmp_path, epochs=2, model={"dropout": 0.1}).restore()
    (latest / "optimizer.npz").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks \['optimizer.npz'\]"):
        tiny_trainer(tiny_dataset, tmp_path, epochs=2, model={"dropout": 0.1}).restore()


def test_a_refit_on_train_and_validate_trains_on_both_and_keeps_the_last_epoch(tiny_dataset):
    """--retrain-on train+validate: every batch of both splits, every epoch (validation cannot
    stop it: it is seen data), and the weights of the last epoch, not of the lowest val loss."""
    trainer = tiny_trainer(tiny_dataset, epochs=3, patience=1, fit_on="train+validate")
    both = len(tiny_dataset.indices("train")) + len(tiny_dataset.indices("validate"))
    steps, last, epochs = [], {}, iter(range(1, 100))
    step, losses = trainer._train_step, trainer.split_losses
    trainer._train_step = lambda batch: (steps.append(1), step(batch))[1]
    # validation loss rising every epoch: a run on train alone would keep epoch 1 and stop at 2
    trainer.split_losses = lambda split="validate": {t: v + 10 * next(epochs) for t, v in losses(split).items()}

    def keep(row, t):
        last[row["epoch"]] = [w.copy() for w in t.model.get_weights()]

    fit = trainer.fit(keep)
    assert len(steps) == 3 * (both // 8) and trainer.steps_per_epoch == both // 8
    assert fit.epochs_run == 3 and fit.best_epoch == 3 and not fit.stopped_early
    for kept, final in zip(last[3], trainer.model.get_weights()):
        np.testing.assert_array_equal(kept, final)
    with pytest.raises(ValueError, match=r"fit_on must be one of \['train', 'train\+validate'\], got 'validate'"):
        TrainConfig(fit_on="validate")


def test_the_device_rule_by_hand():
    from model.device import resolve

    cpu = resolve("auto", "auto", [])
    assert (cpu.device, cpu.precision, cpu.jit_compile) == ("cpu", "float32", False)
    a10g = resolve("auto", "auto", [(8, 6)])
    assert (a10g.device, a10g.precision, a10g.jit_compile) == ("gpu", "mixed_bfloat16", True)
    t4 = resolve("auto", "auto", [(7, 5)])
    assert (t4.precision, t4.jit_compile) == ("float32", True)
    assert resolve("auto", "auto", [(9, 0), (7, 0)]).precision == "float32"  # every GPU must have bf16
    assert resolve("auto", "auto", [(9, 0)], replicas=2).jit_compile is False  # no XLA across workers
    forced = resolve("float32", True, [])
    assert (forced.precision, forced.jit_compile) == ("float32", True) and "set by the study" in forced.reason
    with pytest.raises(ValueError, match="jit_compile must be true, false or 'auto', got 'yes'"):
        TrainConfig(jit_compile="yes")


def test_gpu_memory_is_limited_to_the_trial_s_share(monkeypatch):
    """configure_memory with two (fake) 24 GiB GPUs and a quarter share: each gets a logical device
    limited to 24576 x 0.25 x 0.95 = 5836 MiB; a whole GPU gets memory growth; without nvidia-smi a
    share falls back to growth; a second call in the same process keeps the first setting."""
    import subprocess
    import tensorflow as tf

    from model import device

    calls = []
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["gpu:0", "gpu:1"])
    monkeypatch.setattr(tf.config, "set_logical_device_configuration", lambda gpu, cfg: calls.append((gpu, cfg[0].memory_limit)))
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", lambda gpu, on: calls.append((gpu, "growth")))
    monkeypatch.setattr(device.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(device.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, "24576\n24576\n", ""))
    for share, expected in ((0.25, [("gpu:0", 5836), ("gpu:1", 5836)]), (1.0, [("gpu:0", "growth"), ("gpu:1", "growth")])):
        monkeypatch.setattr(device, "_CONFIGURED", None)
        calls.clear()
        record = device.configure_memory(share)
        assert calls == expected and record["mode"] == ("limit" if share < 1 else "growth")
    monkeypatch.setattr(device, "_CONFIGURED", None)
    monkeypatch.setattr(device.shutil, "which", lambda name: None)
    calls.clear()
    assert device.configure_memory(0.5)["mode"] == "growth" and calls == [("gpu:0", "growth"), ("gpu:1", "growth")]
    calls.clear()
    again = device.configure_memory(0.25)
    assert again["mode"] == "growth" and "first trial" in again["note"] and calls == []


def test_an_xla_step_gives_the_plain_step_s_losses(tiny_dataset):
    """jit_compile (on for GPUs by the device rule) compiles the same step: from the same weights,
    on the same batches, the same losses and the same updated weights, to float32 rounding (XLA
    fuses and reorders sums, so training drifts apart only slowly); the trainer records it."""
    plain = tiny_trainer(tiny_dataset, jit_compile=False)
    xla = tiny_trainer(tiny_dataset, jit_compile=True)
    assert (plain.policy.jit_compile, xla.policy.jit_compile, plain.policy.precision) == (False, True, "float32")
    # the compiled step itself (tf.function keeps no public flag for it)
    assert (plain._train_step._jit_compile, xla._train_step._jit_compile) == (False, True)
    for a, b in zip(plain.model.get_weights(), xla.model.get_weights()):
        np.testing.assert_array_equal(a, b)  # the same seed: the same start
    for batch in list(plain._distributed("train", 1, training=True))[:3]:
        one, other = plain._train_step(batch), xla._train_step(batch)
        for task in one:
            assert float(other[task]) == pytest.approx(float(one[task]), rel=1e-5), task
    for a, b in zip(plain.model.get_weights(), xla.model.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def test_non_finite_loss_stops_with_clear_error(tiny_dataset, tmp_path):
    trainer = tiny_trainer(tiny_dataset, tmp_path)
    kernel = trainer.model.to_vocab.kernel
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    with pytest.raises(NonFiniteLossError, match="non-finite text loss .* at epoch 1, step 1"):
        trainer.fit()
    assert not (tmp_path / "checkpoint.json").exists()


def test_switched_off_task_has_no_loss(tiny_dataset):
    result = tiny_trainer(tiny_dataset, epochs=1, model={"tasks": ("oc",)}).fit()
    assert set(k for k in result.history[0] if "loss" in k) == {"train_loss_oc", "val_loss_oc"}


def test_mixed_bfloat16_trains_and_decodes_and_leaves_the_policy_alone(tiny_dataset):
    trainer = tiny_trainer(tiny_dataset, epochs=1, precision="mixed_bfloat16")
    assert keras.config.dtype_policy().name == "float32"  # restored after building
    assert trainer.model.visual_block.project.compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in trainer.model.trainable_variables)  # float32 master weights
    result = trainer.fit()
    assert all(math.isfinite(v) for k, v in result.history[0].items() if "loss" in k)
    inputs = next(iter(tiny_dataset.tf_dataset("validate", 4)))[0]
    assert trainer.model(inputs)["text_logits"].dtype == "float32"  # losses see float32
    cached = greedy_decode(trainer.model, inputs)
    np.testing.assert_array_equal(cached, beam_search(trainer.model, inputs, beam_width=1))
    with pytest.raises(ValueError, match="precision must be one of .* got 'mixed_float16'"):
        TrainConfig(precision="mixed_float16")


@pytest.mark.slow
def test_training_lowers_every_task_loss(tiny_dataset):
    trainer = tiny_trainer(tiny_dataset, epochs=40, patience=100, learning_rate=3e-3,
                           weighting_options={"alpha": 1.0, "beta": 1.0, "gamma": 1.0})
    result = trainer.fit()  # 40 epochs x 5 steps = 200 steps
    first, best = result.history[0], min(result.history, key=lambda r: r["val_monitor"])
    for task in TASKS:
        assert best[f"val_loss_{task}"] < first[f"val_loss_{task}"], task
    assert result.best_epoch > 1


@pytest.mark.slow
def test_two_workers_on_half_batches_equal_one_process_on_the_whole(tiny_dataset, tmp_path):
    """Two MultiWorkerMirroredStrategy worker processes, each on half of every batch, against one
    process on the whole batch, from the same initial weights: 15 steps with a binding clip norm,
    for every weighting strategy, loss- and gradient-based (an image-only OC + ML model: no
    embeddings, see tests/mwms_worker.py). Losses and every variable agree within 1e-5 (static
    measured 3e-8; before the fix, when each replica clipped its own gradient and added the
    regulariser, 5e-4)."""
    import os
    import socket
    import subprocess
    import sys

    from tests.mwms_worker import STRATEGIES, train

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    workers = [f"127.0.0.1:{p}" for p in ports]
    procs = []
    for i in range(2):
        (tmp_path / f"w{i}").mkdir()
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})}
        procs.append(subprocess.Popen([sys.executable, "-m", "tests.mwms_worker",
                                       str(tiny_dataset.directory), str(tmp_path / f"w{i}")], env=env))
    assert [p.wait(timeout=600) for p in procs] == [0, 0]
    for weighting in STRATEGIES:
        single = train(tiny_dataset, weighting)  # default strategy: one process, whole batches
        chief = json.loads((tmp_path / "w0" / f"{weighting}.json").read_text())
        assert chief["replicas"] == 2
        for mine, theirs in zip(single.result.history, chief["history"]):
            for key in mine:
                if "loss" in key or key.startswith("weight_"):
                    assert theirs[key] == pytest.approx(mine[key], rel=1e-5, abs=1e-6), (weighting, key)
        with np.load(tmp_path / "w0" / f"{weighting}.npz") as z:
            distributed = [z[f"arr_{i}"] for i in range(len(z.files))]
        assert len(distributed) == len(single.variables)
        for ours, theirs in zip(single.variables, distributed):
            np.testing.assert_allclose(theirs, ours.numpy(), rtol=1e-5, atol=1e-6, err_msg=weighting)
