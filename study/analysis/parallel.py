"""Bootstrap draws over the machine's cores: the same answers as one process, in less time.

A bootstrap recomputes the same quantity on each of its draws, independently, so the draws can be
split into contiguous blocks, each computed in its own process, and put back in order: the
numbers are those of a single process, draw for draw. Processes are started with ``spawn`` (a
fork of a process with threads, such as a notebook kernel's, can deadlock), which costs about a
second each, so small bootstraps stay in the calling process.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np

MIN_SECONDS = 10.0  # estimated work below which the draws stay in the calling process


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
    blocks = np.array_split(draws, workers)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        parts = list(pool.map(fn, blocks, *([a] * len(blocks) for a in args)))
    return [item for part in parts for item in part]
