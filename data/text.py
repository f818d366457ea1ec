"""Text normalisation for the non-imaging text fields and a small word-level tokenizer.

The paper (section 3.2) lowercases, strips punctuation with regular expressions, collapses runs of
periods and expands ED shorthand; :data:`ABBREVIATIONS` is that dictionary, applied whole-word.
"""
from __future__ import annotations

import re
from collections import Counter

# ED triage shorthand -> full text. Keys are matched as whole words after lowercasing.
ABBREVIATIONS = {
    "sob": "shortness of breath",
    "doe": "dyspnea on exertion",
    "cp": "chest pain",
    "abd": "abdominal",
    "s/p": "status post",
    "n/v": "nausea and vomiting",
    "n/v/d": "nausea vomiting and diarrhea",
    "ams": "altered mental status",
    "etoh": "alcohol",
    "le": "lower extremity",
    "ble": "bilateral lower extremity",
    "uri": "upper respiratory infection",
    "uti": "urinary tract infection",
    "chf": "congestive heart failure",
    "copd": "chronic obstructive pulmonary disease",
    "pna": "pneumonia",
    "htn": "hypertension",
    "mvc": "motor vehicle collision",
    "ili": "influenza like illness",
    "r/o": "rule out",
    "w/": "with",
    "hx": "history",
    "sx": "symptoms",
    "ha": "headache",
    "lbp": "low back pain",
    "dx": "diagnosis",
}
_ABBREV_RE = re.compile(r"(?<![\w/])(" + "|".join(
    re.escape(k) for k in sorted(ABBREVIATIONS, key=len, reverse=True)) + r")(?![\w/])")


def normalize_field(text: str | None) -> str:
    """Normalise a chief complaint or ICD title: lowercase, expand shorthand, strip punctuation.

    >>> normalize_field("SOB, CP..  s/p fall")
    'shortness of breath chest pain status post fall'
    """
    if not isinstance(text, str):  # None, NaN or pd.NA (a string column's missing value): no words
        return ""
    text = str(text).lower()
    text = re.sub(r"\.{2,}", " ", text)                     # ".." and "..." become a space
    text = _ABBREV_RE.sub(lambda m: ABBREVIATIONS[m.group(1)], text)
    text = re.sub(r"[^a-z0-9 ]+", " ", text)                # remaining punctuation
    return re.sub(r"\s+", " ", text).strip()


def report_words(report: str) -> list[str]:
    """Split a report into the tokens the generator learns: lowercase words and sentence periods."""
    text = re.sub(r"\.{2,}", ".", str(report).lower())
    text = re.sub(r"[^a-z0-9. ]+", " ", text).replace(".", " . ")
    return text.split()


def join_words(words: list[str]) -> str:
    """Inverse of :func:`report_words` for display: ``['a', 'b', '.']`` -> ``'a b.'``."""
    return " ".join(words).replace(" .", ".")


class Tokenizer:
    """Word-level vocabulary fitted on training text; ids 0-3 are pad, unknown, start, end."""

    PAD, UNK, START, END = "<pad>", "<unk>", "<start>", "<end>"

    def __init__(self, vocab: list[str], max_length: int, *, add_start_end: bool):
        self.vocab = vocab
        self.max_length = max_length
        self.add_start_end = add_start_end
        self.index = {w: i for i, w in enumerate(vocab)}

    @classmethod
    def fit(cls, token_lists, *, max_vocab: int, max_length: int, add_start_end: bool,
            min_count: int = 1) -> "Tokenizer":
        counts = Counter(w for tokens in token_lists for w in tokens)
        # most frequent first, ties alphabetical, so the vocabulary is deterministic
        words = sorted((w for w, c in counts.items() if c >= min_count),
                       key=lambda w: (-counts[w], w))
        specials = [cls.PAD, cls.UNK, cls.START, cls.END]
        return cls(specials + words[: max_vocab - len(specials)], max_length,
                   add_start_end=add_start_end)

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def start_id(self) -> int:
        return 2

    @property
    def end_id(self) -> int:
        return 3

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, tokens: list[str]) -> list[int]:
        """Token ids, with start/end markers if configured, truncated and padded to max_length."""
        ids = [self.index.get(w, 1) for w in tokens]
        if self.add_start_end:
            ids = [self.start_id] + ids[: self.max_length - 2] + [self.end_id]
        ids = ids[: self.max_length]
        return ids + [self.pad_id] * (self.max_length - len(ids))

    def decode(self, ids) -> list[str]:
        """Words for ids, stopping at the end token and skipping pad/start."""
        words = []
        for i in ids:
            i = int(i)
            if i == self.end_id:
                break
            if i in (self.pad_id, self.start_id):
                continue
            words.append(self.vocab[i])
        return words

    def to_dict(self) -> dict:
        return {"vocab": self.vocab, "max_length": self.max_length,
                "add_start_end": self.add_start_end}

    @classmethod
    def from_dict(cls, d: dict) -> "Tokenizer":
        return cls(d["vocab"], d["max_length"], add_start_end=d["add_start_end"])

    def __eq__(self, other) -> bool:
        return isinstance(other, Tokenizer) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Tokenizer(vocab={len(self)}, max_length={self.max_length})"

