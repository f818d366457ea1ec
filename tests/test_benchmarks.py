"""Benchmarks run at --quick size; only the output format is checked, never the speed."""
from benchmarks import decoding


def test_decoding_benchmark_quick_reports_ratios(capsys):
    rows = decoding.main(["--quick"])
    assert {r["benchmark"] for r in rows} == {"decoding", "beam"}
    greedy = next(r for r in rows if r["benchmark"] == "decoding")
    assert greedy["speedup"] == greedy["naive_s"] / greedy["cached_s"] > 0
    assert "speed-up" in capsys.readouterr().out
