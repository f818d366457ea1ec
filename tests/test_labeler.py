"""The clinical-efficacy labeler on reports written in radiologists' words (tests/labeler_cases.py),
one test per case; the cases it gets wrong today are strict xfails with their reason."""
import pytest

from data.labeler import FINDINGS, NEGATIVE, NOT_MENTIONED, POSITIVE, UNCERTAIN, label_report, label_reports

from .labeler_cases import CASES, KNOWN_MISSES

STATUS = {POSITIVE: "positive", UNCERTAIN: "uncertain", NEGATIVE: "negative", NOT_MENTIONED: "not mentioned"}


def _marks(text):
    return [pytest.mark.xfail(strict=True, reason=KNOWN_MISSES[text])] if text in KNOWN_MISSES else []


@pytest.mark.parametrize("text, expected", [pytest.param(t, e, marks=_marks(t), id=t[:60]) for t, e in CASES])
def test_report(text, expected):
    assert label_report(text) == {f: expected.get(f, NOT_MENTIONED) for f in FINDINGS}


def test_the_set_is_large_and_every_known_miss_is_in_it():
    texts = [t for t, _ in CASES]
    assert len(CASES) >= 150 and len(set(texts)) == len(texts)
    assert set(KNOWN_MISSES) <= set(texts)


def accuracy_table(cases=CASES) -> dict:
    """Per finding and per expected status: (correct, total) over the cases (README's table)."""
    got = label_reports([t for t, _ in cases])
    by_finding = {f: [0, 0] for f in FINDINGS}
    by_status = {s: [0, 0] for s in STATUS.values()}
    for (text, expected), labels in zip(cases, got):
        for f in FINDINGS:
            want = expected.get(f, NOT_MENTIONED)
            ok = labels[f] == want
            for row in (by_finding[f], by_status[STATUS[want]]):
                row[0] += ok
                row[1] += 1
    return {"finding": by_finding, "status": by_status,
            "reports": sum(labels == {f: e.get(f) for f in FINDINGS} for (_, e), labels in zip(cases, got))}


def test_batch_and_single_labels_agree():
    texts = [t for t, _ in CASES[:40]]
    assert label_reports(texts) == [label_report(t) for t in texts]


def test_accuracy_per_finding_and_status():
    table = accuracy_table()
    for name, rows in (("finding", table["finding"]), ("status", table["status"])):
        print(name, {k: f"{c}/{n} = {c / n:.3f}" for k, (c, n) in rows.items()})
    assert table["reports"] == len(CASES) - len(KNOWN_MISSES)
