"""Every private part of aioice that greenroom patches or reads, checked when this module is imported.

:mod:`greenroom.runtime.ice` and :mod:`greenroom.runtime.peer` go through the helpers below and never touch
aioice internals themselves. Importing this module runs :func:`greenroom.runtime.seams_check.check` over
:data:`SEAMS`: an aioice outside :data:`EXPECTED` (the pin in ``pyproject.toml``), or one where a seam is
missing or has changed shape, raises :class:`~greenroom.runtime.seams_check.DependencyMismatchError`.

The seams, with the place in aioice 0.13.0 each relies on (``aioice/ice.py``):

* ``get_host_addresses(use_ipv4, use_ipv6)`` (:91) — the module function is replaced by one that honours
  greenroom's ICE policy (aioice skips loopback). It works because ``Connection.gather_candidates`` (:568,
  call at :581) looks the module global up on every call (checked).
* the module global ``asyncio`` of ``aioice.ice`` — replaced by a view of :mod:`asyncio` whose
  ``sleep(0.02)`` sleeps less: ``Connection.connect`` (:608) paces its checks with ``asyncio.sleep(0.02)``
  (:637-640; checked: the method names ``asyncio``/``sleep`` and holds the constant ``0.02``).
* ``Connection.query_consent(self)`` (:1249) — shadowed on a closed connection's instance by a no-op:
  ``connect`` starts it after ICE completes (:657, checked) even when ``close`` already ran.
* ``Connection._query_consent_task`` (set in ``__init__`` :455, cancelled by ``close`` :667, both checked)
  — a consent task still running after close is cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import ModuleType
from typing import Any

import aioice.ice

from greenroom.runtime.seams_check import Seam, check, mark_replacement, member

__all__ = [
    "CHECK_PACING",
    "EXPECTED",
    "SEAMS",
    "cancel_consent_task",
    "disable_consent_checks",
    "replace_asyncio",
    "replace_get_host_addresses",
]

#: The aioice versions these seams were read in; ``pyproject.toml`` pins the same range.
EXPECTED = "0.13.*"
#: aioice's hard-coded connectivity-check pacing (its ``Ta``), in seconds.
CHECK_PACING = 0.02

_Connection = aioice.ice.Connection

SEAMS: tuple[Seam, ...] = (
    Seam(aioice.ice, "get_host_addresses", "function", ("use_ipv4", "use_ipv6")),
    Seam(member(_Connection, "gather_candidates"), "get_host_addresses", "uses"),
    Seam(aioice.ice, "asyncio", "value", value_type=ModuleType, value=asyncio),
    Seam(member(_Connection, "connect"), "asyncio", "uses"),
    Seam(member(_Connection, "connect"), "sleep", "uses"),
    Seam(member(_Connection, "connect"), "check pacing", "constant", value=CHECK_PACING),
    Seam(_Connection, "query_consent", "coroutine", ("self",)),
    Seam(member(_Connection, "connect"), "query_consent", "uses"),
    Seam(member(_Connection, "__init__"), "_query_consent_task", "stored"),
    Seam(member(_Connection, "close"), "_query_consent_task", "uses"),
)

check("aioice", EXPECTED, SEAMS)


def replace_get_host_addresses(
    replacement: Callable[[bool, bool], list[str]],
) -> Callable[[bool, bool], list[str]]:
    """Make aioice gather host candidates on what ``replacement(use_ipv4, use_ipv6)`` returns.

    Returns:
        The function replaced (call it to get aioice's own answer).
    """
    original: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses
    mark_replacement(replacement, original)
    setattr(aioice.ice, "get_host_addresses", replacement)  # noqa: B010 - looked up at every gathering
    return original


def replace_asyncio(view: Any) -> None:
    """Make ``aioice.ice`` see ``view`` as its ``asyncio`` module (for the rest of the process's life)."""
    mark_replacement(view, getattr(aioice.ice, "asyncio"))  # noqa: B009 - the module global being replaced
    setattr(aioice.ice, "asyncio", view)  # noqa: B010 - a module global aioice reads at call time


def disable_consent_checks(connection: Any) -> None:
    """Make consent checks on this (closing) ``Connection`` a no-op, should ``connect`` still start them."""
    connection.query_consent = _no_consent_checks


def cancel_consent_task(connection: Any) -> None:
    """Cancel the consent-check task of this ``Connection`` if one is still running."""
    task = getattr(connection, "_query_consent_task", None)
    if task is not None and not task.done():
        task.cancel()


async def _no_consent_checks() -> None:
    """Stands in for ``Connection.query_consent`` once the connection is closed."""
