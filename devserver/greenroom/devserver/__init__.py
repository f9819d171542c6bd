"""``greenroom serve``: a LiveKit-compatible development server built from codecs and runtime."""
