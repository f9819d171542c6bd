"""Layer 2: the only layer that touches asyncio sockets — the process loop, websockets signalling, aiortc
peer transports, data channels and the ICE policy. It knows actors only through the ``Sink`` protocol."""
