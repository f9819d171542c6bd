"""The restart stash (``greenroom.agents.job.RestartStash``) on its own: what reaches a job's logic across
its restarts, in which order, within which bound, and what is counted."""

from __future__ import annotations

import logging

import pytest

from greenroom.agents.job import (
    CallbackError,
    Delivery,
    Entry,
    RestartStash,
    RoomEvent,
    Told,
    describe_entry,
)
from tests.waiting import recorded_logs


class Incarnation:
    """A target that records what it was handed (and can refuse or be closed)."""

    def __init__(self, *, unheard: frozenset[str] = frozenset()) -> None:
        self.got: list[Entry] = []
        self.closed = False
        self.full = False
        self.unheard = unheard

    def __call__(self, entry: Entry) -> Delivery:
        if self.closed:
            return Delivery.CLOSED
        if self.full:
            return Delivery.REFUSED
        if isinstance(entry, RoomEvent) and entry.name in self.unheard:
            return Delivery.UNHEARD
        self.got.append(entry)
        return Delivery.DELIVERED


def told(*numbers: int) -> list[Entry]:
    return [Told(n) for n in numbers]


def test_a_live_incarnation_gets_entries_at_once_and_a_stopped_one_none() -> None:
    stash = RestartStash(10, "job")
    first = Incarnation()
    stash.open(first, stash.generation)
    assert stash.put(Told(1))
    assert first.got == [Told(1)]
    stash.hold()
    assert stash.put(Told(2))
    assert first.got == [Told(1)]
    assert stash.stats().depth == 1
    assert not stash.stats().live


def test_leftovers_go_before_what_arrived_during_the_restart_and_all_replay_in_order() -> None:
    stash = RestartStash(10, "job")
    stash.open(Incarnation(), stash.generation)
    stash.hold()
    stash.put(Told(3))  # arrived while the logic was down
    stash.requeue(told(1, 2))  # what the failed incarnation had not handled
    second = Incarnation()
    stash.open(second, stash.generation)
    stash.put(Told(4))
    assert second.got == told(1, 2, 3, 4)
    stats = stash.stats()
    assert (stats.stashed, stats.replayed, stats.dropped, stats.depth, stats.live) == (3, 3, 0, 0, True)


def test_past_the_capacity_the_newest_entries_are_dropped_counted_and_logged_once() -> None:
    stash = RestartStash(3, "job x")
    with recorded_logs("greenroom.agents.job") as logs:
        assert [stash.put(Told(n)) for n in range(5)] == [True, True, True, False, False]
        stash.requeue(told(-2, -1))  # older than everything kept: they go first, the newest fall off
    assert stash.stats().dropped == 2 + 2
    warnings = [r for r in logs.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "job x: restart stash full (3); dropping new entries",
        "job x: restart stash full: 2 unhandled entries dropped",
    ]
    target = Incarnation()
    stash.open(target, stash.generation)
    assert target.got == told(0, 1, 2)


def test_requeue_keeps_the_oldest_leftovers_when_they_do_not_all_fit() -> None:
    stash = RestartStash(3, "job")
    stash.put(Told(9))
    stash.requeue(told(1, 2, 3))
    target = Incarnation()
    stash.open(target, stash.generation)
    assert target.got == told(1, 2, 9)
    assert stash.stats().dropped == 1


def test_an_open_for_an_incarnation_that_already_stopped_is_ignored() -> None:
    stash = RestartStash(10, "job")
    generation = stash.generation
    stash.hold()  # that incarnation failed before its entrypoint first suspended
    stash.put(Told(1))
    late = Incarnation()
    stash.open(late, generation)
    assert late.got == []
    assert stash.stats().depth == 1


def test_a_target_that_closed_before_hold_keeps_the_rest_for_the_next_one() -> None:
    stash = RestartStash(10, "job")
    first = Incarnation()
    stash.hold()
    stash.put(Told(1))
    stash.put(Told(2))
    first.closed = True
    stash.open(first, stash.generation)  # it closes during the replay: nothing is lost
    assert stash.stats().depth == 2
    assert not stash.stats().live
    first.closed = False
    stash.open(first, stash.generation)
    first.closed = True
    assert stash.put(Told(3))  # kept, not lost: the target had ended without hold() yet
    second = Incarnation()
    stash.open(second, stash.generation)
    assert first.got == told(1, 2)
    assert second.got == told(3)


def test_unheard_room_events_are_counted_and_a_full_queue_refuses() -> None:
    stash = RestartStash(10, "job")
    stash.hold()
    stash.put(RoomEvent("track_published", ()))
    stash.put(RoomEvent("data_received", ("x",)))
    target = Incarnation(unheard=frozenset({"track_published"}))
    stash.open(target, stash.generation)
    assert target.got == [RoomEvent("data_received", ("x",))]
    assert stash.stats().unheard == 1
    target.full = True
    assert not stash.put(Told(1))


def test_listened_names_and_the_end_of_the_job() -> None:
    stash = RestartStash(10, "job")
    assert not stash.listens("data_received")
    stash.listen("data_received")
    assert stash.listens("data_received")
    stash.put(Told(1))
    stash.put(Told(2))
    assert stash.close() == 2
    assert stash.stats().lost_at_end == 2
    assert stash.stats().depth == 0


def test_describe_entry_names_the_event_or_message_and_stays_short() -> None:
    assert describe_entry(RoomEvent("data_received", (1,))) == "room event data_received(1,)"
    assert describe_entry(Told("x")) == "message 'x'"
    long = describe_entry(Told("y" * 500))
    assert len(long) == 160
    assert long.endswith("…")
    assert describe_entry(3) == "3"


def test_a_callback_error_names_the_item_and_is_about_it() -> None:
    error = CallbackError("boom", item=Told(1))
    assert error.item == Told(1)
    assert not error.blames_current
    with pytest.raises(CallbackError):
        raise error
