"""Rule-based labeler for the five findings, in the spirit of NegEx and the CheXpert labeler.

Each report is split into sentences, and each sentence into clauses at contrast words ("but",
"however", "although", "with the exception of") and semicolons. For every mention of a finding:

1. **Fixed phrases** decide directly: "heart size is normal", "normal heart size" -> negative
   (cardiomegaly); "heart is enlarged", "enlarged cardiac silhouette" -> mention.
2. **Strong uncertainty** first, because these phrases contain a negation: "cannot exclude",
   "cannot rule out" before the mention, "is not excluded", "cannot be ruled out" after it.
3. **Negation**: a cue before the mention within six words ("no", "without", "negative for",
   "free of", "absence of", "no evidence of", "resolution of") or after it ("has resolved",
   "have resolved", "is not seen", "no longer", "is absent").
4. **Uncertainty**: a hedge within eight words before ("possible", "may", "concerning for",
   "suggests", "questionable", "likely", "versus", "may represent") or five words after ("is
   possible", "versus", "is suspected").
5. Otherwise the mention is **positive**.

A report's label per finding is the strongest of its mentions: positive > uncertain > negative >
not mentioned (as CheXpert aggregates). Synonyms and plurals are matched by the patterns in
:data:`MENTIONS` (e.g. "effusions", "atelectatic", "vascular congestion" for edema).
"""
from __future__ import annotations

import re

POSITIVE, UNCERTAIN, NEGATIVE, NOT_MENTIONED = 1, -1, 0, None
FINDINGS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")

MENTIONS = {
    "Atelectasis": [r"atelecta\w*", r"(?:lobar |segmental )?collapse"],
    "Cardiomegaly": [r"cardiomegaly", r"enlarge(?:d|ment of the) (?:heart|cardiac silhouette)",
                     r"(?:heart|cardiac silhouette)(?: size)? (?:is |are |appears |remains )*"
                     r"(?:\w+ly |mildly |moderately |severely )?enlarged",
                     r"enlarged cardiac silhouette"],
    "Consolidation": [r"consolidat\w*", r"airspace opacit\w*"],
    "Edema": [r"edema\w*", r"(?:pulmonary )?vascular congestion", r"pulmonary congestion"],
    "Pleural Effusion": [r"(?:pleural )?effusion\w*", r"pleural fluid"],
}
FIXED_NEGATIVE = {
    "Cardiomegaly": [r"heart size (?:is )?(?:within normal limits|normal)", r"normal heart size",
                     r"heart (?:is )?(?:of )?normal (?:in )?size",
                     r"heart size (?:is )?(?:top normal|upper limits of normal)"],
}
STRONG_PRE_UNCERTAIN = r"cannot exclude|can not exclude|cannot rule out|can not rule out"
STRONG_POST_UNCERTAIN = (r"(?:is|are|be) not excluded|cannot be (?:excluded|ruled out)|"
                         r"can not be (?:excluded|ruled out)|not (?:excluded|ruled out)")
PRE_UNCERTAIN = (r"possible|possibly|may|might|could|concerning for|suspicious for|suggest\w*|"
                 r"questionable|likely|probable|probably|versus|vs|borderline|equivocal|"
                 r"differential|represent\w*|suspected")
POST_UNCERTAIN = r"versus|vs|(?:is|are) possible|may be present|(?:is|are) (?:likely|suspected)"
PRE_NEGATION = (r"no|not|without|negative for|free of|absence of|no evidence of|"
                r"no signs? of|resolution of|resolved|clear of|rather than")
POST_NEGATION = (r"(?:has|have) resolved|resolved|(?:is|are) not (?:seen|present|identified|"
                 r"appreciated)|no longer|(?:is|are) absent|(?:has|have) cleared")
CLAUSE_BREAK = r"\bbut\b|\bhowever\b|\balthough\b|\bwith the exception of\b|;|\bwhich\b"
NEGATION_WINDOW = 6  # words between a pre-negation cue and the mention


def sentences(report: str) -> list[str]:
    clauses = []
    for sentence in re.split(r"(?<!\d)\.(?!\d)|\n", report.lower()):
        clauses.extend(c.strip() for c in re.split(CLAUSE_BREAK, sentence) if c.strip())
    return clauses


def _has_cue(text: str, cues: str, *, at_end: bool, window: int | None = None) -> bool:
    words = re.findall(r"[a-z/]+", text)
    if window is not None:
        words = words[-window:] if at_end else words[:window]
    return re.search(rf"(?:^|\s)(?:{cues})(?:\s|$)", " ".join(words)) is not None


def mention_status(clause: str, start: int, end: int) -> int:
    """Classify one mention at ``clause[start:end]``."""
    before, after = clause[:start], clause[end:]
    if (_has_cue(before, STRONG_PRE_UNCERTAIN, at_end=True)
            or _has_cue(after, STRONG_POST_UNCERTAIN, at_end=False, window=6)):
        return UNCERTAIN
    if (_has_cue(before, PRE_NEGATION, at_end=True, window=NEGATION_WINDOW)
            or _has_cue(after, POST_NEGATION, at_end=False, window=5)):
        return NEGATIVE
    if (_has_cue(before, PRE_UNCERTAIN, at_end=True, window=8)
            or _has_cue(after, POST_UNCERTAIN, at_end=False, window=5)):
        return UNCERTAIN
    return POSITIVE


def label_report(report: str) -> dict:
    """``{finding: 1 (positive) | -1 (uncertain) | 0 (negative) | None (not mentioned)}``."""
    labels = {f: NOT_MENTIONED for f in FINDINGS}
    rank = {NOT_MENTIONED: 0, NEGATIVE: 1, UNCERTAIN: 2, POSITIVE: 3}
    for clause in sentences(report or ""):
        for finding in FINDINGS:
            statuses = []
            for pattern in FIXED_NEGATIVE.get(finding, []):
                if re.search(pattern, clause):
                    statuses.append(NEGATIVE)
            for pattern in MENTIONS[finding]:
                for m in re.finditer(rf"\b{pattern}\b", clause):
                    statuses.append(mention_status(clause, m.start(), m.end()))
            for s in statuses:
                if rank[s] > rank[labels[finding]]:
                    labels[finding] = s
    return labels


def positive_vector(report: str) -> list[int]:
    """0/1 per finding for clinical-efficacy scoring: only a positive mention counts as 1."""
    labels = label_report(report)
    return [int(labels[f] == POSITIVE) for f in FINDINGS]
