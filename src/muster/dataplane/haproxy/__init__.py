"""The HAProxy data plane: server slots changed through HAProxy's runtime API, reloads when slots run out."""

__all__: list[str] = []
