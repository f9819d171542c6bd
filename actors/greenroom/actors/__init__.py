"""Layer 3: asyncio-native pykka actors, supervision, and the Room/Participant/Track actor tree."""
