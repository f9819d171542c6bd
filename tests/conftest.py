"""Test-wide settings.

Hypothesis runs derandomized: the same examples on every run, so the codecs' 100% branch-coverage gate
cannot pass or fail by chance. Wider random exploration lives in the fuzz scripts under ``benchmarks/``.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

settings.register_profile("greenroom", derandomize=True, deadline=None)
settings.load_profile("greenroom")


def pytest_addoption(parser: pytest.Parser) -> None:
    """The chaos test's scale (tests/fleet/test_chaos.py): small by default, as CI runs it."""
    group = parser.getgroup("chaos", "the fleet chaos test (marker: chaos)")
    group.addoption("--chaos-bots", type=int, default=20, help="bots in the chaos test (default 20; try 100)")
    group.addoption("--chaos-rounds", type=int, default=3, help="rounds of random crashes (default 3)")
    group.addoption(
        "--chaos-cut", type=float, default=2.0, help="seconds each signal outage lasts (default 2)"
    )
    group.addoption("--chaos-cuts", type=int, default=1, help="signal outages (default 1)")
    faults = parser.getgroup("faults", "the reliable-data fault tests (tests/faults)")
    faults.addoption(
        "--faults-long", action="store_true", help="5 cycles of each fault, 100 packets/s (default: 1, 50/s)"
    )
