"""The dependency seam checker (greenroom.runtime.seams_check), run against fake modules and classes."""

from __future__ import annotations

import asyncio
import types
from typing import Any

import pytest

from greenroom.codecs.errors import GreenroomError
from greenroom.runtime.seams_check import (
    DependencyMismatchError,
    Missing,
    Seam,
    check,
    installed_version,
    member,
    problems,
    version_in,
)


class Transport:
    """Stands for a dependency's class with a few private parts."""

    class State:
        OPEN = 1

    LIMIT = 1200

    def __init__(self) -> None:
        self._state = 0

    async def _send(self, data: bytes) -> None:
        await asyncio.sleep(0.02)  # never run: the checker reads this constant from the bytecode

    def _kick(self) -> None:
        self._send_later = True

    def receive(self) -> None:
        self._kick()


def test_shapes_that_match_have_no_problems() -> None:
    seams = [
        Seam(Transport, "_send", "coroutine", ("self", "data")),
        Seam(Transport, "_kick", "function", ("self",)),
        Seam(Transport, "_kick", "function"),
        Seam(Transport, "State", "class"),
        Seam(Transport.State, "OPEN", "value", value_type=int),
        Seam(types, "ModuleType", "value", value=types.ModuleType),
        Seam(Transport.__init__, "_state", "stored"),
        Seam(Transport._kick, "_send_later", "stored"),
        Seam(Transport.receive, "_kick", "uses"),
        Seam(Transport._send, "asyncio", "uses"),
        Seam(Transport._send, "pacing", "constant", value=0.02),
    ]
    assert [p for seam in seams for p in problems(seam)] == []


@pytest.mark.parametrize(
    ("seam", "expected"),
    [
        (Seam(Transport, "_gone", "coroutine"), "Transport._gone is missing"),
        (Seam(Transport, "_kick", "coroutine"), "Transport._kick is not a coroutine function"),
        (Seam(Transport, "_send", "function"), "Transport._send became a coroutine function"),
        (Seam(Transport, "_send", "coroutine", ("self", "chunk")), "takes (self, data), not (self, chunk)"),
        (Seam(Transport, "LIMIT", "function"), "Transport.LIMIT is not callable"),
        (Seam(Transport, "LIMIT", "class"), "Transport.LIMIT is not a class"),
        (Seam(Transport, "LIMIT", "value", value_type=str), "Transport.LIMIT is not a str"),
        (Seam(types, "ModuleType", "value", value=int), "is no longer <class 'int'>"),
        (Seam(Transport.__init__, "_status", "stored"), "no longer sets the attribute _status"),
        (Seam(Transport.receive, "_send", "uses"), "Transport.receive no longer refers to _send"),
        (Seam(Transport._send, "pacing", "constant", value=0.05), "no longer holds the constant 0.05"),
        (Seam(Transport.LIMIT, "x", "stored"), "is not a Python function"),
        (Seam(member(Transport, "_gone"), "_x", "stored"), "Transport._gone is missing (needed for _x)"),
    ],
)
def test_each_mismatch_is_named(seam: Seam, expected: str) -> None:
    [problem] = problems(seam)
    assert expected in problem


def test_a_builtin_without_a_signature_is_reported() -> None:
    class Fake:
        pass

    Fake.meth = staticmethod(print)  # type: ignore[attr-defined]
    [problem] = problems(Seam(Fake, "meth", "function", ("value",)))
    assert "signature" in problem or "takes" in problem


def test_member_returns_the_attribute_or_a_named_marker() -> None:
    assert member(Transport, "receive") is Transport.receive
    marker = member(Transport, "_gone")
    assert isinstance(marker, Missing)
    assert marker.__qualname__ == "Transport._gone"
    assert "missing" in repr(marker)
    assert Seam(marker, "_x", "stored").label == "Transport._gone._x"


def test_a_classmethod_holder_is_read_through_its_function() -> None:
    class Actor:
        @classmethod
        def start(cls) -> Any:
            return cls._start_loop()

        @classmethod
        def _start_loop(cls) -> None:
            return None

    assert problems(Seam(Actor.start, "_start_loop", "uses")) == []


def test_versions_match_the_pin_form() -> None:
    assert version_in("1.16.0", "1.16.*")
    assert version_in("1.16.12", "1.16.*")
    assert not version_in("1.17.0", "1.16.*")
    assert not version_in("1.1.6", "1.16.*")
    assert version_in("4.5.0", "4.5.0")
    assert not version_in("4.5.1", "4.5.0")
    assert installed_version("surely-not-an-installed-distribution") == "not installed"


def test_check_raises_one_typed_error_naming_version_range_and_every_problem() -> None:
    seams = [Seam(Transport, "_gone", "coroutine"), Seam(Transport.__init__, "_status", "stored")]
    with pytest.raises(DependencyMismatchError) as caught:
        check("fakelib", "2.3.*", seams, installed="2.3.1")
    error = caught.value
    assert isinstance(error, GreenroomError)
    assert (error.dependency, error.installed, error.expected) == ("fakelib", "2.3.1", "2.3.*")
    assert len(error.problems) == 2
    text = str(error)
    assert "fakelib 2.3.1" in text
    assert "fakelib==2.3.*" in text
    assert "Transport._gone is missing" in text
    assert "_status" in text


def test_check_refuses_a_version_outside_the_range_even_with_every_name_present() -> None:
    with pytest.raises(DependencyMismatchError, match=r"version 2\.4\.0 is outside 2\.3\.\*"):
        check("fakelib", "2.3.*", [Seam(Transport, "_kick")], installed="2.4.0")
    check("fakelib", "2.3.*", [Seam(Transport, "_kick")], installed="2.3.9")  # passes
