"""EventEmitter semantics matched with livekit.rtc."""

from __future__ import annotations

from typing import Any

import pytest

from greenroom import rtc
from greenroom.rtc import EventEmitter


def test_on_once_off_and_decorators() -> None:
    em: EventEmitter[str] = EventEmitter()
    seen: list[Any] = []
    cb = em.on("e", lambda a, b: seen.append(("on", a, b)))

    @em.once("e")
    def first(a: Any) -> None:  # takes fewer arguments than emitted: gets the leading ones
        seen.append(("once", a))

    em.emit("e", 1, 2)
    em.emit("e", 3, 4)
    em.off("e", cb)
    em.emit("e", 5, 6)
    em.off("missing", cb)
    assert seen == [("on", 1, 2), ("once", 1), ("on", 3, 4)]


def test_off_removes_a_once_callback() -> None:
    em: EventEmitter[str] = EventEmitter()
    seen: list[int] = []
    cb = seen.append
    em.once("e", cb)
    em.off("e", cb)
    em.emit("e", 1)
    assert seen == []


def test_async_callbacks_are_refused() -> None:
    em: EventEmitter[str] = EventEmitter()

    async def handler() -> None:
        pass

    with pytest.raises(ValueError, match="async"):
        em.on("e", handler)
    with pytest.raises(ValueError, match="async"):
        em.once("e", handler)


def test_a_raising_callback_is_logged_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    em: EventEmitter[str] = EventEmitter()
    seen: list[int] = []

    def boom(_x: int) -> None:
        raise RuntimeError("broken listener")

    em.on("e", boom)
    em.on("e", seen.append)
    em.on("e", lambda *args: seen.append(len(args)))
    em.emit("e", 7)
    assert seen == [7, 1]
    assert "broken listener" in caplog.text


def test_emit_raises_a_type_error_as_the_official_does() -> None:
    emitter: rtc.EventEmitter[str] = rtc.EventEmitter()
    calls: list[tuple[int, ...]] = []

    @emitter.on("whatever")
    def three(first: int, second: int, third: int) -> None:
        calls.append((first, second, third))

    emitter.emit("whatever", 1, 2, 3, 4)  # extra arguments are cut
    with pytest.raises(TypeError):
        emitter.emit("whatever", 1, 2)  # one missing
    assert calls == [(1, 2, 3)]


def test_the_rooms_delivery_contains_a_type_error_per_callback(caplog: pytest.LogCaptureFixture) -> None:
    emitter: rtc.EventEmitter[str] = rtc.EventEmitter()
    calls: list[str] = []
    emitter.on("data", lambda a, b, c: calls.append("three"))
    emitter.on("data", lambda a: calls.append("one"))
    emitter._emit_contained("data", 1)
    assert calls == ["one"]
    assert "callback raised" in caplog.text
