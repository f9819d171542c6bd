"""The E2EE commands of the interop peer (:mod:`tests.interop.peer`), public ``livekit.rtc`` API only.

``connect`` takes ``options.encryption = {"shared_key": b64 | None, "ratchet_window_size": …,
"failure_tolerance": …}`` (built into ``E2EEOptions(KeyProviderOptions(...))`` by :func:`encryption_options`);
``e2ee`` runs one key-provider or manager call (``call`` = ``set_shared_key``, ``ratchet_shared_key``,
``export_shared_key``, ``set_key``, ``ratchet_key``, ``export_key``, ``set_enabled``, ``set_key_index``,
``frame_cryptors``); keys travel base64-encoded. The peer reports ``e2ee_state_changed`` (identity, state)
and ``participant_encryption_status_changed`` (identity, encrypted) as events.
"""

from __future__ import annotations

import base64
from typing import Any

__all__ = ["E2eeOps", "encryption_options"]

_OPTION_NAMES = ("ratchet_window_size", "failure_tolerance", "key_ring_size")


def encryption_options(rtc: Any, spec: dict[str, Any]) -> Any:
    """``rtc.E2EEOptions`` from the JSON ``spec``."""
    shared = spec.get("shared_key")
    kwargs: dict[str, Any] = {k: spec[k] for k in _OPTION_NAMES if k in spec}
    if "ratchet_salt" in spec:
        kwargs["ratchet_salt"] = base64.b64decode(spec["ratchet_salt"])
    provider = rtc.KeyProviderOptions(
        shared_key=None if shared is None else base64.b64decode(shared), **kwargs
    )
    return rtc.E2EEOptions(key_provider_options=provider)


def _who(participant: Any) -> str | None:
    return None if participant is None else str(participant.identity)


class E2eeOps:
    """Mixed into the peer: needs ``self.rtc``, ``self.room`` and ``self.emit``."""

    rtc: Any
    room: Any

    def emit(self, obj: dict[str, Any]) -> None:
        raise NotImplementedError

    def listen_e2ee(self, room: Any) -> None:
        room.on(
            "e2ee_state_changed",
            lambda p, state: self.emit(
                {"event": "e2ee_state_changed", "identity": _who(p), "state": int(state)}
            ),
        )
        room.on(
            "participant_encryption_status_changed",
            lambda p, encrypted: self.emit(
                {
                    "event": "participant_encryption_status_changed",
                    "identity": _who(p),
                    "encrypted": encrypted,
                }
            ),
        )

    async def op_e2ee(self, cmd: dict[str, Any]) -> Any:
        manager = self.room.e2ee_manager
        provider = manager.key_provider
        call = cmd["call"]
        index = cmd.get("index", 0)
        key = base64.b64decode(cmd["key"]) if "key" in cmd else b""
        result: Any = None
        if call == "set_shared_key":
            provider.set_shared_key(key, index)
        elif call == "set_key":
            provider.set_key(cmd["identity"], key, index)
        elif call in ("ratchet_shared_key", "export_shared_key"):
            result = base64.b64encode(bytes(getattr(provider, call)(index))).decode()
        elif call in ("ratchet_key", "export_key"):
            result = base64.b64encode(bytes(getattr(provider, call)(cmd["identity"], index))).decode()
        elif call == "set_enabled":
            manager.set_enabled(cmd["enabled"])
        elif call == "frame_cryptors":
            result = [
                {
                    "identity": c.participant_identity,
                    "sid": c.track_sid,
                    "key_index": c.key_index,
                    "enabled": c.enabled,
                }
                for c in manager.frame_cryptors()
            ]
        elif call == "set_key_index":
            for cryptor in manager.frame_cryptors():
                if cryptor.participant_identity == cmd["identity"]:
                    cryptor.set_key_index(index)
        else:
            raise ValueError(f"unknown e2ee call {call!r}")
        return result
