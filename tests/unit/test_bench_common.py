"""The benchmark helpers that turn measurements into the numbers we publish."""

from __future__ import annotations

import os
from pathlib import Path

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


def test_spy_stacks_reads_py_spy_raw_lines(tmp_path: Path) -> None:
    from bench.common import spy_stacks

    path = tmp_path / "raw.txt"
    path.write_text("main (a.py:1);f (b.py:2) 7\nbroken line\nmain (a.py:1) 3\n")
    assert list(spy_stacks(path)) == [(["main (a.py:1)", "f (b.py:2)"], 7), (["main (a.py:1)"], 3)]
