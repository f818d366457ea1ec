"""The model card of a bundle: what was trained, on what, how well (over seeds), and for what not.

:func:`card_data` builds the card as a dict (``model_card.json``) from the study's records;
:func:`card_markdown` renders the same dict (``MODEL_CARD.md``), so both always say the same.
"""
from __future__ import annotations

import pandas as pd

from study.analysis.configs import metric_columns
from study.analysis.summary import PARAM_LABELS
from study.evaluation.names import bare_metric
from study.spec.settings import build_configs

INTENDED_USE = ("Research on automated chest X-ray report generation and multi-task loss weighting: "
                "comparing configurations, reproducing a study's numbers, looking at what a chosen "
                "model writes.")
LIMITS = ("Research use only. Not a medical device: not validated for diagnosis, triage or any "
          "clinical decision, and not to be used on patients.",
          "Trained and evaluated only on the cohort named under Data; its numbers say nothing about "
          "other hospitals, scanners, populations or report styles.",
          "Generated reports can state findings that are not in the image and miss findings that are.")


TASK_WORDS = {"text": "the report", "oc": "ordinal acuity 1-5", "ml": "five findings"}
INPUT_WORDS = {"vitals": "six triage vitals", "categoricals": "gender and ethnicity",
               "chief_complaint": "the chief complaint (or indication)", "icd_title": "the ICD title"}


def model_sentence(settings: dict, fields: dict) -> str:
    """What the model reads and learns: its settings and the cohort's fields built into the model's
    configuration by the rule every trial uses (:func:`study.spec.settings.build_configs`)."""
    cfg, _, _ = build_configs(settings, fields=fields)
    inputs = [INPUT_WORDS[g] for g in cfg.clinical_inputs] if "clinical" in cfg.modalities else []
    reads = " and ".join(filter(None, ["image features" if "image" in cfg.modalities else "", ", ".join(inputs)]))
    learns = ", ".join(TASK_WORDS[t] for t in cfg.tasks)
    n = len(cfg.tasks)
    kind = ("cross-modal " if "image" in cfg.modalities and inputs else "") + ("multi" if n > 1 else "single")
    return f"A {kind}-task network reading {reads}, trained on {n} task{'s' if n > 1 else ''}: {learns}."


def _interval(mean, low, high, n) -> dict:
    return {"mean": None if pd.isna(mean) else float(mean), "seeds": int(n),
            "ci95": None if pd.isna(low) else [float(low), float(high)]}


def card_data(*, config: pd.Series, seeds: list[dict], default_seed: dict, study: dict,
              dataset_meta: dict, objectives: dict, versions: dict) -> dict:
    """The card as JSON-ready data. ``config``: the configuration's row of
    :func:`study.analysis.configs.config_table`; ``seeds``: one dict per exported model."""
    metrics = {}
    for column in metric_columns([c.removesuffix("_mean") for c in config.index if c.endswith("_mean")]):
        split, name = column.split("_", 1)
        metrics.setdefault(name, {})[split] = _interval(
            config.get(f"{column}_mean"), config.get(f"{column}_ci_low"), config.get(f"{column}_ci_high"),
            config["repeats_finished"])
    return {
        "config_id": str(config["config_id"]),
        "configuration": {"params": {PARAM_LABELS.get(c, c.removeprefix("param_")): _plain(config[c])
                                     for c in config.index if c.startswith("param_")
                                     and not c.endswith(("_u1", "_u2"))},  # the simplex's raw draws: a, b, c say it
                          "settings": seeds[0]["settings"]},
        "search_space": study["search_space"]["text"],
        "objectives": objectives,
        "study": {"name": study.get("config", {}).get("name"), "created": study.get("created"),
                  "command": study.get("command")},
        "data": {"source": study.get("data", {}).get("source"), "cohort_dir": dataset_meta.get("cohort_dir"),
                 "fingerprint": dataset_meta.get("fingerprint"), "split_sizes": dataset_meta.get("split_sizes"),
                 "image_encoder": dataset_meta.get("encoder"), "encoder_weights_loaded": dataset_meta.get("weights_used"),
                 "warning": dataset_meta.get("warning"), "fields": dataset_meta.get("fields", {})},
        "seeds": [{k: s[k] for k in ("seed", "trial_id", "best_epoch", "validation")} for s in seeds],
        "default_seed": default_seed,
        "metrics": metrics,
        "versions": versions,
        "intended_use": INTENDED_USE,
        "limits": list(LIMITS),
    }


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _shown(cell: dict | None) -> str:
    if not cell or cell["mean"] is None:
        return ""
    if cell["ci95"] is None:
        return f"{cell['mean']:.3f} (one seed: no interval)"
    return f"{cell['mean']:.3f} [{cell['ci95'][0]:.3f}, {cell['ci95'][1]:.3f}]"


