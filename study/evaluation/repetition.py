"""How much a report repeats itself: the paper's figure 2 shows MTL-EQ writing the same sentence
again and again; these measures count it.

* ``repeat_4gram``: the share of a report's word 4-grams that already occurred earlier in the same
  report (0 when it has no 4-gram);
* ``repeat_sentence``: the share of its sentences that repeat an earlier sentence word for word.

Words and sentences are read after :func:`study.evaluation.text.normalize_text` (lowercase, no
punctuation); sentences end at ``.``, ``!`` or ``?``.
"""
from __future__ import annotations

import re

import numpy as np

from .text import normalize_text

_SENTENCE_END = re.compile(r"[.!?]")


def _share_repeated(items: list) -> float:
    seen, repeated = set(), 0
    for item in items:
        repeated += item in seen
        seen.add(item)
    return repeated / len(items) if items else 0.0


def repeated_ngrams(report: str, n: int = 4) -> float:
    words = normalize_text(report).split()
    return _share_repeated([tuple(words[i:i + n]) for i in range(len(words) - n + 1)])


def marked_repeats(report: str, n: int = 4) -> list[tuple[str, bool]]:
    """The report's words as written, each with whether it lies in a word n-gram that already
    occurred earlier in the report (what :func:`repeated_ngrams` counts), for display."""
    tokens = (report or "").split()
    words, owner = [], []                  # normalised words and the token each comes from
    for i, token in enumerate(tokens):
        for word in normalize_text(token).split():
            words.append(word)
            owner.append(i)
    repeated, seen = set(), set()
    for i in range(len(words) - n + 1):
        gram = tuple(words[i:i + n])
        if gram in seen:
            repeated.update(owner[i:i + n])
        seen.add(gram)
    return [(t, i in repeated) for i, t in enumerate(tokens)]


def repeated_sentences(report: str) -> float:
    sentences = [normalize_text(s) for s in _SENTENCE_END.split(report or "")]
    return _share_repeated([s for s in sentences if s])


def repetition(reports) -> dict[str, np.ndarray]:
    """Per report: ``repeat_4gram`` and ``repeat_sentence`` (each in [0, 1), 0 is no repetition)."""
    return {"repeat_4gram": np.array([repeated_ngrams(r) for r in reports], float),
            "repeat_sentence": np.array([repeated_sentences(r) for r in reports], float)}
