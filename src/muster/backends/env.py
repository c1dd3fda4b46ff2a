"""confd's ``env`` backend: keys from environment variables.

A key ``/a/b`` is looked up as every variable whose name starts with ``A_B``
(``/`` -> ``_``, upper-cased), and each variable found comes back under the key
``/`` + its name lower-cased with ``_`` -> ``/``. The reverse mapping cannot tell an
underscore from a slash, so ``MY_APP_PORT`` is ``/my/app/port``. The environment
cannot be watched (confd's watch blocks forever); ``wait_changed`` raises
``WatchUnsupported`` so the daemon polls on its interval instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from muster.backends.base import Snapshot
from muster.backends.options import BackendOptions
from muster.confd.funcs import go_to_lower, go_to_upper
from muster.errors import WatchUnsupported

__all__ = ["EnvBackend", "env_key", "env_values"]


def _transform(key: str) -> str:
    return go_to_upper(key.removeprefix("/").replace("/", "_"))


def env_key(name: str) -> str:
    """The store key confd gives the environment variable ``name``."""
    return ("/" + go_to_lower(name)).replace("_", "/")


def env_values(prefixes: Sequence[str], environ: Mapping[str, str]) -> dict[str, str]:
    """confd's env ``GetValues`` over ``environ``."""
    values: dict[str, str] = {}
    for prefix in prefixes:
        wanted = _transform(prefix)
        for name, value in environ.items():
            if name.startswith(wanted):
                values[env_key(name)] = value
    return values


class EnvBackend:
    """Keys read from this process's environment (``options`` are unused)."""

    def __init__(
        self, *, options: BackendOptions | None = None, environ: Mapping[str, str] | None = None
    ) -> None:
        self._environ = environ

    def __repr__(self) -> str:
        return "EnvBackend()"

    async def get_values(self, prefixes: Sequence[str]) -> Snapshot:
        environ = os.environ if self._environ is None else self._environ
        return Snapshot(values=env_values(prefixes, environ), revision=None)

    async def wait_changed(self, prefixes: Sequence[str], since: int | None) -> int | None:
        raise WatchUnsupported("the env backend cannot watch for changes; use interval mode")

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> EnvBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
