"""The benchmark helpers that turn measurements into the numbers we publish."""

from __future__ import annotations

import os

from bench.common import machine_busy_s, percentile, proc_cpu_s


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert percentile(values, 50) == 5.0  # the 5th of 10, not the 6th
    assert percentile(values, 95) == 10.0
    assert percentile(values, 10) == 1.0
    assert percentile(values, 11) == 2.0
    assert percentile([], 50) is None


def test_cpu_accounting_reads_this_process() -> None:
    before = proc_cpu_s(os.getpid())
    sum(i * i for i in range(200_000))
    after = proc_cpu_s(os.getpid())
    assert before is not None
    assert after is not None
    assert after >= before
    assert machine_busy_s() > 0
    assert proc_cpu_s(2**22 + 12345) is None  # no such process
