"""``greenroom agent dev|start|connect MODULE:ATTR [options]``: run an agent program's worker without its own
``__main__`` (as ``uvicorn module:app`` runs an app).

``ATTR`` names a ``WorkerOptions``, an ``Agent`` subclass, or an ``async def entrypoint(ctx)`` (default
``entrypoint``); ``MODULE`` is a module name importable from the current directory, or a ``.py`` file path.
Everything after it is ``cli.run_app``'s command line (``--url``, ``--room``, ``--max-jobs`` …), plus
``--agent-name`` when ``ATTR`` is not a ``WorkerOptions``.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from greenroom.agents import Agent, WorkerOptions
from greenroom.agents import cli as agent_cli

__all__ = ["USAGE", "load_options", "main"]

USAGE = "usage: greenroom agent {dev,start,connect} MODULE[:ATTR] [--agent-name NAME] [run_app options]"


class TargetError(Exception):
    """``MODULE:ATTR`` does not name something runnable."""


def _import(module: str) -> Any:
    if module.endswith(".py") or os.sep in module:
        path = Path(module).resolve()
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None or not path.is_file():
            raise TargetError(f"no agent program at {module}")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = loaded
        spec.loader.exec_module(loaded)
        return loaded
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise TargetError(f"cannot import {module!r}: {exc}") from exc


def load_options(target: str, agent_name: str | None = None) -> WorkerOptions:
    """The ``WorkerOptions`` that ``MODULE[:ATTR]`` names (see the module docstring).

    Raises:
        TargetError: nothing runnable there.
    """
    module_name, _, attr = target.rpartition(":") if ":" in target else (target, "", "entrypoint")
    found = getattr(_import(module_name), attr, None)
    if isinstance(found, WorkerOptions):
        opts = found
    elif inspect.isclass(found) and issubclass(found, Agent):
        opts = WorkerOptions(entrypoint_fnc=found.entrypoint())
    elif inspect.iscoroutinefunction(found):
        opts = WorkerOptions(entrypoint_fnc=found)
    else:
        raise TargetError(
            f"{module_name}:{attr} is not a WorkerOptions, an Agent subclass or an async entrypoint"
        )
    return opts if agent_name is None else dataclasses.replace(opts, agent_name=agent_name)


def main(argv: Sequence[str]) -> int:
    """Run ``greenroom agent`` with the arguments after ``agent``; its exit code."""
    args = list(argv)
    if len(args) < 2 or args[0] not in ("dev", "start", "connect") or args[1].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 0 if args[:1] in (["-h"], ["--help"]) else 2
    command, target, rest = args[0], args[1], args[2:]
    agent_name = None
    if "--agent-name" in rest:
        at = rest.index("--agent-name")
        if at + 1 >= len(rest):
            print("error: --agent-name needs a value", file=sys.stderr)
            return 2
        agent_name = rest[at + 1]
        del rest[at : at + 2]
    try:
        opts = load_options(target, agent_name)
    except TargetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return agent_cli.main(opts, [command, *rest])
