"""Template resources: read their TOML (spec), render them (render), put them in place (sync, commands)."""

__all__: list[str] = []
