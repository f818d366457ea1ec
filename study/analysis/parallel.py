"""Bootstrap draws over the machine's cores: the same answers as one process, in less time.

A bootstrap recomputes the same quantity on each of its draws, independently, so the draws can be
split into contiguous blocks, each computed in its own process, and put back in order: the
numbers are those of a single process, draw for draw. Each block goes to a fresh ``python``
started for it, which imports only the function's module (``multiprocessing``'s spawn would run
the caller's script again in every worker, and a fork of a process with threads, such as a
notebook kernel's or Ray's driver, can deadlock). A worker costs about a second to start, so
small bootstraps stay in the calling process.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile

import numpy as np

MIN_SECONDS = 10.0  # estimated work below which the draws stay in the calling process

_WORKER = ("import pickle, sys\n"
           "sys.path[:0] = pickle.load(sys.stdin.buffer)\n"
           "fn, block, args = pickle.load(sys.stdin.buffer)\n"
           "pickle.dump(fn(block, *args), sys.stdout.buffer)\n")


def workers_available() -> int:
    """Cores this process may use (its CPU affinity, which a cluster node or container sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def map_draws(fn, draws: np.ndarray, *args, seconds_each: float, workers: int | None = None) -> list:
    """``fn(block, *args)`` over contiguous blocks of ``draws`` (first axis), concatenated in
    order: ``fn(draws, *args)`` itself when the estimated time (``seconds_each`` per draw) is
    under :data:`MIN_SECONDS` or one worker is available. ``fn`` must be a module-level function
    returning a list with one item per draw of its block."""
    workers = min(workers or workers_available(), len(draws))
    if workers <= 1 or seconds_each * len(draws) < MIN_SECONDS:
        return fn(draws, *args)
    running = []
    for block in np.array_split(draws, workers):  # every worker gets its block before any is read
        errors = tempfile.TemporaryFile()
        proc = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=errors)
        pickle.dump(sys.path, proc.stdin)
        pickle.dump((fn, block, args), proc.stdin)
        proc.stdin.close()
        running.append((proc, errors))
    out = []
    for proc, errors in running:
        result = proc.stdout.read()
        if proc.wait():
            errors.seek(0)
            lines = errors.read().decode(errors="replace").strip().splitlines() or ["no message"]
            raise RuntimeError(f"a bootstrap worker failed: {lines[-1]}")
        out.extend(pickle.loads(result))
    return out
