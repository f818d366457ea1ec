"""Cached incremental vs naive greedy decoding (and beam search cost per width).

    python -m benchmarks.decoding [--lengths 50 100 200] [--batch 16] [--widths 1 2 4] [--quick]

Both decoders run on the same randomly initialised default-size model, with the end token
disabled so every row decodes exactly N tokens. Prints a table; returns the rows as dicts.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from model.config import ModelConfig  # noqa: E402
from model.decoding import END_ID, beam_search, greedy_decode, naive_greedy_decode  # noqa: E402
from model.network import build_model, dummy_inputs  # noqa: E402


def _timed(fn, repeats=2):
    fn()  # warm-up: traces the compiled step
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def run(lengths=(50, 100, 200), batch=16, widths=(1, 2, 4), repeats=2) -> list[dict]:
    rows = []
    for n in lengths:
        cfg = ModelConfig(report_length=n + 1)
        model = build_model(cfg, seed=0)
        bias = model.to_vocab.bias
        bias.assign(bias.numpy() - 1e4 * np.eye(cfg.report_vocab)[END_ID])  # never stop early
        x = dummy_inputs(cfg, batch)
        x["image_features"] = np.random.default_rng(0).normal(size=x["image_features"].shape).astype("float32")
        naive = _timed(lambda: naive_greedy_decode(model, x), repeats)
        cached = _timed(lambda: greedy_decode(model, x), repeats)
        rows.append({"benchmark": "decoding", "tokens": n, "batch": batch, "naive_s": naive,
                     "cached_s": cached, "speedup": naive / cached})
        for w in widths:
            rows.append({"benchmark": "beam", "tokens": n, "batch": batch, "beam_width": w,
                         "seconds": _timed(lambda: beam_search(model, x, beam_width=w), repeats),
                         "vs_greedy": None})
            rows[-1]["vs_greedy"] = rows[-1]["seconds"] / cached
    return rows


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.decoding", description=__doc__.split("\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[50, 100, 200])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--widths", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test")
    a = p.parse_args(argv)
    rows = run([10], 2, [2], 1) if a.quick else run(a.lengths, a.batch, a.widths)
    for r in rows:
        if r["benchmark"] == "decoding":
            print(f"greedy {r['tokens']:4d} tokens x {r['batch']}: naive {r['naive_s']:.3f} s, "
                  f"cached {r['cached_s']:.3f} s, speed-up {r['speedup']:.1f}x")
        else:
            print(f"beam width {r['beam_width']} at {r['tokens']} tokens: {r['seconds']:.3f} s "
                  f"({r['vs_greedy']:.1f}x cached greedy)")
    return rows


if __name__ == "__main__":
    main()
