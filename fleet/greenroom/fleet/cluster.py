"""Beyond one machine: the fleet's workers as Ray actors (``greenroom fleet run SPEC --ray ADDRESS``).

```
Host (this process: pool.Host, unchanged — placement, back-off, drain, the FleetView)
├── slot 0: RayWorker ── Ray calls ── HostActor (a Ray actor: its own process on some node)
│                                     └── BotRunner ── one job per bot (as in a worker process)
└── slot 1: …                         (actors spread over the nodes: scheduling strategy SPREAD)
```

A :class:`HostActor` is a worker process whose pipe is Ray: it runs greenroom's runtime and one
:class:`~greenroom.fleet.runner.BotRunner` (the bots' own supervisor, exact admission). The host's
:class:`RayWorker` is its :class:`~greenroom.fleet.pool.WorkerHandle`: it forwards ``Assign`` and
``DrainRequest`` (a bounded outbox, as for a process), polls a report every ``report_interval``, and tells
the host when the actor died — killed, crashed, or its node gone (Ray fails the pending call with
``ActorDiedError``). The host then does what it does for a dead process: the bots go to live actors with
room (or wait), and the slot starts a new actor after the back-off, which Ray places on a node that has
the CPUs for it. Actors are created with ``max_restarts=0``: the host, not Ray, decides restarts, so a
bot is never run by two actors at once.

Only Ray's public API is used (``ray.init``, ``ray.remote``, ``.options``, ``ray.kill``, the runtime context,
``ray.exceptions``); the extra pins ``ray==2.58.*``, the version this is tested with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, RayActorError, RayError

from greenroom.fleet.pool import OUTBOX_CAPACITY, Launcher
from greenroom.fleet.runner import Assign, BotRunner
from greenroom.fleet.worker import Drained, DrainRequest, WorkerConfig, WorkerReport, drain, report

__all__ = ["HostActor", "RayOptions", "RayWorker", "cluster_hosts", "connect", "ray_launcher"]

_log = logging.getLogger("greenroom.fleet.cluster")


@dataclass(frozen=True, slots=True)
class RayOptions:
    """How host actors are placed.

    Attributes:
        cpus_per_host: Ray CPUs each host actor reserves (1: one host process per core, the figure one
            greenroom process saturates at; a node with 8 CPUs takes 8 host actors).
        call_timeout: seconds a report call may take before it is given up (the host then counts the
            actor as silent; after ``unresponsive_after`` it is killed and replaced).
    """

    cpus_per_host: float = 1.0
    call_timeout: float = 10.0


def connect(address: str) -> None:
    """Join the Ray cluster at ``address`` (``auto``, ``host:port``) as its driver.

    The workers' logs stay on their nodes (``/tmp/ray/session_latest/logs``): the driver shows the table.
    """
    ray.init(address=address, log_to_driver=False, configure_logging=False)


def cluster_hosts(options: RayOptions) -> int:
    """``--processes auto`` on a cluster: as many host actors as the cluster's CPUs hold."""
    cpus = float(ray.cluster_resources().get("CPU", 0.0))  # type: ignore[no-untyped-call]
    return max(1, int(cpus // options.cpus_per_host))


class HostActor:
    """One host process of the fleet, as a Ray actor (async: Ray runs its calls on an asyncio loop).

    Args:
        config: the same as a worker process's (slot, server, admission limit, log level).
    """

    def __init__(self, config: WorkerConfig) -> None:
        logging.basicConfig(
            level=config.log_level,
            stream=sys.stderr,
            format=f"%(asctime)s %(levelname)s [host actor {config.slot} pid {os.getpid()}] %(name)s: "
            "%(message)s",
        )
        self.config = config
        self.runner = BotRunner.start(config.server, config.capacity)

    async def where(self) -> tuple[int, str]:
        """This actor's process id and Ray node id."""
        return os.getpid(), ray.get_runtime_context().get_node_id()

    async def assign(self, message: Assign) -> None:
        """The bots this actor must run now (the whole set)."""
        self.runner.tell(message)

    async def report(self) -> WorkerReport:
        """The bots and the process's counters."""
        return await report(self.config, self.runner)

    async def drain(self, deadline: float) -> Drained:
        """Let every bot leave within ``deadline`` seconds; the last report."""
        return await drain(self.config, self.runner, deadline)


class RayWorker:
    """The host's handle on one :class:`HostActor` (a :class:`~greenroom.fleet.pool.WorkerHandle`).

    One task on the host's loop per actor: it learns where the actor runs, then forwards the outbox
    (:data:`~greenroom.fleet.pool.OUTBOX_CAPACITY` messages; ``send`` refuses past it) and polls reports.
    A dead actor (``ActorDiedError``: killed, crashed, node lost) ends the task and calls ``exited`` once;
    ``ActorUnavailableError`` (the actor may come back) is only a missed report.
    """

    def __init__(
        self,
        actor_class: Any,
        options: RayOptions,
        config: WorkerConfig,
        deliver: Callable[[Any], None],
        exited: Callable[[str], None],
    ) -> None:
        self.pid = 0
        self.node = ""
        self.options = options
        self.interval = config.report_interval
        self.actor = actor_class.options(
            num_cpus=options.cpus_per_host, max_restarts=0, scheduling_strategy="SPREAD"
        ).remote(config)
        self.outbox: asyncio.Queue[Any] = asyncio.Queue(OUTBOX_CAPACITY)
        self._deliver = deliver
        self._exited = exited
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"greenroom-ray-{config.slot}")

    def send(self, message: Any) -> bool:
        """Queue ``message`` for the actor; ``False`` when the outbox is full."""
        try:
            self.outbox.put_nowait(message)
        except asyncio.QueueFull:
            return False
        return True

    def stop(self, *, kill: bool) -> None:
        """Stop talking to the actor and end it (after a drain, or because it is lost: either way)."""
        self.task.cancel()
        with contextlib.suppress(Exception):  # its node may be gone already
            ray.kill(self.actor, no_restart=True)

    async def _call(self, ref: Any, timeout: float | None) -> Any:
        return await asyncio.wait_for(asyncio.wrap_future(ref.future()), timeout)

    async def _run(self) -> None:
        try:
            self.pid, self.node = await self._call(self.actor.where.remote(), None)
            _log.info("host actor pid %d on node %s", self.pid, self.node)
            pump = asyncio.create_task(self._pump())
            poll = asyncio.create_task(self._poll())
            try:
                done, _ = await asyncio.wait((pump, poll), return_when=asyncio.FIRST_COMPLETED)
                reason = "drained" if pump in done else "ended"
                for task in done:
                    task.result()  # a dead actor's error
            finally:
                pump.cancel()
                poll.cancel()
        except RayActorError as exc:
            reason = "actor died"
            _log.warning("host actor pid %d on node %s: %s", self.pid, self.node, str(exc).splitlines()[0])
        except RayError as exc:  # e.g. it could never be scheduled
            reason = "actor failed"
            _log.error("host actor: %s", exc)
        self._exited(reason)

    async def _pump(self) -> None:
        """Forward the outbox in order; a drain is the last message (the actor is ended after it)."""
        while True:
            message = await self.outbox.get()
            match message:
                case Assign():
                    await self._call(self.actor.assign.remote(message), None)
                case DrainRequest(deadline=deadline):
                    self._deliver(await self._call(self.actor.drain.remote(deadline), None))
                    return
                case _:
                    _log.warning("ray worker ignored %r", message)

    async def _poll(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError, ActorUnavailableError):
                self._deliver(await self._call(self.actor.report.remote(), self.options.call_timeout))
            await asyncio.sleep(self.interval)


def ray_launcher(options: RayOptions) -> Launcher:
    """The :data:`~greenroom.fleet.pool.Launcher` of host actors (after :func:`connect`)."""
    actor_class = ray.remote(HostActor)

    def launch(
        config: WorkerConfig, deliver: Callable[[Any], None], exited: Callable[[str], None]
    ) -> RayWorker:
        return RayWorker(actor_class, options, config, deliver, exited)

    return launch
