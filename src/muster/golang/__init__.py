"""Ports of Go's standard library that muster's behaviour depends on; pure, importing only errors."""

__all__: list[str] = []
