"""The official Node server SDK (npm ``livekit-server-sdk``, run with node) against the dev server.

It speaks Twirp with JSON bodies (camelCase names, bytes in base64), where ``livekit-api`` uses protobuf.
``.ci/run`` installs it (``npm ci`` in ``tests/devserver/node``); a missing install fails here, not skips.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

from greenroom.codecs.packets import UserPacket
from greenroom.devserver.server import DevServer
from tests.devserver.conftest import run_with_server
from tests.devserver.rawclient import RawClient

NODE_DIR = Path(__file__).parent / "node"


def _node() -> str:
    node = shutil.which("node")
    assert node is not None, "node (v20) is needed: .ci/run installs it"
    assert (NODE_DIR / "node_modules" / "livekit-server-sdk").is_dir(), (
        f"run `npm ci` in {NODE_DIR} (.ci/run does)"
    )
    return node


async def _run_script(server: DevServer, room: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        _node(),
        str(NODE_DIR / "roomservice.mjs"),
        server.http_url,
        "devkey",
        "secret",
        room,
        cwd=NODE_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return {step["step"]: step for step in map(json.loads, out.decode().splitlines())}


def test_node_sdk_lists_creates_deletes_rooms_and_sends_data() -> None:
    async def scenario(server: DevServer) -> None:
        alice = await RawClient.join(server.url, server.mint_token("alice", "r"), publish=False)
        bob = await RawClient.join(server.url, server.mint_token("bob", "r"))
        steps = await _run_script(server, "r")

        created = steps["created"]
        assert (created["name"], created["emptyTimeout"], created["metadata"]) == (
            "node-made",
            60,
            "from node",
        )
        assert created["sid"].startswith("RM_")
        assert steps["listed"]["names"] == ["node-made", "r"]
        assert steps["listed-one"]["names"] == ["r"]
        assert steps["deleted"]["names"] == ["r"]
        assert steps["deleted-again"]["error"]["status"] == 404
        assert steps["deleted-again"]["error"]["code"] == "not_found"

        got = await bob.next_packet()
        assert isinstance(got.packet.value, UserPacket)
        assert (got.packet.value.payload, got.packet.value.topic) == (b"from node", "node")
        # Alice was not a destination: a marker from bob, sent after, is the first packet she gets.
        await bob.send_user(b"marker", destinations=("alice",))
        first = await alice.next_packet()
        assert isinstance(first.packet.value, UserPacket)
        assert first.packet.value.payload == b"marker"
        await alice.close()
        await bob.close()

    run_with_server(scenario)