def card_markdown(card: dict) -> str:
    """``MODEL_CARD.md``: the same content as ``model_card.json``, for people."""
    objective_names = {bare_metric(m) for m in card["objectives"]}
    rows = [f"| {name}{' (objective)' if name in objective_names else ''} | {_shown(by.get('val'))} | "
            f"{_shown(by.get('test'))} |" for name, by in card["metrics"].items()]
    params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in card["configuration"]["params"].items())
    data = card["data"]
    seeds = "\n".join(f"| {s['seed']} | {s['trial_id']} | {s['best_epoch']} | "
                      + ", ".join(f"{bare_metric(m)} {v:.3f}" for m, v in s["validation"].items()) + " |"
                      for s in card["seeds"])
    lines = [
        f"# Model card: configuration {card['config_id']}",
        "",
        "**" + " ".join(card["limits"][:1]) + "**",
        "",
        "## Model",
        "",
        model_sentence(card["configuration"].get("settings", {}), data.get("fields", {})),
        "",
        f"- configuration: `{card['config_id']}` ({params})",
        f"- study: {card['study']['name']} (created {card['study']['created']})",
        *([f"- trained again with new seeds on {card['retrained_from']['fit_on']} from configuration "
           f"`{card['retrained_from']['config_id']}` of `{card['retrained_from']['experiment']}` (`--retrain`)"]
          if card.get("retrained_from") else []),
        *(["- **its validation metrics are on data it was trained on** (`--retrain-on train+validate`); "
           "the original study's are the honest ones, and test is still unseen"]
          if card.get("retrained_from", {}).get("fit_on", "train") != "train" else []),
        f"- objectives: {', '.join(f'{m} ({d})' for m, d in card['objectives'].items())}",
        f"- default model: seed {card['default_seed']['seed']} ({card['default_seed']['reason']})",
        "",
        "## Data",
        "",
        f"- source: {data['source']}; cohort `{data['cohort_dir']}`; prepared dataset {data['fingerprint']}",
        f"- split sizes: {data['split_sizes']}",
        f"- image encoder: {data['image_encoder']['name']} at {data['image_encoder']['image_size']} px, "
        f"weights loaded: {data['encoder_weights_loaded']}",
        *([f"- **warning**: {data['warning']}"] if data.get("warning") else []),
        "",
        "## Results over seeds (mean and 95 % interval)",
        "",
        "| metric | validation | test |",
        "|---|---|---|",
        *rows,
        "",
        "Validation chose the configuration; test was recorded and never used for choosing.",
        "",
        "## Seeds",
        "",
        "| seed | trial | best epoch | validation objectives |",
        "|---|---|---|---|",
        seeds,
        "",
        "## Intended use",
        "",
        card["intended_use"],
        "",
        "## Limits",
        "",
        *(f"- {limit}" for limit in card["limits"]),
        "",
        "## Versions",
        "",
        ", ".join(f"{k} {v}" for k, v in card["versions"].items()),
        "",
        "## Search space",
        "",
        "```yaml",
        card["search_space"].rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)
