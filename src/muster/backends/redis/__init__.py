"""The Redis backend: the confd-compatible key reader, its client and the registration lease."""

__all__: list[str] = []
