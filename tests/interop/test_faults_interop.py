"""Interop: numbered reliable packets between the official ``livekit`` SDK and greenroom across a server
``leave{RECONNECT}`` to either side (:mod:`tests.interop.scenarios_faults`); each case in its own private
network namespace (never skipped: a namespace that cannot be made fails the test with the reason).

greenroom as sender: nothing lost without a ``data_undelivered`` report, nothing duplicated, in order (its
default, ``ReconnectPolicy.resend`` off, sends nothing twice to an official receiver). The official SDK as
sender: what greenroom receives is never duplicated and in order; what the official sender loses at its own
rejoin is its own (it is not told, and greenroom cannot know) — the figure is printed (``-s``).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.interop.netns import run_in_netns

pytestmark = [pytest.mark.interop, pytest.mark.timeout(150)]


def run(sender: str, victim: str) -> dict[str, Any]:
    result = run_in_netns(
        "tests.interop.scenarios_faults:stream_across_leave",
        timeout=140,
        args={"sender": sender, "victim": victim},
    )
    print(f"{sender} -> other, leave{{RECONNECT}} to the {victim}: {result}")  # the R1 figure, with -s
    return result


@pytest.mark.parametrize("victim", ["sender", "receiver"])
def test_greenroom_sender_to_official_receiver(victim: str) -> None:
    result = run("greenroom", victim)
    assert result["duplicated"] == 0
    assert result["reordered"] == 0
    assert len(result["lost"]) <= result["reported"]
    assert result["received"] > 0


@pytest.mark.parametrize("victim", ["sender", "receiver"])
def test_official_sender_to_greenroom_receiver(victim: str) -> None:
    result = run("livekit", victim)
    assert result["duplicated"] == 0
    assert result["reordered"] == 0
    assert result["received"] > 0
