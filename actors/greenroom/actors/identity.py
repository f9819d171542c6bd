"""Who greenroom says it is in the join URL: :func:`join_params`.

Every value says what this client is and implements, never what another SDK is:

* ``sdk=greenroom`` — livekit-server maps the ``sdk`` value onto its ``ClientInfo.SDK`` enum
  (``pkg/service/utils.go`` ``ParseClientInfo``) and knows no greenroom, so it records ``UNKNOWN``. What it
  then infers (``pkg/rtc/clientinfo.go``): no codec change mid-session (``SupportsCodecChange``: aiortc gains
  nothing from it) and no SCTP zero checksum (``SupportsSctpZeroChecksum``: aiortc has none); ICE over TCP
  is still offered (every SDK but Go's), and greenroom drops those candidates (aioice has no TCP,
  :class:`greenroom.runtime.ice.IcePolicy`); for ``UNKNOWN`` it also reads the User-Agent for the fields we
  leave empty (browser). Claiming ``python`` (the official SDK) made dashboards count greenroom as
  livekit-python 1.2.1, speaking a protocol that SDK does not. The dev server only logs the value.
* ``version`` — greenroom's own (the installed distribution's).
* ``protocol`` — :data:`~greenroom.codecs.signalling.PROTOCOL_VERSION` (15), the signalling greenroom
  models; ``client_protocol`` and ``capabilities`` — what the data plane implements
  (:data:`~greenroom.codecs.streams.ANNOUNCED_PROTOCOL`, ``ANNOUNCED_CAPABILITIES``).
* ``os``, ``os_version``, ``device_model`` — :mod:`platform`'s system, release and machine, as the Rust SDK
  fills them from its ``os_info`` (``Linux``/``6.1.0``/``x86_64`` where it writes ``Debian``/``12.0.0``/
  ``Unknown``).
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform
from dataclasses import replace

from greenroom.codecs.signalling import PROTOCOL_VERSION, JoinParams
from greenroom.codecs.streams import ANNOUNCED_CAPABILITIES, ANNOUNCED_PROTOCOL

__all__ = ["SDK_NAME", "join_params", "sdk_version"]

SDK_NAME = "greenroom"


@functools.cache
def sdk_version() -> str:
    """greenroom's version (``0.0.0`` when run from sources that were never installed)."""
    try:
        return importlib.metadata.version("greenroom")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


@functools.cache
def _base() -> JoinParams:
    return JoinParams(
        sdk=SDK_NAME,
        version=sdk_version(),
        protocol=PROTOCOL_VERSION,
        client_protocol=ANNOUNCED_PROTOCOL,
        capabilities=ANNOUNCED_CAPABILITIES,
        os=platform.system(),
        os_version=platform.release(),
        device_model=platform.machine(),
    )


def join_params(*, auto_subscribe: bool) -> JoinParams:
    """The join query of a first connection (a reconnect adds its own fields)."""
    return replace(_base(), auto_subscribe=auto_subscribe)
