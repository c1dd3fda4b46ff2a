"""The ``/services`` registry layout: one rule set for the agent that writes it and every reader."""

__all__: list[str] = []
