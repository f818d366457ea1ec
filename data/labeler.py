"""The five findings in a radiology report: positive, uncertain, negative or not mentioned.

Built on the field's tools: spaCy for tokens and sentences (a blank English pipeline with the
rule-based sentencizer; no model to download) and negspacy's NegEx (Chapman et al. 2001) for the
scope of negation and uncertainty cues. What is ours is what a radiology report needs on top:

* **Targets** (an ``entity_ruler``): the five findings' mentions after the CheXpert labeler's
  phrase lists (Irvin et al. 2019), narrowed where they mislead: "pericardial effusion" and
  "joint effusion" are not pleural effusions, "airspace opacity" is not consolidation, soft-tissue
  edema is not pulmonary edema. "Heart size is normal" and its variants are targets of their own,
  read as a negative cardiomegaly statement.
* **Three NegEx passes**, as the CheXpert labeler orders its rules: strong uncertainty first
  ("cannot be excluded" contains a negation), then negation ("no", "without", "no longer seen",
  "has resolved"), then hedges ("possible", "likely", "may represent", "versus", ", likely").
  Each pass is a negspacy ``negex`` component with its own cue lists; a cue's scope is its
  sentence up to a termination word ("but", "however", "which", ";" ...), so "Specifically, no
  evidence of focal consolidation, pneumothorax, or pleural effusion" negates every item of the
  list. Pseudo-negations ("no change in", "no increase in") are not negations.

A report's label per finding is the strongest of its mentions: positive > uncertain > negative >
not mentioned (as CheXpert aggregates). :func:`label_reports` labels many reports in one batch.
"""
from __future__ import annotations

from functools import lru_cache

from .schema import FINDINGS

POSITIVE, UNCERTAIN, NEGATIVE, NOT_MENTIONED = 1, -1, 0, None
NORMAL_HEART = "NORMAL_HEART"   # a statement that the heart is not enlarged (negative cardiomegaly)
NOT_A_FINDING = "NOT_A_FINDING"  # longer phrases that contain a mention but mean something else

_ENLARGED = {"LOWER": {"IN": ["enlarged", "enlarging", "increased"]}}
_HEART = [{"LOWER": {"IN": ["heart", "cardiac"]}}, {"LOWER": {"IN": ["size", "silhouette", "shadow", "contour"]}, "OP": "*"}]
_BE = {"LOWER": {"IN": ["is", "are", "appears", "remains", "seems", "again", "now", "still", "be"]}, "OP": "*"}
_DEGREE = {"LOWER": {"IN": ["mildly", "moderately", "severely", "markedly", "slightly", "minimally",
                            "massively", "borderline", "possibly", "probably", "likely", "not"]}, "OP": "*"}
_NORMAL = {"LOWER": {"IN": ["normal", "unremarkable"]}}

