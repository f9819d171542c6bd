"""``/metrics`` (Prometheus text format, prometheus-client) and ``/healthz`` for a running fleet.

The collector reads the host's :class:`~greenroom.fleet.view.FleetView` at scrape time (no second copy of
the numbers). Metrics, all labelled by ``process`` (the slot number) where they come from one:

* ``greenroom_fleet_bots{process,state}`` (gauge): bots by state (``unplaced``: wanted, in no process);
  ``greenroom_fleet_bots_desired`` (gauge): bots in the spec;
* ``greenroom_fleet_restarts_total{level,reason}`` (counter): ``logic`` — the job's supervisor restarted the
  agent's code (reason: the exception type, e.g. ``AgentHungError``, ``LoopBlockedError``); ``bot`` — the
  job ended and the fleet started it again (``gave_up``, ``room_closed``, ``ended``, ``start_failed``);
  ``process`` — a worker process died (``SIGKILL``, ``exit 1``, ``unresponsive``);
* ``greenroom_fleet_reconnects_total{process}``, ``greenroom_fleet_messages_total{process}`` (counters):
  full reconnects of the bots' rooms; messages the bots handled;
* ``greenroom_fleet_handler_seconds{process}`` (histogram): time in an agent's ``on_message``;
  ``greenroom_fleet_message_latency_seconds{process}``: what bots reported with ``record_latency``;
* ``greenroom_runtime_loop_lag_seconds{process}`` (histogram): the runtime loop's lag, from its watchdog;
* ``greenroom_actors_mailbox_depth{process}``, ``…_max``, ``greenroom_actors{process}`` (gauges): messages
  queued in all actors' mailboxes, the deepest one, live actors;
* ``greenroom_fleet_processes{state}`` (gauge): worker processes by state.

``/healthz`` answers 200 with a JSON body while every wanted bot is in its room, 503 (same body) otherwise
or while draining — usable as a readiness probe.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator, Sequence

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from greenroom.fleet.stats import LATENCY_BUCKETS
from greenroom.fleet.view import FleetView
from greenroom.runtime.loop import LAG_BUCKETS

__all__ = ["FleetCollector", "health", "metrics_app"]

_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def _histogram(
    family: HistogramMetricFamily,
    labels: list[str],
    counts: Sequence[int],
    total: float,
    bounds: Sequence[float],
    *,
    cumulative: bool,
) -> None:
    if not counts:
        return
    running = list(counts)
    if not cumulative:
        running = [sum(counts[: i + 1]) for i in range(len(counts))]
    buckets = [(repr(float(b)), running[i]) for i, b in enumerate(bounds)] + [("+Inf", running[-1])]
    family.add_metric(labels, buckets, total)


class FleetCollector(Collector):
    """Prometheus collector over a :class:`FleetView`."""

    def __init__(self, view: FleetView) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        """Read the view now."""
        view = self.view
        bots = GaugeMetricFamily("greenroom_fleet_bots", "Bots by state", labels=["process", "state"])
        for slot, sv in sorted(view.slots.items()):
            for state, n in sorted(sv.by_state().items()):
                bots.add_metric([str(slot), state], n)
        unplaced = view.by_state().get("unplaced", 0)
        if unplaced:
            bots.add_metric(["", "unplaced"], unplaced)
        yield bots
        yield GaugeMetricFamily("greenroom_fleet_bots_desired", "Bots in the spec", value=view.desired)
        restarts = CounterMetricFamily(
            "greenroom_fleet_restarts", "Restarts by level and reason", labels=["level", "reason"]
        )
        for (level, reason), n in sorted(view.totals().restarts.items()):
            restarts.add_metric([level, reason], n)
        yield restarts
        yield from self._per_process()
        states = collections.Counter(sv.state.split(" ")[0] for sv in view.slots.values())
        processes = GaugeMetricFamily(
            "greenroom_fleet_processes", "Worker processes by state", labels=["state"]
        )
        for state, n in sorted(states.items()):
            processes.add_metric([state], n)
        yield processes

    def _per_process(self) -> Iterator[Metric]:
        reconnects = CounterMetricFamily("greenroom_fleet_reconnects", "Room reconnects", labels=["process"])
        messages = CounterMetricFamily("greenroom_fleet_messages", "Messages handled", labels=["process"])
        handler = HistogramMetricFamily(
            "greenroom_fleet_handler_seconds", "Time in agents' on_message", labels=["process"]
        )
        latency = HistogramMetricFamily(
            "greenroom_fleet_message_latency_seconds", "Latency reported by bots", labels=["process"]
        )
        lag = HistogramMetricFamily(
            "greenroom_runtime_loop_lag_seconds", "Runtime loop lag", labels=["process"]
        )
        depth = GaugeMetricFamily("greenroom_actors_mailbox_depth", "Messages queued", labels=["process"])
        deepest = GaugeMetricFamily(
            "greenroom_actors_mailbox_depth_max", "Deepest mailbox", labels=["process"]
        )
        actors = GaugeMetricFamily("greenroom_actors", "Live actors", labels=["process"])
        for slot, sv in sorted(self.view.slots.items()):
            labels = [str(slot)]
            totals = sv.totals()
            reconnects.add_metric(labels, totals.reconnects)
            messages.add_metric(labels, totals.messages)
            _histogram(handler, labels, totals.handler, totals.handler_sum, LATENCY_BUCKETS, cumulative=True)
            _histogram(latency, labels, totals.latency, totals.latency_sum, LATENCY_BUCKETS, cumulative=True)
            _histogram(lag, labels, totals.lag, totals.lag_sum, LAG_BUCKETS, cumulative=False)
            if sv.report is not None:
                boxes = sv.report.stats.mailboxes
                depth.add_metric(labels, boxes.depth)
                deepest.add_metric(labels, boxes.max_depth)
                actors.add_metric(labels, boxes.actors)
        yield from (reconnects, messages, handler, latency, lag, depth, deepest, actors)


def health(view: FleetView) -> tuple[bool, dict[str, object]]:
    """Whether the fleet is whole (every wanted bot in its room, not draining), and the details."""
    running = view.running()
    ok = running >= view.desired and not view.draining
    body: dict[str, object] = {
        "status": "ok" if ok else ("draining" if view.draining else "degraded"),
        "desired": view.desired,
        "running": running,
        "bots": view.by_state(),
        "processes": {str(i): sv.state for i, sv in sorted(view.slots.items())},
        "restarts": view.restarts(),
    }
    return ok, body


def metrics_app(view: FleetView) -> web.Application:
    """The aiohttp application serving ``/metrics`` and ``/healthz``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(view))

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": _TEXT})

    async def healthz(_request: web.Request) -> web.Response:
        ok, body = health(view)
        return web.Response(status=200 if ok else 503, text=json.dumps(body), content_type="application/json")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    return app
