"""Learned report scorers, used when their weights are already on this machine: CheXbert F1
(``f1chexbert``; Smit et al. 2020) and RadGraph F1 (``radgraph``; Jain et al. 2021), the scores
report-generation papers now publish beside BLEU and BERTScore.

Both packages download their weights on first use; nothing may download here, so :func:`unavailable`
checks first, from the files alone, and a missing package or missing weights skip the scorer with
one line saying what is missing. The scorers are then built with the Hugging Face hub offline.
Install them with ``pip install -e '.[scorers]'`` and put the weights where the packages look
(their caches: ``f1chexbert``'s ``chexbert.pth``, ``radgraph``'s model directory, and the
tokenizers they name in the Hugging Face cache).
"""
from __future__ import annotations

import contextlib
import json
import os
from functools import lru_cache
from pathlib import Path

LEARNED_SCORERS = ("chexbert", "radgraph")
METRIC = {"chexbert": "chexbert_f1", "radgraph": "radgraph_f1"}
RADGRAPH_MODEL = "radgraph-xl"


def _in_hf_cache(repo: str, filename: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo, filename), str)


def unavailable(name: str) -> str | None:
    """Why scorer ``name`` cannot run here without a download (None: it can)."""
    if name not in LEARNED_SCORERS:
        return f"unknown scorer {name!r}; known: {list(LEARNED_SCORERS)}"
    package = {"chexbert": "f1chexbert", "radgraph": "radgraph"}[name]
    try:
        module = __import__(f"{package}.{package}", fromlist=["CACHE_DIR"])
    except ImportError:
        return f"the {package} package is not installed (pip install -e '.[scorers]')"
    if name == "chexbert":
        weights = Path(module.CACHE_DIR) / "chexbert.pth"
        if not weights.is_file():
            return f"no CheXbert weights at {weights}"
        if not _in_hf_cache("bert-base-uncased", "vocab.txt"):
            return "the bert-base-uncased tokenizer is not in the Hugging Face cache"
        return None
    model_dir = Path(module.CACHE_DIR) / RADGRAPH_MODEL
    if not model_dir.is_dir() or not (model_dir / "config.json").is_file():
        return f"no RadGraph model at {model_dir}"
    encoder = json.loads((model_dir / "config.json").read_text())["dataset_reader"]["token_indexers"]["bert"]["model_name"]
    if not _in_hf_cache(encoder, "config.json"):
        return f"RadGraph's encoder {encoder} is not in the Hugging Face cache"
    return None


@contextlib.contextmanager
def _offline():
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@lru_cache(maxsize=None)
def _scorer(name: str):
    with _offline():
        if name == "chexbert":
            from f1chexbert import F1CheXbert

            return F1CheXbert()
        from radgraph import F1RadGraph

        return F1RadGraph(reward_level="partial", model_type=RADGRAPH_MODEL)


def score(name: str, references: list, hypotheses: list) -> dict:
    """``{"chexbert_f1": micro F1 over the five findings}`` or ``{"radgraph_f1": partial reward}``."""
    scorer = _scorer(name)
    with _offline():
        if name == "chexbert":
            _, _, _, five = scorer(hyps=list(hypotheses), refs=list(references))
            return {METRIC[name]: float(five["micro avg"]["f1-score"])}
        mean_reward = scorer(hyps=list(hypotheses), refs=list(references))[0]
        return {METRIC[name]: float(mean_reward)}


def usable(names, announce=print) -> tuple:
    """The requested scorers that can run here; each one that cannot is announced on one line."""
    out = []
    for name in names or ():
        reason = unavailable(name)
        if reason:
            announce(f"{METRIC.get(name, name)} skipped: {reason}")
        else:
            out.append(name)
    return tuple(out)
