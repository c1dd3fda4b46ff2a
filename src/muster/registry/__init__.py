"""The ``/services`` registry layout: one rule set for the agent that writes it and every reader."""
