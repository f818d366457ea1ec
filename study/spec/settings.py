"""Trial settings: the flat keys a search space may set, and how they become the model's,
training's and evaluation's configuration.

A trial's settings are one flat mapping (``d_model``, ``learning_rate``, ``alpha`` ...), put
together from the space's ``fixed`` values, a named config and the sampled parameters.
:func:`build_configs` turns them into :class:`model.config.ModelConfig` and
:class:`model.config.TrainConfig`, whose own checks state every rule; the driver calls it on the
corners of a search space before any trial starts (:meth:`study.space.SearchSpace.check`), so a
setting no trial could train with stops the study at once instead of failing in every trial.
Nothing here imports TensorFlow.
"""
from __future__ import annotations

import math

from model.config import TASKS, ModelConfig, TrainConfig
from model.weighting import STRATEGIES

from study.evaluation.bertscore import BertScoreConfig

MODEL_KEYS = {"d_model", "num_heads", "ff_dim", "decoder_layers", "dropout", "tasks", "modalities", "clinical_inputs"}
# a strategy's options are set as <strategy>_<option> (cagrad_c, dwa_temperature, ...); static's
# weights keep the paper's names a, b, c = alpha, beta, gamma
STRATEGY_KEYS = {f"{name}_{option}" for name, (_, options) in STRATEGIES.items() if name != "static"
                 for option in options}
TRAIN_KEYS = {"epochs", "batch_size", "learning_rate", "warmup_fraction", "schedule", "clip_norm",
              "patience", "weighting", "alpha", "beta", "gamma", "precision", "jit_compile", "fit_on"} | STRATEGY_KEYS
EVAL_KEYS = {"bertscore", "beam_width", "bertscore_model", "bertscore_layers", "bertscore_rescale", "learned_scorers"}
SETTING_KEYS = MODEL_KEYS | TRAIN_KEYS | EVAL_KEYS
LOSS_WEIGHTS = {"text": "alpha", "oc": "beta", "ml": "gamma"}  # L = a L_text + b L_oc + c L_ml


def strategy_of_setting(key: str) -> str | None:
    """The one weighting strategy that reads setting ``key`` (``static`` for the loss weights,
    ``cagrad`` for ``cagrad_c``), or None for a setting every trial uses. Under any other
    strategy the setting is inert: a search space samples it only when that strategy is chosen."""
    if key in ("loss_weights", *LOSS_WEIGHTS.values()):
        return "static"
    if key in STRATEGY_KEYS:
        return next(name for name in STRATEGIES if key.startswith(f"{name}_") and key[len(name) + 1:] in STRATEGIES[name][1])
    return None


def _as_tuple(value):
    return tuple([value] if isinstance(value, str) else value)


def build_configs(settings: dict, dataset=None, seed: int = 0, *, fields: dict | None = None):
    """``(ModelConfig, TrainConfig, eval options)`` from flat settings. With ``dataset`` (a
    :class:`data.dataset.PreparedDataset`) the model's input shapes come from it; without, the
    defaults stand in (enough to check the settings), for a cohort with ``fields`` when given
    (:meth:`model.config.ModelConfig.for_cohort`). Raises ``ValueError`` naming the setting."""
    model_kw = {k: v for k, v in settings.items() if k in MODEL_KEYS}
    for key in ("tasks", "modalities", "clinical_inputs"):  # a single name or a list in YAML
        if key in model_kw:
            model_kw[key] = _as_tuple(model_kw[key])
    model_cfg = (ModelConfig.for_dataset(dataset, **model_kw) if dataset is not None else
                 ModelConfig.for_cohort(fields or {}, **model_kw))
    weighting = settings.get("weighting", "static")
    options = {}
    if weighting == "static":
        options = {k: settings.get(k, 1.0) for k in ("alpha", "beta", "gamma")}
        _check_loss_weights(options, model_cfg.tasks)
        options = {k: float(v) for k, v in options.items()}
    else:  # <weighting>_<option> settings of the chosen strategy (the others' are inert)
        prefix = f"{weighting}_"
        options = {k[len(prefix):]: v for k, v in settings.items() if k.startswith(prefix) and k in STRATEGY_KEYS}
    train_kw = {k: settings[k] for k in ("epochs", "batch_size", "learning_rate", "warmup_fraction",
                                          "schedule", "clip_norm", "patience", "precision", "jit_compile", "fit_on")
                if k in settings}
    train_cfg = TrainConfig(**train_kw, weighting=weighting, weighting_options=options, seed=seed)
    eval_opts = {"bertscore": True, "beam_width": 1, "bertscore_model": None, "bertscore_layers": None,
                 "bertscore_rescale": False, "learned_scorers": (),
                 **{k: settings[k] for k in EVAL_KEYS if k in settings}}
    eval_opts["bertscore_layers"] = BertScoreConfig.for_model(eval_opts["bertscore_model"],
                                                              eval_opts["bertscore_layers"]).num_layers
    if not isinstance(eval_opts["bertscore"], bool):
        raise ValueError(f"bertscore must be true or false, got {eval_opts['bertscore']!r}")
    if not _is_int(eval_opts["beam_width"]) or eval_opts["beam_width"] < 1:
        raise ValueError(f"beam_width must be an integer >= 1, got {eval_opts['beam_width']!r}")
    return model_cfg, train_cfg, eval_opts


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_loss_weights(weights: dict, tasks: tuple) -> None:
    """Static weights: numbers >= 0, and those of the trained tasks must not all be 0 (the trial
    would train nothing and still be recorded as finished)."""
    for key, value in weights.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{key} (a loss weight) must be a finite number >= 0, got {value!r}")
    active = [LOSS_WEIGHTS[t] for t in TASKS if t in tasks]
    if sum(weights[k] for k in active) <= 0:
        raise ValueError(f"the loss weights of the trained tasks ({', '.join(f'{k}={weights[k]}' for k in active)}) "
                         f"sum to 0: the trial would train nothing")
