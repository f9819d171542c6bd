"""``greenroom fleet`` as a subprocess: a bad spec names its field (exit 2); ``check``; ``run`` with the
embedded dev server shows the live table, serves /metrics and /healthz, and drains on SIGTERM (exit 0)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from greenroom.codecs.tokens import Claims, VideoGrants, mint_token
from greenroom.rtc.sync import SyncRoom
from tests.waiting import wait_until_sync

ROOT = Path(__file__).resolve().parents[2]

SPEC = """
[fleet]
processes = 2
report_interval = 0.2
drain_timeout = 10

[[bots]]
name = "chat"
agent = "greenroom.fleet.bots:Chatter"
rooms = {{ pattern = "{room}-{{n}}", count = 2 }}
count = 2
params = {{ interval = 0.1, topic = "chat" }}

[[bots]]
name = "obedient"
agent = "tests.fleet.bots:Obedient"
room = "{room}-1"
"""


def _env() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}, "PYTHONUNBUFFERED": "1"}


def _fleet(*args: str, cwd: Path = ROOT) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "greenroom.cli", "fleet", *args],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Lines:
    """The process's stdout, read on a thread (so a test can wait for a line without blocking forever)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        self.proc = proc
        stdout = proc.stdout
        self.thread = threading.Thread(
            target=lambda: self.lines.extend(iter(stdout.readline, "")), daemon=True
        )
        self.thread.start()

    def close(self) -> str:
        """After the process ended: the rest of stdout read, both pipes closed; returns stderr."""
        self.thread.join(10)
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self.proc.stdout.close()
        with self.proc.stderr:
            return self.proc.stderr.read()

    def find(self, pattern: str) -> re.Match[str] | None:
        for line in list(self.lines):
            if found := re.search(pattern, line):
                return found
        return None

    def wait(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        return wait_until_sync(lambda: self.find(pattern), timeout=timeout, what=f"{pattern!r} printed")

    @property
    def text(self) -> str:
        return "".join(self.lines)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _healthy(url: str) -> str | None:
    status, body = _get(url)
    return body if status == 200 else None


def _has(text: str, part: str) -> str | None:
    return text if part in text else None


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(SPEC.format(room=f"fleet{os.getpid()}"))
    return path


def test_a_bad_spec_exits_2_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[[bots]]\nname = 'x'\nagent = 'greenroom.fleet.bots:Chatter'\nroom = 'r'\ncont = 2\n")
    proc = subprocess.run(
        [sys.executable, "-m", "greenroom.cli", "fleet", "run", str(path)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "bad spec: bots[0].cont: unknown field (did you mean 'count'?)" in proc.stderr
    path.write_text(
        "[[bots]]\nname = 'x'\nagent = 'greenroom.fleet.bots:Chatter'\nroom = 'r'\nparams = {rate = 1}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "greenroom.cli", "fleet", "check", str(path)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "bots[0].params: Chatter(): got an unexpected keyword argument 'rate'" in proc.stderr


def test_check_prints_what_the_spec_expands_to(spec: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "greenroom.cli", "fleet", "check", str(spec)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "5 bots in 2 rooms, OK" in proc.stdout
    assert "the embedded dev server" in proc.stdout


def test_run_shows_the_fleet_serves_metrics_and_drains_on_sigterm(spec: Path) -> None:
    proc = _fleet("run", str(spec), "--metrics-port", "0", "--table")
    out = Lines(proc)
    try:
        url = out.wait(r"embedded dev server at (ws://\S+)")[1]
        metrics = out.wait(r"metrics at (http://\S+)/metrics")[1]
        room = f"fleet{os.getpid()}-1"
        token = mint_token(
            "devkey", "secret", Claims(identity="observer", video=VideoGrants(room_join=True, room=room))
        )
        with SyncRoom() as observer:
            observer.connect(url, token, timeout=15)
            want = {"chat-" + room + "-0", "chat-" + room + "-1", "obedient-" + room + "-0"}
            wait_until_sync(
                lambda: set(observer.remote_participants) == want, timeout=40, what="the room's bots"
            )
            body = wait_until_sync(
                lambda: _healthy(metrics + "/healthz"),
                timeout=20,
                what="/healthz 200",
                interval=0.1,
            )
            assert '"running": 5' in body
            observer.local_participant.publish_data(
                b"", topic="crash", destination_identities=["obedient-" + room + "-0"], timeout=5
            )
            text = wait_until_sync(
                lambda: _has(_get(metrics + "/metrics")[1], 'reason="OrderedCrashError"'),
                timeout=20,
                what="the logic restart in /metrics",
                interval=0.1,
            )
            for line in (
                'greenroom_fleet_restarts_total{level="logic",reason="OrderedCrashError"} 1.0',
                'greenroom_fleet_bots{process="0",state="running"}',
                "greenroom_fleet_bots_desired 5.0",
                'greenroom_fleet_handler_seconds_bucket{le="+Inf",process="0"}',
                'greenroom_fleet_message_latency_seconds_count{process="1"}',
                'greenroom_runtime_loop_lag_seconds_bucket{le="0.001",process="0"}',
                'greenroom_actors_mailbox_depth{process="0"}',
                'greenroom_fleet_reconnects_total{process="0"} 0.0',
            ):
                assert line in text, line
            out.wait(r"greenroom fleet — 5/5 bots in their rooms")  # the live table
            proc.send_signal(signal.SIGTERM)
            wait_until_sync(lambda: not observer.remote_participants, timeout=20, what="every bot left")
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr = out.close()
    # the crash the test asked for, logged once (with the job's CallbackError around it); nothing else
    assert stderr.count("unhandled exception") == 1, stderr
    errors = set(re.findall(r"^\s*([\w.]+(?:Error|Exception)):", stderr, re.MULTILINE))
    assert errors <= {"tests.fleet.bots.OrderedCrashError", "greenroom.agents.job.CallbackError"}, stderr
    summary = out.wait(r"== fleet summary ==")
    assert summary
    assert "bots before the drain: running 5" in out.text
    assert re.search(r"logic\s+OrderedCrashError\s+1", out.text), out.text
