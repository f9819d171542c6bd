"""``examples/tone_bots.py`` as a program: one bot publishes a tone, the other reports its level and pitch."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(60)


def test_tone_bots_report_the_published_pitch_and_level() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}  # embedded dev server
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "tone_bots.py"), "--hz", "523", "--seconds", "2"],
        cwd=ROOT,
        env={**env, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert re.search(r"dev server: ws://127\.0\.0\.1:\d+", proc.stdout)
    reports = [
        (float(level), float(pitch))
        for level, pitch in re.findall(r"level (-?[\d.]+) dBFS  pitch ([\d.]+) Hz", proc.stdout)
    ]
    assert len(reports) == 4, proc.stdout
    expected_level = 20 * math.log10(0.25 / math.sqrt(2))  # a 0.25-of-full-scale sine: about -15.05 dBFS
    for level, pitch in reports[1:]:  # the first half second may hold the onset
        assert abs(pitch - 523) <= 3, proc.stdout
        assert abs(level - expected_level) <= 1.5, proc.stdout
