"""The fleet's pure decisions: reconciliation with exact admission, restarts after a job ends, placement."""

from __future__ import annotations

from greenroom.fleet.reconcile import (
    FLEET_BACKOFF,
    STABLE_AFTER,
    BotState,
    BotView,
    Forget,
    Start,
    Stop,
    after_end,
    place,
    plan,
)

S = BotState


def test_plan_starts_due_bots_in_order_up_to_the_capacity_counting_stopping_ones() -> None:
    records = {
        "a": BotView(S.RUNNING),
        "b": BotView(S.PENDING),
        "c": BotView(S.BACKOFF, due=5.0),
        "old": BotView(S.STOPPING),
    }
    assert plan(["a", "b", "c", "d"], records, now=1.0, capacity=3) == [Start("b")]
    assert plan(["a", "b", "c", "d"], records, now=6.0, capacity=4) == [Start("b"), Start("c")]
    assert plan(["a", "b", "c", "d"], records, now=6.0, capacity=9) == [Start("b"), Start("c"), Start("d")]


def test_plan_stops_unwanted_live_bots_and_forgets_dead_ones() -> None:
    records = {
        "a": BotView(S.RUNNING),
        "b": BotView(S.BACKOFF),
        "c": BotView(S.STOPPING),
        "d": BotView(S.DONE),
    }
    assert plan([], records, now=0.0, capacity=9) == [Stop("a"), Forget("b"), Forget("d")]


def test_draining_stops_everything_and_starts_nothing() -> None:
    records = {"a": BotView(S.STARTING), "b": BotView(S.PENDING)}
    assert plan(["a", "b", "c"], records, now=0.0, capacity=9, draining=True) == [Stop("a"), Forget("b")]


def test_after_end_follows_the_restart_policy() -> None:
    kwargs = {"reason": "gave_up", "ran_for": 1.0, "attempt": 0, "now": 100.0, "sample": 0.0}
    assert after_end(policy="permanent", failed=False, **kwargs).state is S.BACKOFF  # type: ignore[arg-type]
    assert after_end(policy="transient", failed=True, **kwargs).state is S.BACKOFF  # type: ignore[arg-type]
    assert after_end(policy="transient", failed=False, **kwargs).state is S.DONE  # type: ignore[arg-type]
    assert after_end(policy="temporary", failed=True, **kwargs).state is S.DONE  # type: ignore[arg-type]


def test_after_end_backs_off_on_consecutive_ends_and_resets_after_a_stable_run() -> None:
    delays = []
    attempt = 0
    for _ in range(9):
        decision = after_end(
            policy="permanent", failed=True, reason="x", ran_for=1.0, attempt=attempt, now=0.0, sample=0.0
        )
        delays.append(decision.due)
        attempt = decision.attempt
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    stable = after_end(
        policy="permanent",
        failed=True,
        reason="x",
        ran_for=STABLE_AFTER,
        attempt=attempt,
        now=0.0,
        sample=0.0,
    )
    assert (stable.due, stable.attempt) == (0.0, 1)
    jittered = after_end(
        policy="permanent", failed=True, reason="x", ran_for=0, attempt=2, now=0.0, sample=0.5
    )
    assert jittered.due == FLEET_BACKOFF.min_delay * 2 * (1 + FLEET_BACKOFF.random_factor * 0.5)


def test_place_keeps_bots_where_they_are_and_spreads_the_rest_exactly() -> None:
    bots = [f"b{i}" for i in range(7)]
    first = place(bots, {}, {0: 4, 1: 4}, {0, 1})
    assert sorted(first[0] + first[1]) == sorted(bots)
    assert max(len(v) for v in first.values()) == 4
    # slot 1 dies: its bots go to slot 0 while it has room, the rest wait
    second = place(bots, first, {0: 4, 1: 4}, {0})
    assert set(second) == {0}
    assert second[0][: len(first[0])] == first[0]
    assert len(second[0]) == 4
    # slot 1 is back: it gets the bots that waited, slot 0 keeps its own
    third = place(bots, second, {0: 4, 1: 4}, {0, 1})
    assert third[0] == second[0]
    assert sorted(third[0] + third[1]) == sorted(bots)
    # a bot no longer wanted disappears; no process ever gets more than its capacity
    fourth = place(bots[:3], third, {0: 1, 1: 1}, {0, 1})
    assert all(len(v) <= 1 for v in fourth.values())
    assert set(fourth[0] + fourth[1]) <= set(bots[:3])
    assert place(bots, {}, {0: 4}, set()) == {}


def test_place_fills_processes_that_reported_before_one_still_starting() -> None:
    bots = [f"b{i}" for i in range(6)]
    # slot 0 died and is starting again; slot 1 runs with room: slot 0's bots go to slot 1 first
    moved = place(bots, {0: (), 1: tuple(bots[3:])}, {0: 6, 1: 6}, {0, 1}, prefer={1})
    assert moved == {0: (), 1: (*bots[3:], *bots[:3])}
    # past the preferred ones' room, a starting process takes the rest; what it had stays with it
    spill = place(bots, {0: (bots[0],), 1: ()}, {0: 6, 1: 2}, {0, 1}, prefer={1})
    assert spill == {0: (bots[0], *bots[3:]), 1: (bots[1], bots[2])}
    # nobody reported yet (the fleet's start): spread as before
    assert place(bots, {}, {0: 3, 1: 3}, {0, 1}, prefer=set()) == place(bots, {}, {0: 3, 1: 3}, {0, 1})
