"""The ``greenroom`` console script (``greenroom.cli.main``): its subcommands are there."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from livekit import api

from greenroom.cli.main import main


def test_console_script_has_serve_and_demo() -> None:
    script = shutil.which("greenroom", path=str(Path(sys.executable).parent))
    assert script is not None
    demo_help = subprocess.run([script, "demo", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--messages" in demo_help  # the demo itself runs in tests/cli/test_demo.py
    help_text = subprocess.run([script, "serve", "--help"], capture_output=True, text=True, check=True).stdout
    for flag in ("--bind", "--port", "--keys", "--node-ip", "--log-level"):
        assert flag in help_text


def test_token_subcommand_prints_a_token_the_official_verifier_accepts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (
        main(
            [
                "token",
                "--identity",
                "me",
                "--room",
                "demo",
                "--api-secret",
                "a-secret-long-enough-for-pyjwt-32",
            ]
        )
        == 0
    )
    claims = api.TokenVerifier("devkey", "a-secret-long-enough-for-pyjwt-32").verify(
        capsys.readouterr().out.strip()
    )
    assert claims.video is not None
    assert (claims.identity, claims.video.room, claims.video.room_join) == ("me", "demo", True)
