"""Test-wide settings.

Hypothesis runs derandomized: the same examples on every run, so the codecs' 100% branch-coverage gate
cannot pass or fail by chance. Wider random exploration lives in the fuzz scripts under ``benchmarks/``.
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("greenroom", derandomize=True, deadline=None)
settings.load_profile("greenroom")
