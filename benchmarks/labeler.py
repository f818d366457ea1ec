"""7. Labeler speed: reports per second on one core, against spaCy's tokenizer alone.

    python -m benchmarks.labeler [--quick]

The clinical-efficacy labeler (``data.labeler``) runs inside every trial's evaluation, on the
generated and the reference reports. Timed on the workspace cohort's reports (repeated to
``reports``), in this process, which uses one core: spaCy's blank pipeline runs single-threaded.
The baseline is the floor of any spaCy labeler: tokenizing the same reports with the same
tokenizer; the ratio is what sentence splitting, the target ruler and the three NegEx passes cost
on top. Target: at least 500 reports per second.
"""
from __future__ import annotations

import time

from .common import Finding, Outcome, cli

FULL = {"reports": 5000, "rounds": 3}
QUICK = {"reports": 200, "rounds": 1}


def _best_rate(fn, reports: list, rounds: int) -> float:
    """Reports per second of ``fn(reports)``, best of ``rounds`` (after one untimed warm-up)."""
    fn(reports[:50])
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        fn(reports)
        best = max(best, len(reports) / (time.perf_counter() - start))
    return best


def run(ws) -> Outcome:
    import pandas as pd

    from data.labeler import label_reports, pipeline

    size = QUICK if ws.quick else FULL
    ws.dataset()  # makes sure the workspace cohort exists
    texts = pd.read_parquet(ws.cohort_dir / "cohort.parquet")["report"].tolist()
    reports = (texts * (size["reports"] // len(texts) + 1))[: size["reports"]]
    tokenizer = pipeline().tokenizer
    labeler = _best_rate(label_reports, reports, size["rounds"])
    tokens_only = _best_rate(lambda rs: list(tokenizer.pipe(rs, batch_size=256)), reports, size["rounds"])
    words = sum(len(r.split()) for r in reports) / len(reports)
    print(f"labeler: {labeler:.0f} reports/s; spaCy tokenizer alone: {tokens_only:.0f} reports/s "
          f"({len(reports)} reports, {words:.0f} words each on average)")
    return Outcome("labeler", [
        Finding("7 Labeler", "reports/s, labeler (one core)", labeler, 500.0, "reports/s", labeler / 500.0, (">=", 1.0)),
        Finding("7 Labeler", "labeler vs tokenizing alone", labeler, tokens_only, "reports/s", labeler / tokens_only),
    ], {"reports": len(reports), "mean_words": words, "labeler_per_s": labeler, "tokenizer_per_s": tokens_only})


def main(argv=None) -> Outcome:
    return cli("labeler", run, argv, __doc__)


if __name__ == "__main__":
    main()
