"""Layer 4: the public Room API, shaped like ``livekit.rtc`` (``from greenroom import rtc``)."""