PATTERNS = [
    {"label": "Atelectasis", "pattern": [{"LOWER": {"REGEX": r"^atelecta"}}]},
    {"label": "Atelectasis", "pattern": [{"LOWER": {"REGEX": r"^collapsed?$"}}]},
    {"label": "Cardiomegaly", "pattern": [{"LOWER": "cardiomegaly"}]},
    {"label": "Cardiomegaly", "pattern": [_ENLARGED, *_HEART]},
    {"label": "Cardiomegaly", "pattern": [{"LOWER": "cardiac"}, {"LOWER": "enlargement"}]},
    {"label": "Cardiomegaly", "pattern": [{"LOWER": "enlargement"}, {"LOWER": "of"}, {"LOWER": "the"},
                                          {"LOWER": {"IN": ["heart", "cardiac"]}}, {"LOWER": "silhouette", "OP": "?"}]},
    {"label": "Cardiomegaly", "pattern": [*_HEART, _BE, _DEGREE, _ENLARGED]},
    {"label": NORMAL_HEART, "pattern": [*_HEART, _BE, _NORMAL]},
    {"label": NORMAL_HEART, "pattern": [*_HEART, _BE, {"LOWER": {"IN": ["top", "upper", "high"]}}, _NORMAL]},
    {"label": NORMAL_HEART, "pattern": [*_HEART, _BE, {"LOWER": "within"}, {"LOWER": "normal"}, {"LOWER": "limits"}]},
    {"label": NORMAL_HEART, "pattern": [*_HEART, _BE, {"LOWER": {"IN": ["upper", "high"]}}, {"LOWER": {"IN": ["limit", "limits"]}},
                                        {"LOWER": "of"}, _NORMAL]},
    {"label": NORMAL_HEART, "pattern": [*_HEART, _BE, {"LOWER": "normal"}, {"LOWER": "in"}, {"LOWER": "size"}]},
    {"label": NORMAL_HEART, "pattern": [{"LOWER": {"IN": ["normal", "stable"]}}, {"LOWER": {"IN": ["heart", "cardiac"]}},
                                        {"LOWER": {"IN": ["size", "silhouette"]}}]},
    {"label": "Consolidation", "pattern": [{"LOWER": {"REGEX": r"^consolidat"}}]},
    {"label": "Edema", "pattern": [{"LOWER": {"REGEX": r"^edema"}}]},
    {"label": "Edema", "pattern": [{"LOWER": {"IN": ["vascular", "pulmonary"]}}, {"LOWER": "congestion"}]},
    {"label": "Edema", "pattern": [{"LOWER": "heart"}, {"LOWER": "failure"}]},
    {"label": "Edema", "pattern": [{"LOWER": "chf"}]},
    {"label": "Pleural Effusion", "pattern": [{"LOWER": {"REGEX": r"^effusions?$"}}]},
    {"label": "Pleural Effusion", "pattern": [{"LOWER": "pleural"}, {"LOWER": "fluid"}]},
    # longer phrases win over the mentions they contain (the ruler keeps the longest match)
    {"label": NOT_A_FINDING, "pattern": [{"LOWER": {"IN": ["pericardial", "joint", "knee"]}},
                                         {"LOWER": {"REGEX": r"^effusions?$"}}]},
    {"label": NOT_A_FINDING, "pattern": [{"LOWER": {"IN": ["subcutaneous", "soft", "tissue", "scrotal", "facial"]}},
                                         {"LOWER": "tissue", "OP": "?"}, {"LOWER": {"REGEX": r"^edema"}}]},
    {"label": NOT_A_FINDING, "pattern": [{"LOWER": {"IN": ["vertebral", "compression"]}},
                                         {"LOWER": "body", "OP": "?"}, {"LOWER": {"REGEX": r"^collapsed?$"}}]},
]

# Cue lists: each extends or trims negspacy's "en_clinical" termset for its pass.
TERMINATION = ["but", "however", "although", "though", "which", "whereas", "while", ";", "otherwise",
               "with the exception of", "except", "apart from", "aside from", "nevertheless", "yet"]
STRONG_UNCERTAINTY = {
    "preceding": ["cannot exclude", "can not exclude", "cannot rule out", "can not rule out",
                  "difficult to exclude", "not excluded", "cannot be excluded"],
    "following": ["cannot be excluded", "can not be excluded", "is not excluded", "are not excluded",
                  "not excluded", "cannot be ruled out", "not ruled out", "not be excluded",
                  "cannot be entirely excluded", "not entirely excluded", "cannot be completely excluded"],
}
NEGATION = {
    "preceding": ["no", "not", "without", "negative for", "free of", "clear of", "absence of",
                  "no evidence of", "no signs of", "no sign of", "no radiographic evidence of",
                  "resolution of", "resolved", "interval resolution of", "rather than", "never"],
    "following": ["has resolved", "have resolved", "resolved", "has cleared", "have cleared", "cleared",
                  "is no longer seen", "are no longer seen", "no longer seen", "no longer present",
                  "no longer visible", "no longer evident", "is not seen", "are not seen", "not seen",
                  "is not present", "are not present", "not present", "is absent", "are absent",
                  "not identified", "not appreciated", "not visualized", "has been removed", "unlikely"],
    "pseudo": ["no change", "no significant change", "no interval change", "no increase", "no definite change",
               "not significantly changed", "not changed", "no substantial change", "not only",
               "no further", "no new or increasing"],
}
HEDGE = {
    "preceding": ["possible", "possibly", "may", "might", "could", "concerning for", "suspicious for",
                  "worrisome for", "suggestive of", "suggesting", "suggests", "suggest", "question of",
                  "questionable", "likely", "probable", "probably", "borderline", "equivocal", "versus",
                  "vs", "vs.", "may represent", "could represent", "may reflect", "presumed", "presumably",
                  "suspected", "rule out", "r/o", "evaluate for", "differential diagnosis includes",
                  "cannot be assessed"],
    "following": ["versus", "vs", "vs.", "is possible", "are possible", "is likely", "are likely",
                  "is suspected", "are suspected", "is questioned", "not well seen",
                  "may be present", "is suggested", "or atelectasis", "or consolidation", "or edema",
                  "or effusion", "or pneumonia", "is probable"],
}


