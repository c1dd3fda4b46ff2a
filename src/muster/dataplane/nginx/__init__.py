"""The nginx Lua data plane: its admin socket client, config snippet, pusher and Lua code (``lua/``)."""

__all__: list[str] = []
