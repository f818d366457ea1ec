"""3. Decoding: cached incremental vs naive greedy decoding, and beam search cost per width.

    python -m benchmarks.decoding [--quick]

Both decoders run on the same randomly initialised default-size model, with the end token
disabled so every row decodes exactly N tokens (50, 100, 200; batch 16). The naive decoder
re-runs the whole prefix through the decoder for every new token (as the Keras captioning
example); the cached one keeps each layer's keys and values and computes one position per token.
"""
from __future__ import annotations


import numpy as np

from .common import Finding, Outcome, cli, mean_seconds

FULL = {"lengths": (50, 100, 200), "batch": 16, "widths": (1, 2, 4), "repeats": 1}
QUICK = {"lengths": (10,), "batch": 2, "widths": (2,), "repeats": 1}


def endless_model(n: int, batch: int):
    """The default-size model, randomly initialised, whose end token never wins (every row decodes
    exactly ``n`` tokens), and random inputs for a batch."""
    from model.config import ModelConfig
    from model.decoding import END_ID
    from model.network import build_model, dummy_inputs

    cfg = ModelConfig(report_length=n + 1)
    model = build_model(cfg, seed=0)
    bias = model.to_vocab.bias
    bias.assign(bias.numpy() - 1e4 * np.eye(cfg.report_vocab)[END_ID])  # never stop early
    x = dummy_inputs(cfg, batch)
    x["image_features"] = np.random.default_rng(0).normal(size=x["image_features"].shape).astype("float32")
    return model, x


def measure(lengths, batch, widths, repeats) -> list[dict]:
    from model.decoding import beam_search, greedy_decode, naive_greedy_decode

    rows = []
    for n in lengths:
        model, x = endless_model(n, batch)
        naive = mean_seconds(lambda: naive_greedy_decode(model, x), repeats)
        cached = mean_seconds(lambda: greedy_decode(model, x), repeats)
        beams = {w: mean_seconds(lambda: beam_search(model, x, beam_width=w), repeats) for w in widths}
        rows.append({"tokens": n, "batch": batch, "naive_s": naive, "cached_s": cached,
                     "speedup": naive / cached, "beam_s": beams,
                     "beam_vs_greedy": {w: s / cached for w, s in beams.items()}})
        print(f"greedy {n:4d} tokens x {batch}: naive {naive:.3f} s, cached {cached:.3f} s "
              f"(speed-up {naive / cached:.1f}x); beam "
              + ", ".join(f"width {w} {s:.3f} s ({s / cached:.1f}x greedy)" for w, s in beams.items()))
    return rows


def run(ws) -> Outcome:
    rows = measure(**(QUICK if ws.quick else FULL))
    findings = [Finding("3 Decoding", f"greedy, {r['tokens']} tokens x {r['batch']}: cached vs naive",
                        r["cached_s"], r["naive_s"], "s", r["speedup"]) for r in rows]
    widest = max(rows[-1]["beam_s"])
    findings.append(Finding("3 Decoding", f"beam width {widest}, {rows[-1]['tokens']} tokens: cost vs cached greedy",
                            rows[-1]["beam_s"][widest], rows[-1]["cached_s"], "s",
                            rows[-1]["beam_vs_greedy"][widest]))
    return Outcome("decoding", findings, {"rows": rows})


def main(argv=None) -> Outcome:
    return cli("decoding", run, argv, __doc__)


if __name__ == "__main__":
    main()
