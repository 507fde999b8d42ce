"""Shared by the benchmarks: the median wall time of a call over several runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_time(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    """(median seconds, the last result) of calling `fn` `repeat` times."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result
