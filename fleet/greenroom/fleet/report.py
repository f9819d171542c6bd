"""Seeing a running fleet: the live table (rich), ``/metrics`` + ``/healthz`` on a port, the final summary.

:class:`Reporter` is an async context manager around :meth:`Host.run`: it serves the metrics app (when a
port is given) and redraws the table twice a second (when asked; by default when the output is a
terminal). :func:`summary` is the text printed on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import time
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from aiohttp import web
from rich.console import Console
from rich.live import Live
from rich.table import Table

from greenroom.fleet.metrics import metrics_app
from greenroom.fleet.view import FleetView, merged_percentiles

if TYPE_CHECKING:
    from greenroom.fleet.pool import Host

__all__ = ["Reporter", "summary", "table"]

#: Seconds between two tables when the output is not a terminal.
PRINT_EVERY = 2.0
_STATES = ("running", "starting", "reconnecting", "backoff", "pending", "stopping", "done")


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def table(view: FleetView) -> Table:
    """The live table: one row per process, then the fleet."""
    elapsed = time.monotonic() - view.started
    title = f"greenroom fleet — {view.running()}/{view.desired} bots in their rooms — {elapsed:.0f} s"
    out = Table(title=title + (" — draining" if view.draining else ""))
    for name in (
        "proc",
        "pid",
        "state",
        "bots",
        *_STATES,
        "restarts",
        "msg/s",
        "handler p50/p99 ms",
        "latency p50/p99 ms",
        "lag max ms",
        "mailbox",
    ):
        out.add_column(name, justify="left" if name in ("state",) else "right")
    for slot, sv in sorted(view.slots.items()):
        states = sv.by_state()
        handler, latency = sv.window("handler"), sv.window("latency")
        boxes = sv.report.stats.mailboxes if sv.report is not None else None
        restarts = sum(sv.totals().restarts.values()) + sv.process_restarts
        out.add_row(
            str(slot),
            str(sv.pid or "-"),
            sv.state,
            f"{sv.assigned}/{sv.capacity}",
            *(str(states.get(s, 0)) for s in _STATES),
            str(restarts),
            f"{sv.rate():.1f}",
            "-" if handler is None else f"{_ms(handler.p50)}/{_ms(handler.p99)}",
            "-" if latency is None else f"{_ms(latency.p50)}/{_ms(latency.p99)}",
            "-" if sv.report is None else _ms(sv.report.stats.loop_lag_max),
            "-" if boxes is None else f"{boxes.depth} ({boxes.max_depth})",
        )
    states = view.by_state()
    h50, h99 = merged_percentiles(sv.window("handler") for sv in view.slots.values())
    l50, l99 = merged_percentiles(sv.window("latency") for sv in view.slots.values())
    out.add_row(
        "all",
        "",
        f"unplaced {states.get('unplaced', 0)}",
        str(view.desired),
        *(str(states.get(s, 0)) for s in _STATES),
        str(sum(view.restarts().values())),
        f"{sum(sv.rate() for sv in view.slots.values()):.1f}",
        f"{_ms(h50)}/{_ms(h99)}",
        f"{_ms(l50)}/{_ms(l99)}",
        "",
        "",
        style="bold",
    )
    return out


def summary(view: FleetView) -> str:
    """The text printed when the fleet ends."""
    elapsed = time.monotonic() - view.started
    totals = view.totals()
    states = view.before_drain or view.by_state()
    lines = [
        "== fleet summary ==",
        f"ran {elapsed:.1f} s; {view.desired} bots wanted over {len(view.slots)} processes",
        "bots before the drain: " + (", ".join(f"{s} {n}" for s, n in sorted(states.items())) or "none"),
        f"messages handled: {totals.messages}; room reconnects: {totals.reconnects}",
    ]
    h50, h99 = merged_percentiles(sv.window("handler") for sv in view.slots.values())
    l50, l99 = merged_percentiles(sv.window("latency") for sv in view.slots.values())
    lines.append(
        f"handler p50/p99 {_ms(h50)}/{_ms(h99)} ms; latency p50/p99 {_ms(l50)}/{_ms(l99)} ms "
        "(last window, worst process)"
    )
    restarts = sorted(totals.restarts.items())
    lines.append(
        f"restarts: {sum(n for _, n in restarts)}"
        + "".join(f"\n  {level:<8}{reason:<40}{n:>6}" for (level, reason), n in restarts)
    )
    for slot, sv in sorted(view.slots.items()):
        lines.append(f"process {slot}: {sv.state}, {sv.process_restarts} process restarts")
    errors = view.errors()
    if errors:
        lines.append("last errors:")
        lines.extend(f"  {e}" for e in errors[:10])
    return "\n".join(lines)


class Reporter:
    """Serves ``/metrics``/``/healthz`` and draws the live table while a host runs.

    Args:
        host: the host whose view is shown.
        out: where the table goes.
        table: draw the live table.
        metrics_port: the port of ``/metrics`` (``None``: off; ``0``: ephemeral, see :attr:`port`).
        metrics_bind: the address it binds.
    """

    def __init__(
        self,
        host: Host,
        *,
        out: TextIO,
        table: bool,
        metrics_port: int | None,
        metrics_bind: str = "127.0.0.1",
    ) -> None:
        self.view = host.view
        self.out = out
        self.table = table
        self.metrics_port = metrics_port
        self.metrics_bind = metrics_bind
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._drawing: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Reporter:
        if self.metrics_port is not None:
            # Bind the socket ourselves: with port 0 its name tells the port the kernel chose.
            family = socket.AF_INET6 if ":" in self.metrics_bind else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.metrics_bind, self.metrics_port))
            self.port = sock.getsockname()[1]
            self._runner = web.AppRunner(metrics_app(self.view), access_log=None)
            await self._runner.setup()
            await web.SockSite(self._runner, sock).start()
            print(
                f"metrics at http://{self.metrics_bind}:{self.port}/metrics (health: /healthz)",
                file=self.out,
                flush=True,
            )
        if self.table:
            self._drawing = asyncio.create_task(self._draw())
        return self

    async def _draw(self) -> None:
        console = Console(file=self.out)
        if not console.is_terminal:  # a log or a pipe: a full table every few seconds, no cursor tricks
            console = Console(file=self.out, width=200)
            while True:
                await asyncio.sleep(PRINT_EVERY)
                console.print(table(self.view))
        with Live(table(self.view), console=console, refresh_per_second=2, transient=False) as live:
            while True:
                await asyncio.sleep(0.5)
                live.update(table(self.view))

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._drawing is not None:
            self._drawing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drawing
        if self._runner is not None:
            await self._runner.cleanup()
