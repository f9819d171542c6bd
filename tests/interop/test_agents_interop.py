"""LiveKit's agent worker protocol across implementations, inside a private network namespace (scenarios
in :mod:`tests.interop.scenarios_agents`):

* the official livekit-agents 1.8.9 worker (``.venv-agents``) registers with ``greenroom serve``, gets the
  job when an official client's join creates a room, echoes that client's data, and reports the job's end
  when the room is deleted;
* greenroom's worker does the same with the same server and an official client;
* the server killed (SIGKILL) and restarted on the same port: each worker registers again and the room
  keeps exactly one agent (livekit-server dispatches a second one to the official worker's room: the
  reference note measured it).

If the namespace or the official worker's venv is missing, the tests fail with the reason; never skipped.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.interop.netns import run_in_netns
from tests.interop.scenarios_agents import AGENTS_PYTHON

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]

KINDS = ["official", "greenroom"]


def _run(scenario: str, kind: str) -> dict[str, Any]:
    assert AGENTS_PYTHON.exists(), (
        f"{AGENTS_PYTHON} is missing: `make .venv-agents/.installed-stamp` installs the official worker"
    )
    return run_in_netns(f"tests.interop.scenarios_agents:{scenario}", timeout=280, args={"kind": kind})


@pytest.mark.parametrize("kind", KINDS)
def test_a_worker_registers_gets_the_job_of_a_new_room_and_echoes_an_official_client(kind: str) -> None:
    report = _run("worker_serves_official_client", kind)
    agent = report["agent"]
    assert agent.startswith("agent-AJ_")
    expected = "echo:hello" if kind == "official" else f"hello from {agent}"
    assert report["answer"] == expected
    [job] = report["jobs"]
    assert (job["id"], job["status"], job["identity"]) == (agent.removeprefix("agent-"), 1, agent)  # RUNNING
    assert report["ended"] == "SUCCESS"  # the room's deletion terminated the job; the worker said so
    assert report["worker_exit"] == 0


@pytest.mark.parametrize("kind", KINDS)
def test_the_server_killed_and_restarted_the_room_keeps_exactly_one_agent(kind: str) -> None:
    report = _run("server_restart_keeps_one_agent", kind)
    agent = report["agent"]
    answer = {"official": "echo:{}", "greenroom": "{} from " + agent}[kind]
    assert report["before"] == answer.format("before")
    assert report["after"] == answer.format("after")  # the same agent serves again
    assert report["agents_in_r1"] == [agent]
    assert set(report["agents_ever_joined_r1"]) == {agent}  # (the Rust SDK re-announces it on rejoin)
    assert report["r2_agent"] != agent
    adopted = [line for line in report["server_log"] if "adopts" in line]
    assert len(adopted) == 1, report["server_log"]
