"""Dev-server configuration: defaults like ``livekit-server --dev``, overridden by env vars and flags."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from greenroom.codecs.errors import GreenroomError
from greenroom.codecs.models import IceServer
from greenroom.devserver.limits import Limits
from greenroom.devserver.webhooks import WebhookPolicy

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "DEFAULT_BIND",
    "DEFAULT_PORT",
    "SERVER_VERSION",
    "ConfigError",
    "ServerConfig",
    "parse_keys",
]

DEFAULT_BIND = "127.0.0.1"
DEFAULT_PORT = 7880
DEFAULT_API_KEY = "devkey"
DEFAULT_API_SECRET = "secret"

_MAY_BE_ZERO = frozenset({"connect_wait", "unknown_sids_answered"})

# JoinResponse.server_info.version: both SDKs gate RPC on a semver >= 1.8.0, the Rust SDK panics on a
# non-semver string and JS refuses an empty one (signal-protocol.md §5.2, trap 5 of §11.5).
SERVER_VERSION = "1.9.0"


class ConfigError(GreenroomError):
    """The dev server was given a configuration it cannot run with."""


def parse_keys(text: str) -> dict[str, str]:
    """Parse ``key: secret`` pairs, comma- or newline-separated (the ``LIVEKIT_KEYS`` format).

    Args:
        text: e.g. ``"devkey: secret, other: s3cret"``.

    Returns:
        API key → secret.

    Raises:
        ConfigError: a pair without ``:`` or with an empty key or secret.
    """
    keys: dict[str, str] = {}
    for raw in text.replace("\n", ",").split(","):
        item = raw.strip()
        if not item:
            continue
        key, sep, secret = item.partition(":")
        if not sep or not key.strip() or not secret.strip():
            raise ConfigError(f"bad key pair {item!r}: expected 'key: secret'")
        keys[key.strip()] = secret.strip()
    if not keys:
        raise ConfigError("no API keys given")
    return keys


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything the dev server needs to run.

    Attributes:
        bind: address the HTTP/WebSocket listener binds (``127.0.0.1`` like ``livekit-server --dev``).
        port: TCP port; 0 picks an ephemeral one (the ready line and ``DevServer.url`` show the real port).
        keys: API key → secret; the first key is the one ``mint_token`` uses.
        node_ip: the address ICE gathers on and advertises. ``None`` = loopback when bound to loopback,
            else every interface address aioice finds (never a public STUN server either way).
        empty_timeout: seconds an empty room lives before it is closed.
        ping_interval: ``JoinResponse.ping_interval`` (s); must be > 0 (0 crashes the Rust SDK).
        ping_timeout: ``JoinResponse.ping_timeout`` (s); the server also closes a silent session after it.
        max_signal_size: the largest signal frame accepted (websockets ``max_size``); bigger closes the
            session with 1009.
        max_data_size: the largest data-channel packet forwarded (LiveKit's 64 000-byte default).
        join_timeout: seconds a relayed packet waits for the receiver's subscriber data channel to open.
        enable_remote_unmute: whether RoomService ``MutePublishedTrack`` may unmute (livekit-server's
            ``room.enable_remote_unmute``, off by default).
        webhook_urls: where to POST webhook events (none: no webhooks).
        webhook_api_key: the key that signs webhooks (one of ``keys``; default: the first).
        webhook_policy: queue bound, retries and time-outs of webhook delivery.
        limits: every per-session bound, the signal rate limit, the join deadline, the connect limit per
            address and the header size (``limits.py`` gives each one's policy and source).
        ice_servers: STUN/TURN servers handed to every client in ``JoinResponse.ice_servers``
            (livekit-server's ``rtc.turn_servers``/``rtc.stun_servers``); none by default. The server itself
            never uses them.
        force_relay: ``client_configuration.force_relay=ENABLED`` in every join: clients gather only relayed
            candidates (livekit-server sets it per client; here for all, to test TURN deployments).
        fast_publish: ``JoinResponse.fast_publish`` for participants who may publish: clients open their
            publisher peer connection at once (livekit-server sends it to every publisher; off here, so a bot
            that never publishes costs one peer connection, not two).
    """

    bind: str = DEFAULT_BIND
    port: int = DEFAULT_PORT
    keys: Mapping[str, str] = field(default_factory=lambda: {DEFAULT_API_KEY: DEFAULT_API_SECRET})
    node_ip: str | None = None
    empty_timeout: float = 20.0
    ping_interval: int = 5
    ping_timeout: int = 15
    max_signal_size: int = 1 << 20
    max_data_size: int = 64_000
    join_timeout: float = 15.0
    enable_remote_unmute: bool = False
    webhook_urls: tuple[str, ...] = ()
    webhook_api_key: str | None = None
    webhook_policy: WebhookPolicy = field(default_factory=WebhookPolicy)
    limits: Limits = field(default_factory=Limits)
    ice_servers: tuple[IceServer, ...] = ()
    force_relay: bool = False
    fast_publish: bool = False

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigError("at least one API key is required")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is out of range")
        if self.ping_interval <= 0 or self.ping_timeout <= 0:
            raise ConfigError("ping_interval and ping_timeout must be > 0 (0 crashes the Rust SDK)")
        if self.webhook_api_key is not None and self.webhook_api_key not in self.keys:
            raise ConfigError(f"webhook api key {self.webhook_api_key!r} is not one of the configured keys")
        for url in self.webhook_urls:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"webhook URL {url!r} is not http(s)")
        if self.node_ip is not None:
            try:
                ipaddress.ip_address(self.node_ip)
            except ValueError as exc:
                raise ConfigError(f"--node-ip {self.node_ip!r} is not an IP address") from exc
        for limit in fields(self.limits):
            value = getattr(self.limits, limit.name)
            if value < 0 or (value == 0 and limit.name not in _MAY_BE_ZERO):
                raise ConfigError(f"limits.{limit.name} must be > 0, not {value}")

    @property
    def api_key(self) -> str:
        """The first configured API key (the one tokens are minted with)."""
        return next(iter(self.keys))

    @property
    def ice_addresses(self) -> tuple[str, ...]:
        """The addresses ICE gathers on; empty means "every interface" (aioice's own choice)."""
        if self.webhook_api_key is not None and self.webhook_api_key not in self.keys:
            raise ConfigError(f"webhook api key {self.webhook_api_key!r} is not one of the configured keys")
        for url in self.webhook_urls:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"webhook URL {url!r} is not http(s)")
        if self.node_ip is not None:
            return (self.node_ip,)
        if self.bind in ("", "0.0.0.0", "::"):
            return ()
        address = ipaddress.ip_address(self.bind)
        return (str(address),)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> ServerConfig:
        """Build a config from ``LIVEKIT_*`` env vars, then explicit overrides (``None`` = not given).

        ``LIVEKIT_KEYS`` (``key: secret`` pairs) or ``LIVEKIT_API_KEY`` + ``LIVEKIT_API_SECRET`` set the keys.
        """
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        if env.get("LIVEKIT_KEYS"):
            values["keys"] = parse_keys(env["LIVEKIT_KEYS"])
        elif env.get("LIVEKIT_API_KEY") or env.get("LIVEKIT_API_SECRET"):
            key, secret = env.get("LIVEKIT_API_KEY", ""), env.get("LIVEKIT_API_SECRET", "")
            if not key or not secret:
                raise ConfigError("LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set together")
            values["keys"] = {key: secret}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
