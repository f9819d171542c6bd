"""pykka's private parts greenroom relies on (greenroom.actors.pykka_seams) are present and checked."""

from __future__ import annotations

import pykka
import pytest

from greenroom.actors import pykka_seams
from greenroom.runtime.seams_check import Seam
from tests.runtime.seams_support import ROOT, assert_installed_matches, assert_refused_when_gone

#: Modules that still import pykka internals directly (being rewritten at the time of writing; they are to
#: import them from greenroom.actors.pykka_seams, and then leave this set).


def test_the_installed_pykka_has_every_seam_and_the_pin_matches() -> None:
    assert_installed_matches("pykka", pykka_seams)


@pytest.mark.parametrize("seam", pykka_seams.SEAMS, ids=lambda seam: f"{seam.shape}:{seam.label}")
def test_each_seam_is_refused_when_its_name_is_gone(seam: Seam) -> None:
    assert_refused_when_gone("pykka", pykka_seams, seam, installed="4.5.0")


def test_only_the_seams_module_imports_pykka_internals() -> None:
    offenders = []
    for root in ("runtime", "actors", "rtc", "devserver"):
        for path in sorted((ROOT / root).rglob("*.py")):
            if path.name == "pykka_seams.py":
                continue
            text = path.read_text()
            if any(mark in text for mark in ("pykka._", "from pykka import messages", "_ActorStop")):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_actor_of_and_has_get_hook_read_pykka_objects() -> None:
    class Echo(pykka.ThreadingActor):
        def on_receive(self, message: object) -> object:
            return message

    ref = Echo.start()
    try:
        actor = pykka_seams.actor_of(ref)
        assert isinstance(actor, Echo)
        assert actor.actor_ref is ref
        future = ref.ask("hi", block=False)
        assert not pykka_seams.has_get_hook(future)
        assert future.get(timeout=5) == "hi"
        mapped = future.map(str.upper)
        assert pykka_seams.has_get_hook(mapped)
        assert mapped.get(timeout=5) == "HI"
    finally:
        ref.stop()


def test_the_reexported_messages_are_pykkas() -> None:
    assert pykka_seams.ActorStop.__module__ == "pykka.messages"
    assert pykka_seams.ProxyCall is pykka.messages.ProxyCall
    envelope = pykka_seams.Envelope("message", reply_to=None)
    assert (envelope.message, envelope.reply_to) == ("message", None)
