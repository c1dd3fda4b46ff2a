"""The confd layer: the memkv snapshot store, confd's template function map and its DNS lookups."""

__all__: list[str] = []
