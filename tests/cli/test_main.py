"""The ``greenroom`` console script (``greenroom.cli.main``): both subcommands are there."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def test_console_script_has_serve_and_demo() -> None:
    script = shutil.which("greenroom", path=str(Path(sys.executable).parent))
    assert script is not None
    demo_help = subprocess.run([script, "demo", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--messages" in demo_help  # the demo itself runs in tests/cli/test_demo.py
    help_text = subprocess.run([script, "serve", "--help"], capture_output=True, text=True, check=True).stdout
    for flag in ("--bind", "--port", "--keys", "--node-ip", "--log-level"):
        assert flag in help_text
