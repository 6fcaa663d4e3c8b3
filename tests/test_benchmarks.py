"""The asv benchmark cases under pytest-benchmark: one list of cases, two harnesses.

    pytest tests/test_benchmarks.py --benchmark-only --benchmark-json=out.json   # quick timings
In the normal test run (``--benchmark-disable``) each case runs once, as a correctness smoke
test: ``conv_forward`` checks its output against F.conv2d before returning the callable.
"""

from __future__ import annotations

import pytest

from benchmarks.bench_conv import IMPLEMENTATIONS, conv_forward
from benchmarks.common import CONV_SHAPES, threads


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("shape", list(CONV_SHAPES))
def test_conv_forward(benchmark, shape, implementation):
    threads()
    benchmark.group = f"conv forward, {shape}"
    benchmark.extra_info["threads"] = threads()
    fn = conv_forward(implementation, shape)
    fn()                                                   # warm-up: JIT compile, first oneDNN call
    benchmark(fn)