TRAILING_HEDGES = {"likely", "possibly", "probably", "suspected", "questionable"}  # "atelectasis, likely."


def _termset(cues: dict, *, comma_ends_scope: bool) -> dict:
    """A negspacy termset: the cues given and our termination words. Uncertainty cues stop at a
    comma ("effusions with atelectasis, consolidation not excluded" hedges only consolidation);
    negation cues carry across commas, through the lists radiologists write."""
    return {"pseudo_negations": cues.get("pseudo", []), "preceding_negations": cues["preceding"],
            "following_negations": cues["following"],
            "termination": TERMINATION + ([","] if comma_ends_scope else [])}


@lru_cache(maxsize=1)
def pipeline():
    """The spaCy pipeline (built once per process: tokenizer, sentencizer, targets, three passes)."""
    import spacy
    from negspacy.negation import Negex  # noqa: F401  (registers the "negex" factory)

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer", config={"punct_chars": [".", "!", "?", "\n"]})
    nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER"}).add_patterns(PATTERNS)
    targets = [*FINDINGS, NORMAL_HEART]
    for name, cues in (("strong_uncertainty", STRONG_UNCERTAINTY), ("negation", NEGATION), ("hedge", HEDGE)):
        nlp.add_pipe("negex", name=name, config={"neg_termset": _termset(cues, comma_ends_scope=name != "negation"),
                                                   "ent_types": targets, "extension_name": name})
    return nlp


def _status(ent) -> int:
    """One mention's status (the passes' order as in the module docs)."""
    if ent.label_ == NORMAL_HEART:
        return UNCERTAIN if ent._.strong_uncertainty or ent._.hedge else NEGATIVE
    words = {t.lower_ for t in ent}
    if ent._.strong_uncertainty:
        return UNCERTAIN
    if ent._.negation or "not" in words:  # "the heart is not enlarged"
        return NEGATIVE
    if ent._.hedge or words & {"borderline", "possibly", "probably", "likely"} or _trailing_hedge(ent):
        return UNCERTAIN
    return POSITIVE


def _trailing_hedge(ent) -> bool:
    """The clause ends in a hedge right after the mention: "bibasilar atelectasis, likely." (a
    plain following cue would also hedge "consolidation, likely pneumonia")."""
    rest = [t for t in ent.doc[ent.end:ent.sent.end] if not t.is_space]
    return (len(rest) >= 2 and rest[0].text == "," and rest[1].lower_ in TRAILING_HEDGES
            and (len(rest) == 2 or rest[2].is_punct))


RANK = {NOT_MENTIONED: 0, NEGATIVE: 1, UNCERTAIN: 2, POSITIVE: 3}


def label_doc(doc) -> dict:
    labels = {f: NOT_MENTIONED for f in FINDINGS}
    for ent in doc.ents:
        finding = "Cardiomegaly" if ent.label_ == NORMAL_HEART else ent.label_
        if finding not in labels:
            continue
        status = _status(ent)
        if RANK[status] > RANK[labels[finding]]:
            labels[finding] = status
    return labels


def label_reports(reports, batch_size: int = 256) -> list[dict]:
    """``label_report`` for many reports at once (spaCy's batched ``pipe``)."""
    return [label_doc(doc) for doc in pipeline().pipe((r or "" for r in reports), batch_size=batch_size)]


def label_report(report: str) -> dict:
    """``{finding: 1 (positive) | -1 (uncertain) | 0 (negative) | None (not mentioned)}``."""
    return label_doc(pipeline()(report or ""))


def positive_vectors(labelled: list[dict]) -> list[list[int]]:
    """0/1 per finding for clinical-efficacy scoring, from :func:`label_reports`' labels: only a
    positive mention counts as 1."""
    return [[int(labels[f] == POSITIVE) for f in FINDINGS] for labels in labelled]
