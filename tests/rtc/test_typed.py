"""Typed payloads (msgpack values) over RPC and byte streams between greenroom rooms on the dev server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from greenroom import rtc
from greenroom.codecs.errors import GreenroomError
from greenroom.devserver.server import DevServer
from greenroom.rtc import typed
from tests.rtc.support import connect, run_with_server
from tests.waiting import wait_until


def test_values_round_trip_and_bad_payloads_are_refused() -> None:
    value: typed.Value = {"n": 1, "xs": [1.5, None, True], "blob": b"\x00\xff", "text": "é"}
    assert typed.decode(typed.encode(value)) == value
    for bad in ("not base64!", "AAAA", "é"):
        with pytest.raises(GreenroomError):
            typed.decode(bad)
    with pytest.raises(GreenroomError):
        typed.encode({1: "int keys are not allowed"})  # type: ignore[dict-item]
    with pytest.raises(GreenroomError):
        typed.encode("x" * 100, max_size=10)


def test_typed_rpc_and_streams() -> None:
    async def scenario(server: DevServer) -> None:
        a, b = await connect(server, "a"), await connect(server, "b")

        @typed.register_rpc_method(b.local_participant, "sum")
        async def total(data: rtc.RpcInvocationData, value: typed.Value) -> typed.Value:
            assert isinstance(value, list)
            return {"sum": sum(value), "from": data.caller_identity}  # type: ignore[arg-type]

        b.local_participant.register_rpc_method("raw", lambda d: "not a value")
        await wait_until(lambda: "b" in a.remote_participants, what="b")
        answer = await typed.perform_rpc(
            a.local_participant, destination_identity="b", method="sum", value=[1, 2, 3]
        )
        assert answer == {"sum": 6, "from": "a"}
        with pytest.raises(rtc.RpcError) as info:  # the request is not a value: 1500 with the reason
            await a.local_participant.perform_rpc(destination_identity="b", method="sum", payload="garbage")
        assert (info.value.code, info.value.message) == (1500, "the request is not a msgpack value")
        with pytest.raises(rtc.RpcError) as info:
            await typed.perform_rpc(a.local_participant, destination_identity="b", method="raw", value=1)
        assert info.value.message == "the answer is not a msgpack value"

        got: list[Any] = []

        def on_value(reader: rtc.ByteStreamReader, identity: str) -> None:
            async def read() -> None:
                got.append((reader.info.mime_type, await typed.read_value(reader)))

            asyncio.ensure_future(read())  # noqa: RUF006 - the test waits on its result

        b.register_byte_stream_handler("values", on_value)
        big: typed.Value = {"rows": [[i, str(i)] for i in range(5000)]}  # ~50 kB: several chunks
        await typed.send_value(a.local_participant, big, topic="values")
        await wait_until(lambda: got, what="the value")
        assert got == [(typed.MIME_TYPE, big)]
        for room in (a, b):
            await room.disconnect()

    run_with_server(scenario)
