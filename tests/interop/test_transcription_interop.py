"""Interop: transcriptions from a greenroom agent read like an official agent's by official and greenroom
listeners — the ``Transcription`` packet and the ``lk.transcription`` text stream
(:mod:`tests.interop.scenarios_transcription`). Runs in a private network namespace; never skipped."""

from __future__ import annotations

from typing import Any

import pytest

from tests.interop.netns import run_in_netns

pytestmark = [pytest.mark.interop, pytest.mark.timeout(200)]


@pytest.fixture(scope="module")
def seen() -> dict[str, Any]:
    return run_in_netns("tests.interop.scenarios_transcription:transcripts", timeout=180)


def _by_sender(items: list[dict[str, Any]], segment_of: Any) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"alice": [], "bob": []}
    for item in items:
        out[segment_of(item).removeprefix("SG_")].append(item)
    return out


def test_greenroom_agent_transcripts_read_as_the_official_agents(seen: dict[str, Any]) -> None:
    for listener in ("carol", "dave"):  # official, greenroom
        packets = _by_sender(seen[listener]["packets"], lambda e: e["segments"][0]["id"])
        streams = _by_sender(seen[listener]["streams"], lambda e: e["attributes"]["lk.segment_id"])
        for sender in ("alice", "bob"):
            segment = f"SG_{sender}"
            assert packets[sender] == [
                {"from": None, "segments": [{"id": segment, "text": "hello", "final": False}]},
                {"from": None, "segments": [{"id": segment, "text": "hello wörld", "final": True}]},
            ], (listener, sender)
            track = {"lk.segment_id": segment, "lk.transcribed_track_id": "TR_transcribed01"}
            assert streams[sender] == [
                {"from": "erin", "text": "hello", "attributes": {**track, "lk.transcription_final": "false"}},
                {
                    "from": "erin",
                    "text": "hello wörld",
                    "attributes": {**track, "lk.transcription_final": "true"},
                },
            ], (listener, sender)
