"""Interop: data streams between the official ``livekit`` SDK and greenroom, both ways, against what the
official SDK does to itself; and malformed streams from greenroom read by both
(:mod:`tests.interop.scenarios_streams`). Runs in a private network namespace; never skipped."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from tests.interop.netns import run_in_netns

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]

DIRECTIONS = ("official_to_greenroom", "greenroom_to_official", "official_to_official")


@pytest.fixture(scope="module")
def both_ways() -> dict[str, Any]:
    return run_in_netns("tests.interop.scenarios_streams:streams_both_ways", timeout=280)


@pytest.fixture(scope="module")
def hostile() -> dict[str, Any]:
    return run_in_netns("tests.interop.scenarios_streams:hostile_streams", timeout=200)


@pytest.fixture(scope="module")
def compressed() -> dict[str, Any]:
    return run_in_netns("tests.interop.scenarios_streams:compressed_streams", timeout=200)


def _shapes(received: list[dict[str, Any]]) -> list[str]:
    """What a receiver read, without the sender, the checksums of random payloads (checked against what was
    sent in the next test) or chunk counts, in a stable order."""
    return sorted(
        json.dumps({k: v for k, v in e.items() if k not in ("sha256", "chunks", "from")}, sort_keys=True)
        for e in received
    )


def test_every_stream_reads_as_with_the_official_sdk(both_ways: dict[str, Any]) -> None:
    reference = _shapes(both_ways["received"]["official_to_official"])
    assert len(reference) == 9  # everything but the stream on a topic nobody handles
    for direction in ("official_to_greenroom", "greenroom_to_official"):
        assert _shapes(both_ways["received"][direction]) == reference, direction


def test_contents_arrive_whole(both_ways: dict[str, Any]) -> None:
    for direction in DIRECTIONS:
        sent, received = both_ways["sent"][direction], both_ways["received"][direction]
        by_key = {(e["topic"], e["length"]): e for e in received}
        assert by_key[("chat", 40)]["sha256"] == sent["short"]["sha256"]
        long = by_key[("chat", 100_000)]
        assert (long["sha256"], long["size"], long["attributes"]) == (
            sent["long"]["sha256"],
            300_000,
            {"k": "v"},
        )
        blob = by_key[("blobs", 200_000)]
        assert (blob["sha256"], blob["name"]) == (sent["bytes"]["sha256"], "blob.bin")
        photo = by_key[("files", 5_000_000)]  # a 5 MB file, checksum and all
        assert photo["sha256"] == sent["file"]["sha256"], direction
        assert (photo["name"], photo["mime_type"], photo["size"]) == ("photo.png", "image/png", 5_000_000)
        written = by_key[("chat", 13)]
        assert written["attributes"] == {"a": "1", "b": "2"}  # the trailer's attributes merged in
        assert by_key[("blobs", 30_001)]["sha256"] == sent["written_bytes"]["sha256"]
        assert by_key[("chat", 4)]["error"] == "stream closed abnormally: gave up"
        assert [e["topic"] for e in received if e["topic"] not in ("chat", "blobs", "files")] == ["other"]


def test_file_transfer_takes_comparable_time(both_ways: dict[str, Any]) -> None:
    times = {d: both_ways["sent"][d]["file"]["s"] for d in DIRECTIONS}
    assert times["greenroom_to_official"] < 3 * times["official_to_official"] + 1, times


def test_malformed_streams_fail_alone_at_both_receivers(hostile: dict[str, Any]) -> None:
    assert hostile["connected"] == {"alice": True, "carol": True}
    counts = {
        who: Counter(json.dumps(e, sort_keys=True) for e in events)
        for who, events in hostile["received"].items()
    }
    alice, carol = counts["alice"], counts["carol"]  # official, greenroom
    for who, seen in (("alice", alice), ("carol", carol)):
        for text, length in (("bob", 11), ("dave", 12), ("dave", 14)):  # the normal streams, before and after
            assert seen[json.dumps({"from": text, "length": length, "topic": "chat"}, sort_keys=True)] == 1, (
                who
            )
    expected_errors = {
        ("chat", 50): "stream data is incomplete",
        ("chat", 1): "expected chunk index to be exactly one more than the previous",
        ("blobs", 0): "read length exceeded total length specified in stream header",
    }
    for who, events in hostile["received"].items():
        errors = {
            (e["topic"], e["length"]): e["error"] for e in events if "error" in e and e["topic"] != "flood"
        }
        assert errors == expected_errors, who  # the same texts as the official SDK's
    flood = {who: [e for e in events if e["topic"] == "flood"] for who, events in hostile["received"].items()}
    # the official SDK keeps every stream a sender opens; greenroom at most 100 per sender (the rest are
    # refused and logged); all end when their sender leaves, with the official text
    assert len(flood["alice"]) == 150
    assert len(flood["carol"]) == 100
    ending = (
        "stream closed abnormally: Participant bob unexpectedly disconnected in the middle of sending data"
    )
    assert {e["error"] for e in flood["alice"] + flood["carol"]} == {ending}


def test_compressible_streams_travel_deflated_every_way(compressed: dict[str, Any]) -> None:
    """The dev server relays each client's announced capabilities, so every sender — official and greenroom —
    deflates a compressible text for a receiver that inflates: on the wire 120 000 characters are a few
    hundred bytes, and each receiver reads them whole."""
    for sender, receiver in (("alice", "bob"), ("bob", "carol"), ("carol", "alice")):
        wire = compressed["wire"][sender]
        assert (wire["compression"], wire["total_length"]) == ("DEFLATE_RAW", 120_000), sender
        assert 0 < (wire["inline"] or 0) + wire["chunked"] < 2_000, (sender, wire)
        [read] = compressed["received"][receiver]
        assert read == {"from": sender, "length": 120_000, "sha256": compressed["sent"][sender]}, receiver
