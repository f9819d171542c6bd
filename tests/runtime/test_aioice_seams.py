"""aioice's private parts greenroom relies on (greenroom.runtime.aioice_seams) are present and checked."""

from __future__ import annotations

import asyncio
from typing import Any

import aioice.ice
import pytest

from greenroom.runtime import aioice_seams, ice
from greenroom.runtime.seams_check import Seam
from tests.runtime.seams_support import assert_installed_matches, assert_refused_when_gone, private_uses


def test_the_installed_aioice_has_every_seam_and_the_pin_matches() -> None:
    assert_installed_matches("aioice", aioice_seams)


@pytest.mark.parametrize("seam", aioice_seams.SEAMS, ids=lambda seam: f"{seam.shape}:{seam.label}")
def test_each_seam_is_refused_when_its_name_is_gone(seam: Seam) -> None:
    assert_refused_when_gone("aioice", aioice_seams, seam, installed="0.13.0")


def test_only_the_seams_module_touches_aioice_private_names() -> None:
    names = {"get_host_addresses", "query_consent", "_query_consent_task"}
    assert private_uses(names, allowed={"aioice_seams.py"}) == []


def test_the_patches_are_in_place_once_a_scope_was_entered() -> None:
    with ice.gathering_scope(ice.IcePolicy.loopback()):
        assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
    view = getattr(aioice.ice, "asyncio")  # noqa: B009 - not exported
    assert view is not asyncio  # the paced view
    assert view.get_running_loop is asyncio.get_running_loop


def test_consent_checks_are_neutralised_and_a_running_task_cancelled() -> None:
    async def body() -> None:
        connection: Any = aioice.ice.Connection(ice_controlling=True)
        aioice_seams.disable_consent_checks(connection)
        assert await connection.query_consent() is None  # returns at once
        task = asyncio.create_task(asyncio.Event().wait())
        connection._query_consent_task = task
        aioice_seams.cancel_consent_task(connection)
        with pytest.raises(asyncio.CancelledError):
            await task
        aioice_seams.cancel_consent_task(connection)  # a finished task: nothing to do
        await connection.close()

    asyncio.run(body())
