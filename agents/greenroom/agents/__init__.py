"""greenroom's Agent API: supervised agents that keep their place in the room when their logic fails."""
